"""The local provider: every node is a set of real processes on this machine, bound to its own
loopback address and supervised by one supervisord per lab.

As root, every program of a node starts inside the node's own cgroup (see
:mod:`pglab.providers.cgroups`), so ``hang`` freezes and ``crash`` kills every process of the node
at once, children included, and ``partition`` cuts exactly the node's sockets off the network
(see :mod:`pglab.providers.nft`). Without cgroups a node's processes are found by the environment
supervisord gives them (the lab's socket URL and ``PGLAB_NODE``), by their command line naming the
node's directory, and as their descendants: pglab only ever signals processes it started, by PID.
"""

from __future__ import annotations

import errno
import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Annotated, Any, ClassVar

import jinja2
from pydantic import Field, field_validator
from supervisor.xmlrpc import SupervisorTransport

from pglab import paths
from pglab.errors import PglabError
from pglab.providers import disks, limits, netfaults, nft, ports
from pglab.providers.base import Provider
from pglab.providers.cgroups import NodeCgroup, v2_root
from pglab.topology import Node, Strict
from pglab.waiting import poll, wait_until


def program_name(node: str, service: str) -> str:
    """The supervisor program running ``service`` on ``node``: ``NODE-SERVICE``, the name
    roles/pglab/tasks/service.yml gives it. Node names may hold dashes and service names never
    do, so the last dash splits a program name back exactly (see :func:`program_node`)."""
    if "-" in service or not service:
        raise ValueError(f"a service name must be a word without dashes, not {service!r}")
    return f"{node}-{service}"


def program_node(program: str) -> tuple[str, str]:
    """(node, service) of a program named by :func:`program_name`."""
    node, _, service = program.rpartition("-")
    return node, service


class LocalSettings(Strict):
    """The topology's ``local:`` section: how the nodes are laid out on this machine."""

    # Each data node's PostgreSQL data lives on a sparse image of this size, loop-mounted (as root,
    # where loop devices work), so a full disk fills the node and never the host.
    disk_size: Annotated[str, Field(pattern=r"^[1-9][0-9]*[MG]$")] = "4G"

    @field_validator("disk_size")
    @classmethod
    def _room_for_a_cluster(cls, size: str) -> str:
        if disks.size_bytes(size) < MIN_DISK:
            raise ValueError(f"{size} leaves no room for a cluster and its WAL; give at least 256M")
        return size


MIN_DISK = 256 * 2**20
# The node's processes join these controllers' groups when they are managed by cgroup v1 (on v2 the
# node's own cgroup is already theirs): a disk throttle and a CPU limit reach every process.
NODE_CONTROLLERS = ("io", "cpu", "memory")
# supervisord's states of a program that has not stopped yet.
RUNNING_STATES = frozenset({"STARTING", "RUNNING", "BACKOFF", "STOPPING"})


