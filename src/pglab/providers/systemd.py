"""The half every provider of systemd machines shares (VMs, containers with systemd, hosts):
services are systemd units, their logs come from the journal, faults are produced on the node
itself (a crash by SIGKILL to every unit, a hang by freezing the units' cgroups, a partition by
nftables), and every command goes over the provider's own connection (``vagrant ssh``, ``podman
exec``, plain SSH).

A subclass adds only its machines' lifecycle (make, remove, start and stop a machine), its
connection (:meth:`SystemdProvider.run_command`) and, where a machine can be frozen or off as a
whole, what its services are then (:meth:`SystemdProvider.machine_state`). It never names a stack:
the units are what the lab's stack and components declare.
"""

from __future__ import annotations

import contextlib
import shlex
import subprocess
from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from pglab import paths, stacks
from pglab.components import components
from pglab.errors import PglabError
from pglab.providers import unit_faults
from pglab.providers.base import Provider
from pglab.topology import Node

PARTITION_TABLE = "pglab_partition"  # nftables table inside a node cut off by `stop --partition`
# systemctl's words for a unit's state, in the vocabulary the local provider's supervisor uses.
UNIT_STATES = {
    "active": "RUNNING",
    "reloading": "RUNNING",
    "activating": "STARTING",
    "deactivating": "STOPPING",
    "inactive": "STOPPED",
    "failed": "FATAL",
}
# Every word `systemctl is-active` answers with for a unit.
SYSTEMD_STATES = {*UNIT_STATES, "unknown", "maintenance", "refreshing"}
SERVICE_USER = "postgres"


class SystemdError(PglabError):
    """A command on a systemd node failed or answered what it should not."""


