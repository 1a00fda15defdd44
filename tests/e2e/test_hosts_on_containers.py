"""The hosts provider end to end, on systemd + sshd containers standing in for servers a user
already has: started from the same offline image as the podman provider's nodes (packages
present, nothing fetched), by the podman provider's own code, inside the network namespace it
makes (``pglab-<servers>``), which this test's process joins, so every pglab command it starts
talks to the servers from inside.

First the refusals: with sshd stopped on one server, /etc/os-release of another distribution on
another and a port the lab needs held on a third, `pglab up` exits 2 naming each server and the
fix, and changes nothing. Then `up --check` (nothing changed), `up`, `verify`, a second `up` that
changes nothing, one drill, `destroy --yes`, and nothing of the lab left on the servers. Its
figures (``hosts_up_s hosts_verify_s checks``) are appended to the ``containers-e2e:`` line in
``$PGLAB_E2E_SUMMARY``.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pglab import catalog
from pglab.providers import host_checks, hosts
from pglab.providers.podman import PodmanProvider
from pglab.vm import image
from tests.e2e.test_containers import OPT_IN, cgroups_for_crun  # noqa: F401 (a fixture, used by name)

SERVERS = "hostsrv"
LAB = "hoste2e"
NODES = """\
nodes:
  - {name: dcs, address: 10.101.0.11, roles: [dcs, haproxy, backup]}
  - {name: pg1, address: 10.101.0.12, roles: [postgres]}
  - {name: pg2, address: 10.101.0.13, roles: [postgres]}
