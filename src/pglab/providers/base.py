"""The small interface every provider implements, in the spirit of molecule's drivers.

A provider makes and breaks *machines*: it knows nothing of Patroni or pg_auto_failover. The
lab asks it for each node's address and Ansible connection, and for the variables that tell the
(shared) roles where paths live and how services are supervised on its machines.
"""

from __future__ import annotations

import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from pglab.errors import PglabError
from pglab.prerequisites import Prerequisite
from pglab.topology import Node, Topology

# How much of a failed command's output an error quotes: its end, where the reason is.
FAILURE_DETAIL_CHARS = 2000


class Provider(ABC):
    """One kind of machine. Subclasses are registered by name in :mod:`pglab.providers`."""

    name: str = ""
    # Whether the nodes run on this machine (so pglab can install their packages here).
    nodes_on_this_machine: bool = False
    # The DCS it can run (for stacks that keep their state in one), and why it runs no others.
    dcs: tuple[str, ...] = ("etcd", "consul")
    dcs_note: str = ""
    # Why its nodes cannot carry a virtual IP (``vip:``), with the fix; None: they can (each node
    # has a network interface of its own, on which the address can come and go).
    vip_note: ClassVar[str | None] = None
    # Its own section of the topology (a pydantic model named after the provider, ``vagrant:``),
    # written by `pglab init` for this provider only; None when it has none.
    settings: ClassVar[type[BaseModel] | None] = None
    # `pglab init`'s comments for its section, by dotted key (``vagrant.hypervisor``).
    comments: ClassVar[Mapping[str, str]] = {}
    # The error `up` raises with what ``preflight`` found.
    preflight_error: ClassVar[type[PglabError]] = PglabError
    # Whether the machines outlive the lab (servers that existed before it): `destroy` then asks
    # first (see ``destroy_warning``) and may keep the packages pglab installed.
    keeps_machines: ClassVar[bool] = False

    @classmethod
    def check(cls, topology: Topology) -> None:
        """The provider's own rules for a topology of its labs (its section against the nodes);
        raise :class:`pglab.topology.FieldProblem`."""
        return None

    def __init__(self, topology: Topology, lab_dir: Path) -> None:
        self.topology = topology
        self.lab_dir = lab_dir
        # Progress of long lifecycle steps (a VM booting ...), one line each; the lab sets it.
        self.report: Callable[[str], None] = _silent
        # `destroy --keep-packages`: leave the packages pglab installed on machines that stay.
        self.keep_packages = False

    # Facts -----------------------------------------------------------------------------------
    @abstractmethod
    def address(self, node: Node) -> str:
        """The address the node's services bind to and clients reach."""

    @abstractmethod
    def connection_vars(self, node: Node) -> dict[str, Any]:
        """Ansible connection variables for the node (``ansible_connection`` and friends)."""

    @abstractmethod
    def inventory_vars(self) -> dict[str, Any]:
        """Variables for every host: where paths live, how services are supervised."""

    def playbook_vars(self) -> dict[str, Any]:
        """Facts about the machines as they are now, for one playbook run (extra variables, never
        written to the inventory): what the roles would otherwise ask every node on every run."""
        return {}

    def rendered_files(self) -> dict[Path, str]:
        """Files the provider needs in the lab directory, by path, with their content."""
        return {}

    def preflight(self) -> list[str]:
        """Problems that would make ``create`` fail (busy addresses ...), one sentence each."""
        return []

    def prerequisites(self) -> list[Prerequisite]:
        """What this machine needs before ``create``; empty when nothing is needed."""
        return []

    def host_changes(self) -> list[str]:
        """Changes to this machine the provider needs and pglab makes only when asked (`pglab
        prepare` names each and the flag that makes it), one sentence each."""
        return []

    # Lifecycle -------------------------------------------------------------------------------
    @abstractmethod
    def create(self) -> None:
        """Make every machine exist and be reachable by Ansible (idempotent)."""

    @abstractmethod
    def destroy(self) -> None:
        """Remove every machine and everything the provider made outside the lab directory;
        safe on a half-made lab. The lab directory itself is the lab's to remove."""

    def deployed(self) -> None:
        """After every run of the lab's playbook, whether it succeeded or not (a provider that
        records what the run installed does it here)."""
        return None

    def destroy_warning(self) -> str | None:
        """What ``destroy`` would remove that outlives the lab's own machines, for a confirmation;
        None when there is nothing to ask about."""
        return None

    @abstractmethod
    def is_created(self) -> bool:
        """Whether any machine of this lab exists."""

    @abstractmethod
    def stop(self, node: Node) -> None:
        """Stop the whole node cleanly, as `systemctl stop` of its services would."""

    @abstractmethod
    def start(self, node: Node) -> None:
        """Start (or resume, or restart after a crash) every service of the node."""

    @abstractmethod
    def crash(self, node: Node) -> None:
        """Kill every process of the node at once (SIGKILL), with no clean shutdown."""

    @abstractmethod
    def hang(self, node: Node) -> None:
        """Freeze every process of the node at once, children included; ``start`` thaws it."""

    @abstractmethod
    def partition(self, node: Node) -> None:
        """Cut the node off the network to every other node while its processes keep running;
        ``start`` heals it."""

    @abstractmethod
    def stop_service(self, node: Node, service: str) -> None:
        """Stop one service of the node cleanly (a restore stops every member's stack service),
        waiting until it has stopped."""

    @abstractmethod
    def start_service(self, node: Node, service: str) -> None:
        """Start one service of the node (no-op when it runs)."""

    def spawn_beside(self, node: Node, argv: list[str], env: dict[str, str]) -> subprocess.Popen[str] | None:
        """Start a process that shares the node's fate (its network, its freezes) with stdout
        piped, as a client on the node's own machine; None where the provider cannot."""
        return None

    def node_root(self, node: Node) -> str:
        """The prefix of every path a component writes on the node (the roles' pglab_node_root)."""
        return ""

    def holds_address(self, node: Node, address: str) -> bool:
        """Whether one of the node's network interfaces holds ``address`` now (a virtual IP); False
        where the provider cannot tell or the node does not answer."""
        return False

    def run_as_service_user(self, node: Node, argv: list[str],
                            timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
        """Run a command on the node as the user its services run as (pgBackRest's commands)."""
        raise NotImplementedError(f"the {self.name} provider cannot run commands on its nodes")

    def check_as_service_user(self, node: Node, argv: list[str], what: str,
                              error: type[PglabError] = PglabError, timeout: float = 600.0) -> str:
        """Run a command on the node as the service user; its stdout, or ``error`` saying ``what``
        failed, where, with which exit status, and the end of what the command said."""
        result = self.run_as_service_user(node, argv, timeout=timeout)
        if result.returncode != 0:
            raise error(f"{what} failed on {node.name} (exit {result.returncode}): "
                        f"{failure_detail(result.stderr or result.stdout)}")
        return result.stdout

    # Faults ----------------------------------------------------------------------------------
    # The slower faults a drill kind asks of it (``slow-disk``, ``loss`` ...), by the kind's name.
    faults: ClassVar[frozenset[str]] = frozenset()

    def cannot(self, fault: str) -> str | None:
        """Why this provider cannot produce ``fault`` here (it does not offer it, or this machine's
        kernel lacks what it needs), or None when it can: a drill kind refuses with it (exit 2)."""
        return None if fault in self.faults else f"the {self.name} provider cannot produce {fault}"

    def impair_network(self, node: Node, loss_percent: float = 0.0, delay_ms: float = 0.0,
                       jitter_ms: float = 0.0) -> None:
        """Drop ``loss_percent`` % of the packets between the node and the lab's other nodes, or
        delay what the node sends them by ``delay_ms`` (+- ``jitter_ms``): faults ``loss``, ``latency``."""
        raise NotImplementedError(f"the {self.name} provider cannot impair a node's network")

    def heal_network(self, node: Node) -> int | None:
        """Undo :meth:`impair_network`: the packets it dropped (0 for a delay), None when there was
        nothing to undo."""
        return None

    def kill_process(self, node: Node, pid: int) -> None:
        """SIGKILL one process of the node (fault ``postgres-kill``); refuse a pid not the node's."""
        raise NotImplementedError(f"the {self.name} provider cannot kill one process of a node")

    def remove_directory(self, node: Node, path: str) -> None:
        """Remove a directory of the node while its processes run (fault ``pgdata-lost``)."""
        raise NotImplementedError(f"the {self.name} provider cannot remove a node's files")
    # Resource faults on one node (``disk-full``, ``slow-disk``, ``cpu-starve``, ``memory``), each
    # asked only after ``cannot`` said yes; each returns a short phrase saying what it did, and
    # ``undo_faults`` lifts whatever one left.
    def fill_disk(self, node: Node) -> str:
        """Fill the filesystem holding the node's PostgreSQL data until it is full."""
        raise NotImplementedError(self.cannot("disk-full"))

    def empty_disk(self, node: Node) -> str | None:
        """Remove what ``fill_disk`` added (None: nothing was there)."""
        return None

    def throttle_disk(self, node: Node, iops: int | None, bps: int | None) -> str:
        """Limit the reads and writes of every process of the node on its data's device."""
        raise NotImplementedError(self.cannot("slow-disk"))

    def limit_cpu(self, node: Node, percent: float) -> str:
        """Limit every process of the node together to ``percent`` % of one core."""
        raise NotImplementedError(self.cannot("cpu-starve"))

    def limit_postgres_memory(self, node: Node, megabytes: int) -> str:
        """Limit the node's PostgreSQL (its postmaster and every child), not the rest of the node."""
        raise NotImplementedError(self.cannot("memory"))

    def oom_kills(self, node: Node) -> int:
        """Processes of the node's PostgreSQL the kernel's OOM killer ended under that limit."""
        return 0

    def lift_limits(self, node: Node) -> str | None:
        """Lift every resource limit on the node (None: there was none)."""
        return None

    def undo_faults(self) -> list[str]:
        """Remove whatever a drill left behind (a packet filter, a resource limit, ballast on a full
        disk) even after an interrupted drill; `up` and `destroy` call it. What it removed, one
        short phrase each."""
        return []

    @abstractmethod
    def services(self, node: Node) -> dict[str, str]:
        """The node's services and their state (``RUNNING``, ``STOPPED``, ``FROZEN`` ...)."""

    @abstractmethod
    def logs(self, node: Node, service: str | None = None, lines: int = 50) -> str:
        """The last lines of the node's service logs."""


def failure_detail(output: str | None) -> str:
    """A failed command's output on one line (an error's first line carries it all), cut to its end."""
    text = " ".join((output or "").split())
    return text if len(text) <= FAILURE_DETAIL_CHARS else "…" + text[-FAILURE_DETAIL_CHARS:]


def _silent(_text: str) -> None:
    pass