class SystemdProvider(Provider):
    """Nodes whose services run as systemd units, reached over a connection the subclass owns."""

    # The error this provider's failures raise (a subclass names its own).
    error: ClassVar[type[PglabError]] = SystemdError
    # disk-full is not offered: the data shares the machine's root filesystem, and filling that
    # would fill the machine's whole disk (and its image on the host).
    faults: ClassVar[frozenset[str]] = frozenset({"slow-disk", "cpu-starve", "memory", "loss", "latency",
                                                  "dcs-loss", "postgres-kill", "pgdata-lost"})

    # The connection --------------------------------------------------------------------------
    @abstractmethod
    def run_command(self, node: Node, command: str) -> str:
        """Run a shell ``command`` on the node over the provider's connection; its output.
        Raises :attr:`error` when it fails."""

    def machine_state(self, node: Node) -> str | None:
        """What every service of the node is when the machine itself is not running
        (``FROZEN``, ``STOPPED``), without asking the node; None when it runs."""
        return None

    # Facts -----------------------------------------------------------------------------------
    def inventory_vars(self) -> dict[str, Any]:
        return {
            "pglab_node_root": "",
            "pglab_service_manager": "systemd",
            "pglab_service_user": SERVICE_USER,
            "pglab_install_packages": True,
            "pglab_hba_networks": [str(self.topology.network.subnet)],
        }

    # Services --------------------------------------------------------------------------------
    def units(self, node: Node) -> list[str]:
        """The systemd units the node's roles run, in role order, then its components'."""
        spec = stacks.spec(self.topology.stack)
        return [*(spec.service(role, self.topology) for role in node.roles),
                *(unit for component in components() for unit in component.services(self.topology, node))]

    def stop_service(self, node: Node, service: str) -> None:
        self.run_command(node, f"sudo systemctl stop {shlex.quote(service)}")

    def start_service(self, node: Node, service: str) -> None:
        self.run_command(node, f"sudo systemctl start {shlex.quote(service)}")

    def services(self, node: Node) -> dict[str, str]:
        units = self.units(node)
        # Asking a frozen or powered-off machine would hang or fail: its state says it all.
        state = self.machine_state(node)
        if state is not None:
            return dict.fromkeys(units, state)
        # `is-active` exits non-zero when a unit is not active, yet prints one line per unit. sudo:
        # a user's systemctl needs D-Bus, which a minimal Debian (pglab's box) does not run.
        answer = self.run_command(node, f"sudo systemctl is-active {shlex.join(units)} 2>&1 || true")
        words = answer.split()
        # Anything but one state per unit is systemctl failing (no D-Bus, no sudo ...): say so
        # rather than show every service as unknown.
        if len(words) != len(units) or not set(words) <= SYSTEMD_STATES:
            raise self.error(f"`systemctl is-active` on {node.name} did not answer with service states: "
                             f"{answer.strip()[:300] or '(nothing)'}")
        return {u: UNIT_STATES.get(w, w.upper()) for u, w in zip(units, words, strict=True)}

    def logs(self, node: Node, service: str | None = None, lines: int = 50) -> str:
        units = [service] if service else self.units(node)
        flags = " ".join(f"-u {shlex.quote(u)}" for u in units)
        # sudo: the connecting user is not in systemd-journal, so it would see only its own journal.
        return self.run_command(node, f"sudo journalctl {flags} -n {int(lines)} --no-pager")

    def holds_address(self, node: Node, address: str) -> bool:
        if self.machine_state(node) is not None:  # frozen or off: nothing to ask, nothing it serves
            return False
        try:
            answer = self.run_command(node, f"ip -o -4 addr show to {shlex.quote(address)}/32")
        except (PglabError, subprocess.CalledProcessError):
            return False
        return bool(answer.strip())

    def run_as_service_user(self, node: Node, argv: list[str],
                            timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
        command = f"sudo -u {SERVICE_USER} " + shlex.join(argv)
        try:
            out = self.run_command(node, command)
        except subprocess.CalledProcessError as exc:
            return subprocess.CompletedProcess(argv, exc.returncode, str(exc.output or ""), str(exc.stderr or ""))
        return subprocess.CompletedProcess(argv, 0, out, "")

    # Faults on the node ----------------------------------------------------------------------
    def stop(self, node: Node) -> None:
        self.run_command(node, f"sudo systemctl stop {shlex.join(self.units(node))}")

    def start(self, node: Node) -> None:
        """Heal a partition, thaw a hang, start what a stop or a crash left down."""
        units = shlex.join(self.units(node))
        self.heal(node)
        self.run_command(node, f"sudo systemctl thaw {units} 2>/dev/null || true; sudo systemctl start {units}")

    def crash(self, node: Node) -> None:
        # SIGKILL to every process of every unit: no clean shutdown (systemd restarts none of
        # pglab's units by itself: `start` does).
        self.run_command(node, f"sudo systemctl kill --signal=SIGKILL {shlex.join(self.units(node))}")

    def hang(self, node: Node) -> None:
        # The cgroup freezer stops every process of the units at once, children included, and
        # keeps their TCP peers waiting, as SIGSTOP does to a process.
        self.run_command(node, f"sudo systemctl freeze {shlex.join(self.units(node))}")

    def partition(self, node: Node) -> None:
        # On the node: drop everything to and from the other nodes' addresses.
        others = ", ".join(str(n.address) for n in self.topology.nodes if n.name != node.name)
        self.run_command(node, "sudo sh -c " + shlex.quote(
            f"command -v nft >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables; "
            f"nft add table inet {PARTITION_TABLE}; "
            f"nft 'add chain inet {PARTITION_TABLE} in {{ type filter hook input priority 0; policy accept; }}'; "
            f"nft 'add chain inet {PARTITION_TABLE} out {{ type filter hook output priority 0; policy accept; }}'; "
            f"nft 'add rule inet {PARTITION_TABLE} in ip saddr {{ {others} }} drop'; "
            f"nft 'add rule inet {PARTITION_TABLE} out ip daddr {{ {others} }} drop'"))

    def heal(self, node: Node) -> None:
        """Undo :meth:`partition` (nothing when the node is not cut off)."""
        self.run_command(node, f"sudo nft delete table inet {PARTITION_TABLE} 2>/dev/null || true")

    # The slower faults ------------------------------------------------------------------------
    # A fault left on a node is remembered in the lab's directory, so that `up` and `destroy`
    # undo only what a drill left (asking every machine would cost every `up` a round trip each).
    def _marker(self, node: Node, what: str) -> Path:
        return self.lab_dir / "faults" / f"{node.name}.{what}"

    def _remember(self, node: Node, what: str) -> None:
        marker = self._marker(node, what)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()

    def _forget(self, node: Node, what: str) -> bool:
        marker = self._marker(node, what)
        found = marker.exists()
        with contextlib.suppress(FileNotFoundError):
            marker.unlink()
        return found

    def _others(self, node: Node) -> list[str]:
        return [str(n.address) for n in self.topology.nodes if n.name != node.name]

    def impair_network(self, node: Node, loss_percent: float = 0.0, delay_ms: float = 0.0,
                       jitter_ms: float = 0.0) -> None:
        self._remember(node, "network")
        if delay_ms:
            self.run_command(node, unit_faults.delay(str(node.address), self._others(node), delay_ms, jitter_ms))
        else:
            self.run_command(node, unit_faults.lose(self._others(node), loss_percent))

    def heal_network(self, node: Node) -> int | None:
        self._forget(node, "network")
        return unit_faults.dropped(self.run_command(node, unit_faults.heal(str(node.address))))

    def kill_process(self, node: Node, pid: int) -> None:
        # Only a process of one of the node's units: a stale pid never hits anything else.
        script = "".join(f"g=$(systemctl show -p ControlGroup --value {shlex.quote(unit + '.service')}); "
                         f"grep -qx {pid} /sys/fs/cgroup$g/cgroup.procs 2>/dev/null && "
                         f"{{ kill -KILL {pid}; exit 0; }}; " for unit in self.units(node))
        self.run_command(node, "sudo sh -c " + shlex.quote(
            script + f"echo 'process {pid} is not one of the units of {node.name}' >&2; exit 1"))

    def remove_directory(self, node: Node, path: str) -> None:
        home = paths.postgres_home(self.node_root(node))
        if not path.startswith(home.rstrip("/") + "/"):
            raise self.error(f"{path} is not below {node.name}'s PostgreSQL home {home}")
        self.run_command(node, f"sudo rm -rf {shlex.quote(path)}")

    def throttle_disk(self, node: Node, iops: int | None, bps: int | None) -> str:
        # systemd finds the device of the file system holding the path itself.
        data = paths.postgres_home(self.node_root(node))
        properties: dict[str, str] = {}
        if iops is not None:
            properties.update(IOReadIOPSMax=f"{data} {iops}", IOWriteIOPSMax=f"{data} {iops}")
        if bps is not None:
            properties.update(IOReadBandwidthMax=f"{data} {bps}", IOWriteBandwidthMax=f"{data} {bps}")
        self._remember(node, "limits")
        self.run_command(node, unit_faults.set_properties(self.units(node), properties))
        limit = " and ".join(f"{v} {unit}" for v, unit in ((iops, "IOPS"), (bps, "bytes/s")) if v is not None)
        return f"{node.name}'s data disk throttled to {limit} for reads and for writes"

    def limit_cpu(self, node: Node, percent: float) -> str:
        self._remember(node, "limits")
        self.run_command(node, unit_faults.set_properties(self.units(node), {"CPUQuota": f"{percent:g}%"}))
        return f"{node.name} limited to {percent:g} % of one core"

    def _postgres_unit(self) -> str:
        return stacks.spec(self.topology.stack).service("postgres", self.topology)

    def limit_postgres_memory(self, node: Node, megabytes: int) -> str:
        # The stack's own process (Patroni, the keeper) shares PostgreSQL's unit, so it shares the
        # limit; the kernel's OOM killer still picks the largest process: the growing backend.
        unit = self._postgres_unit()
        self._remember(node, "limits")
        self.run_command(node, unit_faults.set_properties([unit], {"MemoryMax": f"{megabytes}M", "MemorySwapMax": "0"}))
        return f"{node.name}'s {unit} unit (PostgreSQL and its HA process) limited to {megabytes} MB"

    def oom_kills(self, node: Node) -> int:
        answer = self.run_command(node, unit_faults.oom_kills(self._postgres_unit())).strip()
        return int(answer) if answer.isdigit() else 0

    def lift_limits(self, node: Node) -> str | None:
        if not self._forget(node, "limits"):
            return None
        self.run_command(node, unit_faults.lift_properties(self.units(node)))
        return f"lifted {node.name}'s resource limits"

    def undo_faults(self) -> list[str]:
        undone = []
        for node in self.topology.nodes:
            with contextlib.suppress(PglabError, subprocess.CalledProcessError):
                if self._marker(node, "network").exists():
                    self.heal_network(node)
                    undone.append(f"healed {node.name}'s network")
                lifted = self.lift_limits(node)
                if lifted:
                    undone.append(lifted)
        return undone