"""
PGLAB = [sys.executable, "-m", "pglab.cli"]
HOLDER = "pglab-test-port-holder"
# An image to use as it is, instead of building pglab's own (one made by another checkout of
# pglab, whose recipe differs): the servers need only systemd, sshd and the lab's packages.
IMAGE = os.environ.get("PGLAB_E2E_IMAGE")
# Who pglab logs in as: the image's ordinary administrator (another pglab's image may have only the
# VM box's vagrant user).
USER = "vagrant" if IMAGE else image.ADMIN_USER
pytestmark = pytest.mark.skipif(os.environ.get("PGLAB_E2E_CONTAINERS") != "1", reason=OPT_IN)


def pglab(*args: str, lab_file: Path, expect: int | None = 0) -> subprocess.CompletedProcess[str]:
    """One pglab command, from this process's namespace (the servers'); stderr captured too, for
    the refusals, and shown. ``expect``: its exit code (None: any)."""
    done = subprocess.run([*PGLAB, *args, "-f", str(lab_file)], capture_output=True, text=True)
    print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", flush=True)
    assert expect is None or done.returncode == expect, f"pglab {' '.join(args)}: exit {done.returncode}, not {expect}"
    return done


def on(servers: PodmanProvider, node: str, command: str, check: bool = True) -> str:
    done = subprocess.run(["podman", "exec", servers.container(servers.topology.node(node)), "sh", "-c", command],
                          capture_output=True, text=True)
    assert not check or done.returncode == 0, f"`{command}` on {node}: {done.stderr}"
    return done.stdout


def lab_text(key: Path) -> str:
    return (f"name: {LAB}\nprovider: hosts\npostgres: {{scope: {LAB}}}\nnetwork: {{subnet: 10.101.0.0/24}}\n"
            f"backup: {{enabled: true}}\nhosts: {{user: {USER}, key_file: {key}, become: true}}\n{NODES}")


def left_on(servers: PodmanProvider, node: str, ports: list[int]) -> list[str]:
    """What of a lab a server holds: its claim, the lab's paths (with how many entries each has),
    units, listeners on ``ports``; compared with what it held before the lab."""
    script = "; ".join([
        *(f"[ -e {shlex.quote(p)} ] && echo \"path {p} $(ls -A {shlex.quote(p)} | wc -l)\""
          for p in (host_checks.MARKER, *hosts.lab_paths())),
        "ls /etc/systemd/system/*.service 2>/dev/null | grep -E 'patroni|etcd|haproxy|pgbackrest|pgbouncer' "
        "| sed 's/^/unit /'",
        "ss -Htln | awk '{print $4}' | sed 's/.*://' | sort -u | sed 's/^/port /'", "true"])
    found = on(servers, node, script).splitlines()
    return [line for line in found if not line.startswith("port ") or int(line[5:]) in ports]


def test_hosts_provider_on_containers(tmp_path: Path, cgroups_for_crun: list[str]) -> None:  # noqa: F811
    if os.geteuid() != 0 or not shutil.which("podman"):
        pytest.skip("the container test needs root and podman")
    if IMAGE is None:
        image.build(report=lambda text: print(f"image: {text}", flush=True))
    servers_file = tmp_path / "servers" / "pglab.yml"
    servers_file.parent.mkdir()
    servers_topology = catalog.parse(f"name: {SERVERS}\nprovider: podman\nstack: patroni\n"
                                     f"network: {{subnet: 10.101.0.0/24}}\n"
                                     + (f"podman: {{image: {IMAGE}}}\n" if IMAGE else "") + NODES)
    servers = PodmanProvider(servers_topology, servers_file.parent / ".pglab" / SERVERS)
    figures: dict[str, object] = {}
    before: dict[str, list[str]] = {}
    lab_ports: list[int] = []
    lab_file = tmp_path / "lab" / "pglab.yml"
    lab_file.parent.mkdir()
    lab_file.write_text(lab_text(servers.key_file))
    try:
        servers.create()  # the servers, their sshd with the key; this process is now in their namespace
        topology = catalog.load(lab_file)
        lab_ports = sorted(topology.ports.model_dump().values())
        public_key = servers.key_file.with_suffix(".pub").read_text().strip()
        for node in topology.nodes:
            # The lab's key for the administrator, as a server's owner would have given it.
            keys = f"/home/{USER}/.ssh/authorized_keys"
            on(servers, node.name, f"echo {shlex.quote(public_key)} > {keys} && chown {USER}: {keys}")
            if IMAGE is not None:
                # An image of another pglab may start Debian's PgBouncer at boot, on the pooler's
                # port: a server whose owner left it running would be refused for it, so stop it
                # as that owner would. pglab's own image keeps it off.
                on(servers, node.name, "systemctl disable --now pgbouncer.service")
            listening = on(servers, node.name, "ss -Htlnp")
            print(f"{node.name} listens on:\n{listening}", flush=True)
            assert f":{topology.ports.pooler} " not in listening, f"a PgBouncer runs on {node.name} before the lab"
        before = {n.name: left_on(servers, n.name, lab_ports) for n in topology.nodes}

        # Refused before anything changes -------------------------------------------------------
        on(servers, "pg2", "systemctl stop ssh.service ssh.socket 2>/dev/null; true")
        on(servers, "dcs", "mv /etc/os-release /etc/os-release.saved && printf '%s\\n' ID=ubuntu "
                           "VERSION_ID=22.04 'PRETTY_NAME=\"Ubuntu 22.04.3 LTS\"' > /etc/os-release")
        on(servers, "pg1", f"systemd-run --unit {HOLDER} python3 -c 'import socket, time; s = socket.socket(); "
                           f"s.bind((\"0.0.0.0\", {topology.ports.patroni})); s.listen(); time.sleep(3600)'")
        time.sleep(1)
        refused = pglab("up", lab_file=lab_file, expect=2)
        said = " ".join(refused.stderr.split())
        assert f"pg2 (10.101.0.13) did not answer SSH as {USER}" in said, said
        assert "dcs (10.101.0.11) runs Ubuntu 22.04.3 LTS, not Debian 12" in said, said
        assert f"on pg1 (10.101.0.12) ports the lab needs are held: {topology.ports.patroni} (postgres) by " \
               f"{HOLDER}.service" in said, said
        assert not (lab_file.parent / ".pglab" / LAB / "hosts").exists()
        on(servers, "pg2", "systemctl start ssh.service")
        on(servers, "dcs", "mv /etc/os-release.saved /etc/os-release")
        on(servers, "pg1", f"systemctl stop {HOLDER}")
        for node in topology.nodes:
            assert left_on(servers, node.name, lab_ports) == before[node.name], f"a refused `up` changed {node.name}"

        # The dry run, then the lab ------------------------------------------------------------
        check = pglab("up", "--check", lab_file=lab_file)
        assert "Nothing was changed" in check.stdout
        assert all(left_on(servers, n.name, lab_ports) == before[n.name] for n in topology.nodes), \
            "`up --check` changed a server"
        started = time.monotonic()
        pglab("up", lab_file=lab_file)
        figures["hosts_up_s"] = round(time.monotonic() - started)
        started = time.monotonic()
        verified = json.loads(pglab("verify", "--json", lab_file=lab_file).stdout)
        figures["hosts_verify_s"] = round(time.monotonic() - started)
        figures["checks"] = sum(1 for r in verified["results"] if r["outcome"] == "passed")
        second = json.loads(pglab("up", "--json", lab_file=lab_file).stdout)
        figures["hosts_second_up_changed"] = second["changed"]
        pglab("drill", "crash", lab_file=lab_file)
        figures["hosts_drills"] = 1
    finally:
        if (lab_file.parent / ".pglab" / LAB).exists():
            started = time.monotonic()
            destroyed = pglab("destroy", "--yes", lab_file=lab_file, expect=None)
            figures["hosts_destroy_s"] = round(time.monotonic() - started)
            assert destroyed.returncode == 0 or sys.exc_info()[0] is not None, "`pglab destroy` failed"
        left = [] if not servers.is_created() or not before else [
            f"{n.name}: {line}" for n in servers_topology.nodes
            for line in sorted(set(left_on(servers, n.name, lab_ports)) - set(before.get(n.name, [])))]
        servers.destroy()
        _append_summary(figures)
    assert not left, f"`pglab destroy` left {left}"
    assert figures["hosts_second_up_changed"] == 0, "a second `pglab up` on the servers changed something"
    assert not hosts.HostsProvider(catalog.load(lab_file), lab_file.parent / ".pglab" / LAB).is_created()


def _append_summary(figures: dict[str, object]) -> None:
    """Add the figures to the `containers-e2e:` line (the podman test's), or start it."""
    part = " ".join(f"{k}={v}" for k, v in figures.items())
    summary = os.environ.get("PGLAB_E2E_SUMMARY")
    path = Path(summary) if summary else None
    line = path.read_text().strip() if path and path.exists() and path.read_text().strip() else "containers-e2e:"
    print(f"{line} {part}", flush=True)
    if path:
        path.write_text(f"{line} {part}\n")
