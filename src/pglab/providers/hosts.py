"""The hosts provider: the lab's nodes are servers that exist already (Debian 12, reached over SSH).

pglab makes no machine here. Before `up` changes anything it asks every server what it needs to
know (:mod:`pglab.providers.host_checks`: SSH, OS, systemd, sudo, the ports the lab needs, a
PostgreSQL cluster of someone else's) and refuses, naming the server and the fix, when one answer
is wrong. Then it claims each server for the lab (``/etc/pglab/lab``) and records, in the lab's
directory, which packages and which of the lab's paths the server had before: the packages the
roles install are recorded after each run, and `destroy` removes the lab's units, what pglab
made and those packages (``--keep-packages`` keeps them), after a confirmation naming the servers.

Services, logs and faults are the systemd half every provider of systemd machines shares
(:class:`pglab.providers.systemd.SystemdProvider`); every command goes over plain SSH.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import Field, field_validator

from pglab import paths
from pglab.errors import InputError, PglabError
from pglab.prerequisites import Prerequisite
from pglab.providers import host_checks, ports
from pglab.providers.systemd import PARTITION_TABLE, SERVICE_USER, SystemdError, SystemdProvider
from pglab.topology import FieldProblem, Node, Strict, Topology

T = TypeVar("T")
USER_PATTERN = r"^[a-z_][a-z0-9_-]{0,31}$"
CONNECT_TIMEOUT = 10  # seconds SSH waits for a server before the preflight calls it unreachable
# Connections to a server are shared for a minute (status, verify and drills send many commands).
CONTROL_PATH = "/tmp/pglab-ssh-%C"
SSH_OPTIONS = ("-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT}", "-o", "LogLevel=ERROR",
               "-o", "StrictHostKeyChecking=accept-new", "-o", "ControlMaster=auto",
               "-o", f"ControlPath={CONTROL_PATH}", "-o", "ControlPersist=60s")
# Connected as root without sudo (become: false): the shared systemd half's `sudo [-u USER]`
# commands run as they are, or as the user through runuser.
SUDO_AS_ROOT = 'sudo() { if [ "$1" = -u ]; then u=$2; shift 2; runuser -u "$u" -- "$@"; else "$@"; fi; }; '
PG_VERSION = 15


def lab_paths(version: int = PG_VERSION) -> tuple[str, ...]:
    """Every path the roles write the lab's state and configuration to on a systemd node: `destroy`
    removes those a server did not have before the lab's first `up`, and empties those it had
    empty (a package's own directory)."""
    home = paths.postgres_home("")
    return (f"{home}/{version}", f"{home}/.config/pg_autoctl", f"{home}/.local/share/pg_autoctl",
            "/etc/pglab", "/var/lib/pglab", "/var/log/pglab", "/etc/patroni", "/opt/patroni", "/etc/etcd",
            "/etc/pgbackrest", "/var/lib/pgbackrest", "/var/log/pgbackrest", "/var/spool/pgbackrest",
            "/etc/pgbouncer", "/etc/haproxy", "/etc/consul.d", "/opt/consul")


class HostAccess(Strict):
    """How pglab reaches one server, where it differs from the section's defaults."""

    user: str | None = None
    key_file: str | None = None
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    become: bool | None = None

    @field_validator("user")
    @classmethod
    def _user_name(cls, user: str | None) -> str | None:
        return None if user is None else _check_user(user)

    @field_validator("key_file")
    @classmethod
    def _key_path(cls, key: str | None) -> str | None:
        return None if key is None else _check_key(key)


class HostsSettings(Strict):
    """The topology's ``hosts:`` section: how pglab reaches the servers (each node's address)."""

    # The SSH user on every server.
    user: str = "debian"
    # The private key pglab logs in with (from / or ~/).
    key_file: str = "~/.ssh/id_ed25519"
    # sshd's port on every server.
    port: Annotated[int, Field(ge=1, le=65535)] = 22
    # Root through sudo (without a password); false: connect as root.
    become: bool = True
    # Node name -> what differs for that node's server.
    per_node: dict[str, HostAccess] = Field(default_factory=dict)

    @field_validator("user")
    @classmethod
    def _user_name(cls, user: str) -> str:
        return _check_user(user)

    @field_validator("key_file")
    @classmethod
    def _key_path(cls, key: str) -> str:
        return _check_key(key)


def _check_user(user: str) -> str:
    if not re.fullmatch(USER_PATTERN, user):
        raise ValueError(f"{user!r} is not a user name; write the server's login, such as debian")
    return user


def _check_key(key: str) -> str:
    if not key.startswith(("/", "~/")):
        raise ValueError(f"{key!r} is a relative path; write the private key's path from / or from ~/ "
                         "(a relative one would depend on where pglab runs)")
    return key


@dataclass(frozen=True)
class Access:
    """One server's SSH user, key, port and sudo, the node's overrides applied."""

    user: str
    key_file: Path
    port: int
    become: bool


class HostsError(SystemdError):
    """A command on a server failed, or a server refused the lab (exit 2: the topology's to fix)."""


class HostsRefused(InputError):
    """A server is not fit for the lab; nothing was changed."""


class HostsProvider(SystemdProvider):
    name = "hosts"
    settings = HostsSettings
    comments: ClassVar[Mapping[str, str]] = {
        "hosts": "existing Debian 12 servers at the nodes' addresses, reached over SSH",
        "hosts.become": "root through sudo without a password; false: user is root",
        "hosts.per_node": "node name: {user, key_file, port, become} where a server differs",
    }
    error = HostsError
    preflight_error = HostsRefused
    # The servers outlive the lab: `destroy` asks first, and removes the packages pglab installed.
    keeps_machines = True

    @classmethod
    def check(cls, topology: Topology) -> None:
        section = topology.section(cls.name, HostsSettings)
        names = [n.name for n in topology.nodes]
        for name in section.per_node:
            if name not in names:
                raise FieldProblem((cls.name, "per_node", name), f"no node is named {name!r}; use one of: "
                                   + ", ".join(names))
        for node in topology.nodes:
            access = section.per_node.get(node.name, HostAccess())
            user = access.user or section.user
            become = section.become if access.become is None else access.become
            if not become and user != "root":
                where = (cls.name, "per_node", node.name) if node.name in section.per_node else (cls.name, "become")
                raise FieldProblem(where, f"node {node.name} connects as {user} without sudo (become: false), but "
                                   "pglab needs root on its servers; set become: true, or user: root")

    # Facts -----------------------------------------------------------------------------------
    @property
    def settings_of_lab(self) -> HostsSettings:
        return self.topology.section(self.name, HostsSettings)

    def access(self, node: Node) -> Access:
        section = self.settings_of_lab
        own = section.per_node.get(node.name, HostAccess())
        return Access(user=own.user or section.user,
                      key_file=Path(os.path.expanduser(own.key_file or section.key_file)),
                      port=own.port or section.port,
                      become=section.become if own.become is None else own.become)

    def address(self, node: Node) -> str:
        return str(node.address)

    @property
    def known_hosts(self) -> Path:
        """The servers' host keys, learnt on first contact (the lab's own, gone with it)."""
        return self.lab_dir / "ssh" / "known_hosts"

    def _record_file(self, node: Node) -> Path:
        return self.lab_dir / "hosts" / f"{node.name}.json"

    def connection_vars(self, node: Node) -> dict[str, Any]:
        access = self.access(node)
        return {
            "ansible_host": str(node.address),
            "ansible_port": access.port,
            "ansible_user": access.user,
            "ansible_ssh_private_key_file": str(access.key_file),
            "ansible_ssh_common_args": f"-o UserKnownHostsFile={self.known_hosts}",
            "ansible_become": access.become,
            "ansible_python_interpreter": "/usr/bin/python3",
        }

    def prerequisites(self) -> list[Prerequisite]:
        return [Prerequisite("ssh", "openssh-client", shutil.which("ssh") is not None)]

    # Before anything is changed --------------------------------------------------------------
    def preflight(self) -> list[str]:
        return [problem for found in self._each(self._problems) for problem in found]

    def _problems(self, node: Node) -> list[str]:
        access = self.access(node)
        server = host_checks.Server(node.name, str(node.address), access.user, access.become)
        if not access.key_file.is_file():
            return [f"the SSH key {access.key_file} for {node.name} ({node.address}) is not a file on this "
                    f"machine: fix hosts.key_file (or hosts.per_node.{node.name}.key_file), or make the key."]
        data_dirs = [paths.postgres_data_dir("", PG_VERSION), f"{paths.postgres_home('')}/{PG_VERSION}/monitor"]
        script = host_checks.probe_script(data_dirs, [f"/etc/postgresql/{PG_VERSION}/main"])
        done = self._ssh(node, script)
        if done.returncode != 0:
            return [f"{node.name} ({node.address}) did not answer SSH as {access.user} on port {access.port} "
                    f"within {CONNECT_TIMEOUT} s: {_tail(done.stderr) or f'exit {done.returncode}'}. Check that "
                    f"the server is up with sshd listening, and that the public half of {access.key_file} is in "
                    f"~{access.user}/.ssh/authorized_keys there; or fix hosts.user, hosts.key_file, hosts.port."]
        facts = host_checks.parse(done.stdout)
        return host_checks.judge(server, facts, self.topology.name, ports.node_ports(self.topology, node),
                                 {f"{unit}.service" for unit in self.units(node)})

    # Lifecycle -------------------------------------------------------------------------------
    def create(self) -> None:
        """No machine to make: claim each server for the lab, and note what it had before."""
        self._each(self._claim)

    def _claim(self, node: Node) -> None:
        record = self._record_file(node)
        if not record.exists():
            listed = " ".join(shlex.quote(p) for p in lab_paths())
            answer = self.run_command(node, "; ".join([
                f"sudo cat {host_checks.MARKER} 2>/dev/null | sed 's/^/marker /'",
                "sudo sh -c " + shlex.quote(f'for p in {listed}; do [ -e "$p" ] || continue; '
                                            'if [ -d "$p" ] && [ -z "$(ls -A "$p")" ]; then echo "empty $p"; '
                                            'else echo "path $p"; fi; done'),
                "dpkg-query --show --showformat='${Package} ${db:Status-Status}\\n' | sed -n 's/ installed$//p'",
                "true"]))
            lines = answer.splitlines()
            marker = next((line[7:] for line in lines if line.startswith("marker ")), None)
            # This lab's marker without a record: the lab's directory was lost. What it made is
            # unknown, so its paths count as pglab's and no package as installed by pglab.
            ours = marker == self.topology.name
            held = [] if ours else [line[5:] for line in lines if line.startswith("path ")]
            empty = [] if ours else [line[6:] for line in lines if line.startswith("empty ")]
            before = [line for line in lines if line and not line.startswith(("marker ", "path ", "empty "))]
            record.parent.mkdir(parents=True, exist_ok=True)
            record.write_text(json.dumps({"address": str(node.address), "paths_before": held, "empty_before": empty,
                                          "packages_before": sorted(before), "installed": []}, indent=1))
        self.run_command(node, "sudo sh -c " + shlex.quote(
            f"mkdir -p {os.path.dirname(host_checks.MARKER)} && echo {shlex.quote(self.topology.name)} "
            f"> {host_checks.MARKER}"))

    def deployed(self) -> None:
        """After a playbook run: record the packages the run installed on each server."""
        self._each(self._record_installed)

    def _record_installed(self, node: Node) -> None:
        record = self._read_record(node)
        if record is None:
            return
        with contextlib.suppress(PglabError):
            now = set(self._installed_packages(node))
            record["installed"] = sorted((now - set(record["packages_before"])) | set(record["installed"]))
            self._record_file(node).write_text(json.dumps(record, indent=1))

    def installed_by_lab(self) -> dict[str, list[str]]:
        """Node -> the packages pglab recorded installing on its server."""
        return {n.name: list(r["installed"]) for n in self.topology.nodes
                if (r := self._read_record(n)) is not None}

    def destroy_warning(self) -> str | None:
        claimed = [n for n in self.topology.nodes if self._record_file(n).exists()]
        if not claimed:
            return None
        packages = sum(len(v) for v in self.installed_by_lab().values())
        removed = "services, data and what pglab made there"
        if packages and not self.keep_packages:
            removed += f", and the {packages} package(s) pglab installed"
        servers = ", ".join(f"{n.name} ({n.address})" for n in claimed)
        return f"This removes lab {self.topology.name}'s {removed} from the servers {servers}"

    def destroy(self) -> None:
        # The data nodes first, together, then the DCS, router and repository they talk to:
        # released all at once, a leader whose DCS went first waits out Patroni's retries on its
        # way down, up to its unit's stop timeout.
        data = [n for n in self.topology.nodes if "postgres" in n.roles]
        self._each(self._release, data)
        self._each(self._release, [n for n in self.topology.nodes if n not in data])

    def _release(self, node: Node) -> None:
        record = self._read_record(node)
        if record is None:
            return  # never claimed: nothing of the lab is there
        units = self.units(node)
        # A path the server did not have goes; one it had empty (a package's directory) is emptied;
        # one with content before the lab keeps it.
        empty_before = record.get("empty_before", [])
        made = [p for p in lab_paths() if p not in record["paths_before"] and p not in empty_before]
        steps = [
            f"systemctl disable --now {shlex.join(units)} 2>/dev/null",
            "rm -f " + " ".join(shlex.quote(f"/etc/systemd/system/{u}.service") for u in units),
            "systemctl daemon-reload", f"systemctl reset-failed {shlex.join(units)} 2>/dev/null",
            f"nft delete table inet {PARTITION_TABLE} 2>/dev/null",
            f"rm -rf {' '.join(shlex.quote(p) for p in made)}" if made else "",
            *(f"find {shlex.quote(p)} -mindepth 1 -delete 2>/dev/null" for p in empty_before),
            f"rm -f {host_checks.MARKER}; rmdir {os.path.dirname(host_checks.MARKER)} 2>/dev/null",
        ]
        if record["installed"] and not self.keep_packages:
            still = set(self._installed_packages(node))
            packages = [p for p in record["installed"] if p in still]
            if packages:
                steps.append(f"DEBIAN_FRONTEND=noninteractive apt-get purge -y -q {shlex.join(packages)}")
        self.run_command(node, "sudo sh -c " + shlex.quote("; ".join(s for s in steps if s) + "; true"))
        self._record_file(node).unlink(missing_ok=True)
        access = self.access(node)
        subprocess.run(["ssh", *SSH_OPTIONS, "-O", "exit", "-p", str(access.port),
                        f"{access.user}@{node.address}"], capture_output=True, stdin=subprocess.DEVNULL)

    def is_created(self) -> bool:
        return any(self._record_file(n).exists() for n in self.topology.nodes)

    # The connection --------------------------------------------------------------------------
    def run_command(self, node: Node, command: str) -> str:
        done = self._ssh(node, command)
        if done.returncode != 0:
            what = "could not reach it over SSH" if done.returncode == 255 else f"exit {done.returncode}"
            raise HostsError(f"`{command[:200]}` on {node.name} ({node.address}) failed ({what}): "
                             f"{_tail(done.stderr or done.stdout)}")
        return done.stdout

    def run_as_service_user(self, node: Node, argv: list[str],
                            timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
        done = self._ssh(node, f"sudo -u {SERVICE_USER} " + shlex.join(argv), timeout=timeout)
        return subprocess.CompletedProcess(argv, done.returncode, done.stdout, done.stderr)

    def _ssh(self, node: Node, command: str, timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
        access = self.access(node)
        self.known_hosts.parent.mkdir(parents=True, exist_ok=True)
        remote = command if access.become else SUDO_AS_ROOT + command
        argv = ["ssh", *SSH_OPTIONS, "-o", f"UserKnownHostsFile={self.known_hosts}", "-i", str(access.key_file),
                "-p", str(access.port), f"{access.user}@{node.address}", remote]
        # stderr to a file, not a pipe: the master connection SSH leaves behind (ControlPersist)
        # keeps the first client's stderr open, and reading a pipe to its end would wait for it.
        with tempfile.TemporaryFile(mode="w+") as errors:
            try:
                done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=errors, text=True,
                                      stdin=subprocess.DEVNULL, timeout=timeout)
            except subprocess.TimeoutExpired:
                return subprocess.CompletedProcess(argv, 124, "", f"no answer within {timeout:.0f} s")
            errors.seek(0)
            return subprocess.CompletedProcess(argv, done.returncode, done.stdout, errors.read())

    # Helpers ---------------------------------------------------------------------------------
    def _each(self, action: Callable[[Node], T], nodes: list[Node] | None = None) -> list[T]:
        """``action`` on every node's server (or on ``nodes``) at once (each is a few SSH round trips)."""
        chosen = self.topology.nodes if nodes is None else nodes
        if not chosen:
            return []
        with ThreadPoolExecutor(max_workers=min(8, len(chosen))) as pool:
            return list(pool.map(action, chosen))

    def _read_record(self, node: Node) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self._record_file(node).read_text()))
        except (OSError, ValueError):
            return None

    def _installed_packages(self, node: Node) -> list[str]:
        answer = self.run_command(node, "dpkg-query --show --showformat='${Package} ${db:Status-Status}\\n'")
        return [line[:-len(" installed")] for line in answer.splitlines() if line.endswith(" installed")]


def _tail(text: str | None) -> str:
    return " ".join((text or "").split())[-500:]