class LocalProvider(Provider):
    name = "local"
    nodes_on_this_machine = True
    dcs = ("etcd",)
    dcs_note = "Debian 12 packages no Consul"
    vip_note: ClassVar[str | None] = (
        "the local provider cannot carry a virtual IP: all its nodes share this machine's loopback "
        "interface, so an address added for one node would answer for every node at once, and no "
        "address could follow the leader. Remove the vip section, or use provider: podman or vagrant, "
        "whose nodes each have a network of their own")
    settings = LocalSettings
    comments: ClassVar[dict[str, str]] = {"local.disk_size": "each data node's own filesystem (a sparse image)"}
    faults = frozenset({"disk-full", "slow-disk", "cpu-starve", "memory", "loss", "latency", "dcs-loss",
                        "postgres-kill", "pgdata-lost"})

    def __init__(self, topology: Any, lab_dir: Path) -> None:
        super().__init__(topology, lab_dir)
        link = lab_dir / "nodes"
        # The lab records where its nodes live; recomputing could differ (another user, a rename).
        self.run_dir = link.resolve() if link.is_symlink() else paths.runtime_dir(lab_dir, topology.name)
        self.conf = self.run_dir / "supervisord.conf"
        self.socket = self.run_dir / "supervisor.sock"
        self.include_dir = self.run_dir / "supervisor.d"
        self.exec_wrapper = self.run_dir / "pglab-exec"
        self.cgroup_root = v2_root()
        self.firewall = nft.LabFirewall(self.run_dir.name)
        self.net_faults = netfaults.NetFaults(self.run_dir.name)

    # Facts -----------------------------------------------------------------------------------
    def address(self, node: Node) -> str:
        return str(self.topology.loopback_address(node))

    def connection_vars(self, node: Node) -> dict[str, Any]:
        return {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}

    @property
    def service_user(self) -> str:
        return "postgres" if paths.is_root() else getpass.getuser()

    def supervisorctl_command(self) -> str:
        return f"{sys.executable} -m supervisor.supervisorctl -c {self.conf}"

    def inventory_vars(self) -> dict[str, Any]:
        return {
            "pglab_node_root": f"{self.run_dir}/{{{{ inventory_hostname }}}}",
            "pglab_service_manager": "supervisor",
            "pglab_service_user": self.service_user,
            # supervisord runs as the invoking user; only root can (and must) switch users.
            "pglab_supervisor_run_as_user": paths.is_root(),
            "pglab_install_packages": False,
            # On loopback every peer connects from 127.0.0.1, whatever its node address.
            "pglab_hba_networks": ["127.0.0.0/8"],
            "pglab_supervisorctl": self.supervisorctl_command(),
            "pglab_supervisor_include_dir": str(self.include_dir),
            "pglab_service_exec": self._service_exec(),
        }

    def playbook_vars(self) -> dict[str, Any]:
        # The supervisor programs already running: roles/pglab/tasks/service.yml starts only the
        # others, instead of a `supervisorctl start` (a Python start each) per service and node.
        running: list[str] = []
        if self._supervisord_alive():
            with suppress(OSError, xmlrpc.client.Error):
                running = sorted(info["name"] for info in self._rpc().supervisor.getAllProcessInfo()
                                 if info["statename"] == "RUNNING")
        return {"pglab_running_programs": running}

    def _service_exec(self) -> str:
        if self.cgroup_root is None:
            return ""
        host = "{{ inventory_hostname }}"
        node_cgroup = NodeCgroup(self.cgroup_root, self.run_dir.name, host)
        v1_groups = [group.path for group in self._groups(host).values() if not group.v2]
        return f"{self.exec_wrapper} {':'.join(str(p) for p in (node_cgroup.path, *v1_groups))} {self.service_user}"

    def node_root(self, node: Node) -> str:
        return f"{self.run_dir}/{node.name}"

    def run_as_service_user(self, node: Node, argv: list[str],
                            timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
        # As root, the service user (postgres) owns the node's files; otherwise pglab's user runs all.
        prefix = ["runuser", "-u", self.service_user, "--"] if paths.is_root() else []
        return subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=timeout,
                              cwd=self.node_root(node), stdin=subprocess.DEVNULL)

    def cgroup(self, node: Node) -> NodeCgroup | None:
        """The node's cgroup, when this machine gives pglab one (root, cgroup v2)."""
        if self.cgroup_root is None:
            return None
        return NodeCgroup(self.cgroup_root, self.run_dir.name, node.name)

    def busy_ports(self) -> list[str]:
        """Addresses of this lab that something else already listens on."""
        if self.is_created():
            return []
        busy = []
        for node in self.topology.nodes:
            owners = ports.node_ports(self.topology, node)
            for port, owner in owners.items():
                if _listening(self.address(node), port):
                    busy.append(f"{self.address(node)}:{port} ({node.name}, {owner})")
        return busy

    # Lifecycle -------------------------------------------------------------------------------
    def create(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # The service user must traverse to its node directories.
        self.run_dir.chmod(0o755)
        self.include_dir.mkdir(exist_ok=True)
        link = self.lab_dir / "nodes"
        if not link.is_symlink():
            link.symlink_to(self.run_dir, target_is_directory=True)
        template = jinja2.Template(paths.template("supervisord.conf.j2").read_text(), keep_trailing_newline=True)
        text = template.render(name=self.topology.name, run=self.run_dir, as_root=paths.is_root())
        if not self.conf.exists() or self.conf.read_text() != text:
            self.conf.write_text(text)
        wrapper = paths.template("pglab-exec.sh").read_text()
        if not self.exec_wrapper.exists() or self.exec_wrapper.read_text() != wrapper:
            self.exec_wrapper.write_text(wrapper)
        self.exec_wrapper.chmod(0o755)
        for node in self.topology.nodes:  # converging heals `stop --partition` and thaws `stop --hang`
            cgroup = self.cgroup(node)
            if cgroup is not None:
                cgroup.create()
                for group in self._groups(node.name).values():
                    group.create()
            self._thaw(node)
        self._make_disks()
        self.firewall.remove()
        if not self._supervisord_alive():
            subprocess.run(
                [sys.executable, "-m", "pglab.providers.subreaper", "-c", str(self.conf)],
                check=True, cwd=self.run_dir, stdin=subprocess.DEVNULL,
            )
            wait_until(lambda: (self._supervisord_alive(), "no answer yet"), 15,
                       f"supervisord to answer on {self.socket}")

    def is_created(self) -> bool:
        return self.run_dir.exists()

    def destroy(self) -> None:
        if self._supervisord_alive():
            with suppress(OSError, xmlrpc.client.Error):
                self._stop_data_nodes_first()
            with suppress(OSError, xmlrpc.client.Error):
                self._rpc().supervisor.stopAllProcesses(True)
            with suppress(OSError, xmlrpc.client.Error):
                self._rpc().supervisor.shutdown()
            poll(lambda: (not self._supervisord_alive(), "supervisord still answers"), 30)
        # Anything that outlived supervisord (a postmaster whose Patroni was killed, a frozen or
        # a freshly forked process) is killed by PID, again until none is left.
        def nothing_left() -> tuple[bool, str]:
            pids = list(self._lab_pids())
            for pid in pids:
                _signal(pid, signal.SIGKILL)
                _signal(pid, signal.SIGCONT)  # a frozen process dies only once thawed
            return not pids, f"processes {pids} still running"

        wait_until(nothing_left, 20, f"the processes of lab {self.topology.name} to exit", interval=0.2)
        pid = self._supervisord_pid()
        if pid:
            _signal(pid, signal.SIGKILL)
        self.firewall.remove()
        for node in self.topology.nodes:
            for group in self._groups(node.name).values():
                group.remove()
            cgroup = self.cgroup(node)
            if cgroup is not None:
                cgroup.remove()
            if "postgres" in node.roles:
                self.disk(node).remove()
        shutil.rmtree(self.run_dir, ignore_errors=True)
        if self.run_dir.exists():
            raise PglabError(f"could not remove {self.run_dir}; remove it by hand")
        with suppress(OSError):
            self.run_dir.parent.rmdir()  # the shared parent goes too once the last lab is gone

    def _stop_data_nodes_first(self) -> None:
        """Stop the data nodes' programs together, before the DCS and the backup repository they
        talk to: stopped all at once, a leader whose DCS and repository went first waits out
        Patroni's retries and its archiver's tries (half a minute and more) on its way down."""
        data_nodes = {n.name for n in self.topology.with_role("postgres")}
        rpc = self._rpc()
        programs = [i["name"] for i in rpc.supervisor.getAllProcessInfo()
                    if program_node(i["name"])[0] in data_nodes and i["statename"] in RUNNING_STATES]
        for name in programs:
            with suppress(xmlrpc.client.Fault):  # stopped by itself meanwhile
                rpc.supervisor.stopProcess(name, False)

        def stopped() -> tuple[bool, str]:
            running = [i["name"] for i in rpc.supervisor.getAllProcessInfo()
                       if i["name"] in programs and i["statename"] in RUNNING_STATES]
            return not running, f"still running: {running}"

        poll(stopped, 70)  # supervisord kills what has not stopped after stopwaitsecs (60 s)

    def preflight(self) -> list[str]:
        busy = self.busy_ports()
        if not busy:
            return []
        return [
            "these addresses are already in use, probably by another lab or a local server: "
            f"{', '.join(busy)}. Destroy that lab (`pglab destroy` in its directory) or give this one "
            "another network.loopback in its topology file."
        ]

    def stop(self, node: Node) -> None:
        self._thaw(node)
        rpc = self._rpc()
        for name in self._programs(node):
            with suppress(xmlrpc.client.Fault):
                rpc.supervisor.stopProcess(name, True)

    def start(self, node: Node) -> None:
        self.firewall.heal(node.name)
        self._thaw(node)
        rpc = self._rpc()
        for name in self._programs(node):
            state = rpc.supervisor.getProcessInfo(name)["statename"]
            if state != "RUNNING":
                with suppress(xmlrpc.client.Fault):
                    rpc.supervisor.startProcess(name, True)

    def stop_service(self, node: Node, service: str) -> None:
        with suppress(xmlrpc.client.Fault):  # NOT_RUNNING: already stopped
            self._rpc().supervisor.stopProcess(program_name(node.name, service), True)

    def start_service(self, node: Node, service: str) -> None:
        with suppress(xmlrpc.client.Fault):  # ALREADY_STARTED
            self._rpc().supervisor.startProcess(program_name(node.name, service), True)

    def crash(self, node: Node) -> None:
        cgroup = self.cgroup(node)
        if cgroup is not None and cgroup.exists():
            cgroup.kill()
        for pid in self.node_pids(node):  # stragglers started before the node had a cgroup
            _signal(pid, signal.SIGKILL)
            _signal(pid, signal.SIGCONT)
        poll(lambda: (not self.node_pids(node), "still running"), 15)

    def hang(self, node: Node) -> None:
        cgroup = self.cgroup(node)
        if cgroup is not None and cgroup.exists():
            cgroup.freeze()
            wait_until(lambda: (cgroup.frozen(), "freezing"), 10, f"the cgroup of {node.name} to freeze",
                       interval=0.02)
        inside = set(cgroup.pids()) if cgroup is not None else set()
        # Processes outside the cgroup (started before it existed, or no cgroups here): SIGSTOP,
        # repeated until a pass finds none left running, so a child forked meanwhile is caught too.
        def all_stopped() -> tuple[bool, str]:
            running = [pid for pid in self.node_pids(node) if pid not in inside and not _is_stopped(pid)]
            for pid in running:
                _signal(pid, signal.SIGSTOP)
            return not running, f"processes {running} still running"

        wait_until(all_stopped, 10, f"every process of {node.name} to stop", interval=0.02)

    def partition(self, node: Node) -> None:
        cgroup = self.cgroup(node)
        if cgroup is None or not cgroup.exists():
            raise PglabError(f"cutting {node.name} off the network needs root and cgroup v2 (the node's "
                             "processes are matched by their cgroup); run pglab as root")
        self.firewall.partition(node.name, self.address(node), cgroup.nft_match())

    def impair_network(self, node: Node, loss_percent: float = 0.0, delay_ms: float = 0.0,
                       jitter_ms: float = 0.0) -> None:
        cgroup = self.cgroup(node)
        if cgroup is None or not cgroup.exists():
            raise PglabError(f"impairing {node.name}'s network needs root and cgroup v2; run pglab as root")
        address = self.address(node)
        others = sorted({self.address(n) for n in self.topology.nodes} - {address})
        if delay_ms:
            self.net_faults.delay(node.name, address, others, cgroup.nft_match(), delay_ms, jitter_ms)
        else:
            self.net_faults.lose(node.name, address, others, cgroup.nft_match(), loss_percent)

    def heal_network(self, node: Node) -> int | None:
        dropped = self.net_faults.dropped(node.name)
        return dropped if self.net_faults.lift(node.name) else None

    def kill_process(self, node: Node, pid: int) -> None:
        if pid not in self.node_pids(node):
            raise PglabError(f"process {pid} is not one of {node.name}'s")
        _signal(pid, signal.SIGKILL)

    def remove_directory(self, node: Node, path: str) -> None:
        if not Path(path).resolve().is_relative_to(Path(self.node_root(node)).resolve()):
            raise PglabError(f"{path} is not below {node.name}'s root {self.node_root(node)}")
        # The running PostgreSQL may write a file into a directory between rmtree emptying it and
        # removing it (ENOTEMPTY): go again until the whole tree is gone.
        for _ in range(50):
            try:
                shutil.rmtree(path)
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                if exc.errno != errno.ENOTEMPTY:
                    raise
                time.sleep(0.05)
        shutil.rmtree(path)

    def spawn_beside(self, node: Node, argv: list[str], env: dict[str, str]) -> subprocess.Popen[str] | None:
        cgroup = self.cgroup(node)
        if cgroup is None or not cgroup.exists():
            return None
        return subprocess.Popen([str(self.exec_wrapper), str(cgroup.path), "root", *argv], env={**os.environ, **env},
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)

    # Resource faults ------------------------------------------------------------------------------
    def disk(self, node: Node) -> disks.NodeDisk:
        """The data node's own filesystem: an image in the lab's run directory, mounted on the
        directory that holds its PGDATA."""
        pgdata = paths.postgres_data_dir(self.node_root(node), self.topology.postgres.version)
        return disks.NodeDisk(self.run_dir / "disks" / f"{node.name}.img", Path(pgdata).parent)

    def _make_disks(self) -> None:
        data_nodes = self.topology.with_role("postgres")
        if not data_nodes or all(self.disk(node).mounted() for node in data_nodes):
            return
        why = disks.cannot_make()
        if why is not None:
            self.report(f"the data nodes keep their data in plain directories ({why}): no disk-full or slow-disk drill")
            return
        size = self.topology.section(self.name, LocalSettings).disk_size
        made: list[disks.NodeDisk] = []
        for node in data_nodes:
            disk = self.disk(node)
            if disk.occupied():  # a lab made before its nodes had disks keeps its data where it is
                self.report(f"{node.name} keeps its data in plain directories (made before it had a disk of its own)")
                continue
            was_mounted = disk.mounted()
            try:
                disk.make(disks.size_bytes(size))
            except disks.NoLoopDevice as exc:
                # Loop devices are few (often 8) and other labs may hold them: all data nodes or none
                # get a disk, so the lab still comes up, without the two disk drills.
                for undone in (*made, disk):
                    undone.remove()
                self.report(f"the data nodes keep their data in plain directories ({exc}): "
                            "no disk-full or slow-disk drill")
                return
            if not was_mounted:
                made.append(disk)

    def _groups(self, node: str) -> dict[str, limits.ControllerGroup]:
        """The node's group in each controller pglab limits, where this machine has the controller."""
        if self.cgroup_root is None:
            return {}
        found = {}
        for controller in NODE_CONTROLLERS:
            where = limits.hierarchy(controller, self.cgroup_root)
            if where is not None:
                found[controller] = limits.ControllerGroup(controller, where[0], where[1], self.run_dir.name, node)
        return found

    def cannot(self, fault: str) -> str | None:
        if fault not in self.faults:
            return super().cannot(fault)
        if fault in ("dcs-loss", "postgres-kill", "pgdata-lost"):
            return None  # services stopped, one process killed, one directory removed: no cgroup needed
        if self.cgroup_root is None:
            return (f"{fault} on the local provider needs root and cgroup v2 (the node's processes are found by "
                    "their cgroup)")
        if fault == "latency":
            return netfaults.netem_missing()
        needs = {"slow-disk": "io", "cpu-starve": "cpu", "memory": "memory"}.get(fault)
        if needs is not None and limits.hierarchy(needs, self.cgroup_root) is None:
            return (f"{fault} needs the {needs} cgroup controller (cgroup v2 lists none such in "
                    f"{self.cgroup_root}/cgroup.controllers, and no v1 {limits.V1_NAMES[needs]} hierarchy is mounted)")
        if fault in ("disk-full", "slow-disk"):
            plain = [n.name for n in self.topology.with_role("postgres") if not self.disk(n).mounted()]
            if plain:
                return (f"{fault} needs each data node's data on a filesystem of its own, which `pglab up` makes as "
                        f"root where loop devices work; {', '.join(plain)} keep theirs in plain directories"
                        + (f" ({disks.cannot_make()})" if disks.cannot_make() else ""))
        return None

    def fill_disk(self, node: Node) -> str:
        disk = self.disk(node)
        added = disk.fill()
        return f"filled {disk.mount_point} on {node.name} with {added / 2**20:.0f} MiB of ballast"

    def empty_disk(self, node: Node) -> str | None:
        disk = self.disk(node)
        if not disk.ballast():
            return None
        freed = disk.empty()
        return f"removed {freed / 2**20:.0f} MiB of ballast from {node.name}"

    def throttle_disk(self, node: Node, iops: int | None, bps: int | None) -> str:
        device = self.disk(node).device()
        group = self._groups(node.name).get("io")
        if device is None or group is None:
            raise PglabError(self.cannot("slow-disk") or f"{node.name} has no disk of its own")
        group.join(self._strays(node, group))
        group.throttle_io(device, iops, bps)
        limit = " and ".join(f"{v} {unit}" for v, unit in ((iops, "IOPS"), (bps, "bytes/s")) if v is not None)
        return f"{node.name}'s disk ({device}) throttled to {limit} for reads and for writes"

    def limit_cpu(self, node: Node, percent: float) -> str:
        group = self._groups(node.name).get("cpu")
        if group is None:
            raise PglabError(self.cannot("cpu-starve") or "no cpu controller")
        group.join(self._strays(node, group))
        group.limit_cpu(percent)
        return f"{node.name} limited to {percent:g} % of one core"

    def limit_postgres_memory(self, node: Node, megabytes: int) -> str:
        group = self._groups(node.name).get("memory")
        if group is None:
            raise PglabError(self.cannot("memory") or "no memory controller")
        postmaster = self._postmaster(node)
        if postmaster is None:
            raise PglabError(f"no PostgreSQL runs on {node.name}")
        group.limit_postgres_memory(megabytes, _descendants(postmaster))
        return f"{node.name}'s PostgreSQL (postmaster {postmaster} and its children) limited to {megabytes} MB"

    def oom_kills(self, node: Node) -> int:
        group = self._groups(node.name).get("memory")
        return group.oom_kills() if group is not None else 0

    def lift_limits(self, node: Node) -> str | None:
        lifted = []
        groups = self._groups(node.name)
        if "io" in groups and groups["io"].unthrottle_io():
            lifted.append("disk throttle")
        if "cpu" in groups and groups["cpu"].unlimit_cpu():
            lifted.append("CPU limit")
        if "memory" in groups and groups["memory"].unlimit_postgres_memory():
            lifted.append("PostgreSQL memory limit")
        return f"lifted {node.name}'s {' and '.join(lifted)}" if lifted else None

    def undo_faults(self) -> list[str]:
        undone = self.net_faults.remove()
        for node in self.topology.nodes:
            lifted = self.lift_limits(node)
            if lifted:
                undone.append(lifted)
            if "postgres" in node.roles:
                emptied = self.empty_disk(node)
                if emptied:
                    undone.append(emptied)
        return undone

    def _postmaster(self, node: Node) -> int | None:
        """The node's postmaster: the first line of its PGDATA's postmaster.pid, when it runs."""
        pgdata = paths.postgres_data_dir(self.node_root(node), self.topology.postgres.version)
        try:
            pid = int(Path(pgdata, "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def _strays(self, node: Node, group: limits.ControllerGroup) -> list[int]:
        """The node's processes outside its group in a controller (started before it existed)."""
        inside = set(group.pids())
        return [pid for pid in self.node_pids(node) if pid not in inside]

    def is_partitioned(self, node: Node) -> bool:
        return self.firewall.is_partitioned(node.name)

    def node_pids(self, node: Node) -> list[int]:
        """Every live process of the node: its cgroup's, and those found by environment, command
        line (the postmaster names the node's data directory) and descent."""
        cgroup = self.cgroup(node)
        found = set(cgroup.pids()) if cgroup is not None else set()
        found.update(self._node_pids(node))
        node_dir = f"{self.run_dir}/{node.name}/".encode()
        children: dict[int, list[int]] = {}
        for pid, ppid, cmdline in _processes():
            children.setdefault(ppid, []).append(pid)
            if node_dir in cmdline:
                found.add(pid)
        todo = list(found)
        while todo:
            for child in children.get(todo.pop(), []):
                if child not in found:
                    found.add(child)
                    todo.append(child)
        return sorted(pid for pid in found if _alive(pid))

    def services(self, node: Node) -> dict[str, str]:
        if not self._supervisord_alive():
            return {}
        cgroup = self.cgroup(node)
        if cgroup is not None and cgroup.frozen():
            frozen = set(self.node_pids(node))
        else:
            frozen = {pid for pid in self.node_pids(node) if _is_stopped(pid)}
        states = {}
        for info in self._rpc().supervisor.getAllProcessInfo():
            owner, service = program_node(info["name"])
            if owner == node.name:
                states[service] = "FROZEN" if info["pid"] in frozen else info["statename"]
        return states

    def logs(self, node: Node, service: str | None = None, lines: int = 50) -> str:
        log_dir = self.run_dir / node.name / "var" / "log" / "pglab"
        files = sorted(log_dir.glob("*.log")) if service is None else [log_dir / f"{service}.log"]
        out = []
        for f in files:
            if f.exists():
                tail = f.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"==> {node.name} {f.stem} ({f}) <==\n" + "\n".join(tail))
        return "\n\n".join(out) or f"no logs for {node.name} under {log_dir}"

    # Internals -------------------------------------------------------------------------------
    def _rpc(self) -> Any:
        transport = SupervisorTransport(None, None, f"unix://{self.socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def _supervisord_alive(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return bool(self._rpc().supervisor.getState()["statename"] == "RUNNING")
        except (OSError, xmlrpc.client.Error):
            return False

    def _supervisord_pid(self) -> int | None:
        try:
            pid = int((self.run_dir / "supervisord.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _cmdline_has(pid, str(self.conf)) else None

    def _programs(self, node: Node) -> list[str]:
        return [
            info["name"]
            for info in self._rpc().supervisor.getAllProcessInfo()
            if program_node(info["name"])[0] == node.name
        ]

    def _lab_pids(self) -> Iterator[int]:
        url = f"SUPERVISOR_SERVER_URL=unix://{self.socket}".encode()
        for pid, env in _environments():
            if url in env:
                yield pid

    def _node_pids(self, node: Node) -> Iterator[int]:
        url = f"SUPERVISOR_SERVER_URL=unix://{self.socket}".encode()
        mark = f"PGLAB_NODE={node.name}".encode()
        for pid, env in _environments():
            if url in env and mark in env:
                yield pid

    def _thaw(self, node: Node) -> None:
        cgroup = self.cgroup(node)
        if cgroup is not None:
            cgroup.thaw()
        for pid in self.node_pids(node):
            if _is_stopped(pid):
                _signal(pid, signal.SIGCONT)


def _environments() -> Iterator[tuple[int, list[bytes]]]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield int(entry.name), (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue


def _processes() -> Iterator[tuple[int, int, bytes]]:
    """(pid, parent pid, command line) of every process."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            yield int(entry.name), int(stat.rsplit(")", 1)[1].split()[1]), cmdline


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    children: dict[int, list[int]] = {}
    for child, parent, _ in _processes():
        children.setdefault(parent, []).append(child)
    found, todo = [pid], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _is_stopped(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "T"


def _cmdline_has(pid: int, text: str) -> bool:
    try:
        return text.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _signal(pid: int, sig: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _listening(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0
