"""What pglab asks of an HA stack (Patroni, pg_auto_failover), whatever the machines are."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import BaseModel

from pglab.components.base import Rotation, Route, TlsService
from pglab.components.haproxy import Backend
from pglab.errors import PglabError
from pglab.prerequisites import Prerequisite
from pglab.secrets import Account
from pglab.topology import Node, Ports, Topology


@dataclass(frozen=True)
class Member:
    name: str
    host: str
    role: str  # leader, replica, standby ...
    state: str  # running, streaming, stopped, unreachable ...
    timeline: int | None = None
    lag_mb: float | None = None
    pending_restart: bool = False
    # Patroni's pending_restart_reason: parameter -> {"old_value": ..., "new_value": ...}
    pending_changes: dict[str, dict[str, str]] = field(default_factory=dict)
    port: int | None = None
    # The stack's own words, where it has them (pg_auto_failover: the monitor's current and
    # assigned state of the node).
    current_state: str | None = None
    assigned_state: str | None = None


def leader_of(members: list[Member]) -> str | None:
    """The running leader among ``members``, if there is one."""
    return next((m.name for m in members if m.role == "leader" and m.state == "running"), None)


def streaming_replicas_of(members: list[Member]) -> list[Member]:
    """The members that stream from a leader."""
    return [m for m in members if m.role != "leader" and m.state == "streaming"]


@dataclass
class Health:
    leader: str | None
    members: list[Member]
    problems: list[str] = field(default_factory=list)
    # What the router showed while health was judged (HAProxy's stats rows), if there is one.
    routing: list[Backend] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    @property
    def streaming_replicas(self) -> list[Member]:
        return streaming_replicas_of(self.members)


@dataclass(frozen=True)
class ClientEndpoint:
    """Where clients connect for writes or reads: one host (a router) or several, with libpq's
    target_session_attrs picking the right one."""

    hosts: tuple[str, ...]
    port: int
    target_session_attrs: str | None = None

    @property
    def host(self) -> str:
        """libpq's host value: the hosts, comma-separated."""
        return ",".join(self.hosts)

    def session_attrs(self) -> dict[str, str]:
        """libpq's check of the server it lands on (one that takes writes ...), where the endpoint
        asks for one."""
        return {"target_session_attrs": self.target_session_attrs} if self.target_session_attrs else {}

    def libpq_keywords(self) -> dict[str, Any]:
        """host, port and the session check, as psycopg keywords."""
        return {"host": self.host, "port": self.port, **self.session_attrs()}

    def uri(self, user: str = "postgres", dbname: str = "postgres", options: Mapping[str, str] | None = None) -> str:
        """A libpq URI without a password (it comes from the lab's pgpass file); ``options`` are
        more libpq keywords (the lab's sslmode and sslrootcert)."""
        hosts = ",".join(f"{h}:{self.port}" for h in self.hosts)
        return f"postgresql://{user}@{hosts}/{dbname}" + uri_query({**self.session_attrs(), **(options or {})})


def uri_query(options: Mapping[str, str]) -> str:
    """``?key=value&...`` for a libpq URI (paths stay readable), or nothing."""
    return "?" + "&".join(f"{k}={quote(v, safe='/')}" for k, v in options.items()) if options else ""


@dataclass(frozen=True)
class StackSite:
    """What a stack client is told of a lab: its topology, where each node answers, its secrets."""

    topology: Topology
    addresses: dict[str, str]  # node name -> address
    secrets: dict[str, str]
    # The lab's CA bundle, which every service's certificate chains to; None for a plaintext lab.
    ca_file: Path | None = None


@dataclass(frozen=True)
class StandbySource:
    """Where a standby cluster (a two-site lab's standby site) streams from: the other site's write
    endpoint, through the permanent slot the other site keeps for it."""

    host: str
    port: int
    slot: str


class StackError(PglabError):
    """The HA stack refused or could not do what was asked."""


class Stack(ABC):
    """One HA stack's client. Operations (switchover, drills ...) are written against this
    interface, so every stack answers the same questions in the same vocabulary."""

    name: str = ""
    # Whether a standby may restart while a lowered hot-standby setting (max_connections ...) is
    # pending: Patroni starts a standby with at least the values its primary ran with (from
    # pg_controldata) and leaves the change pending; a stack that starts PostgreSQL with its files
    # alone (pg_auto_failover's keeper) leaves it unable to start ("recovery aborted because of
    # insufficient parameter settings"), so a switchover applies such a setting first.
    tolerates_lowered_standby_settings: bool = True

    @classmethod
    @abstractmethod
    def from_site(cls, site: StackSite, timeout: float = 2.0) -> Stack:
        """The client for a lab, from its topology, node addresses and secrets."""

    @abstractmethod
    def members(self) -> list[Member]:
        """Every member with its role and state, including members that are down."""

    @abstractmethod
    def health(self) -> Health:
        """One leader, every replica streaming, the router sending writes to the leader."""

    @abstractmethod
    def client_endpoints(self) -> dict[str, ClientEndpoint]:
        """Where clients write (``write``) and read (``read``); empty when the lab has no router."""

    def uri(self) -> str | None:
        """The stack's own published connection string, if it has one."""
        return None

    def routing(self) -> list[Backend]:
        """What the lab's router (HAProxy) routes to, one row per listener and server; empty when
        clients reach the nodes themselves (a multi-host URI)."""
        return []

    def leader(self) -> str | None:
        """The running leader (primary), if there is one."""
        return leader_of(self.members())

    @abstractmethod
    def switchover(self, candidate: str | None = None, leader: str | None = None) -> str:
        """Start a planned switchover away from ``leader``; returns the stack's answer."""

    @abstractmethod
    def failover(self, candidate: str) -> str:
        """Start a manual failover to ``candidate``, allowed without a healthy leader."""

    @abstractmethod
    def set_parameters(self, parameters: dict[str, Any]) -> None:
        """Change cluster-wide PostgreSQL parameters (a restart, if needed, is left pending)."""

    @abstractmethod
    def parameters(self, names: Collection[str] = ()) -> dict[str, Any]:
        """The cluster-wide PostgreSQL parameters as configured (applied or pending), and those of
        ``names`` that only the server's own configuration sets, where the stack has them (see
        each stack)."""

    @abstractmethod
    def configuration(self) -> dict[str, Any]:
        """The stack's configuration, for `pglab config show`."""

    @abstractmethod
    def restart(self, node: str) -> None:
        """Restart PostgreSQL on one member, in place."""

    def standby_source(self) -> dict[str, Any] | None:
        """Where the cluster replicates from when it is a standby cluster of another site's
        (host, port, slot ...); None for a primary cluster (and for a stack without standby clusters)."""
        return None

    def follow(self, source: StandbySource | None) -> None:
        """Make the cluster a standby cluster of ``source``, or (None) the primary cluster: through
        the stack's own state, so every member agrees."""
        raise StackError(f"{self.name} has no standby cluster")

    def keep_slots(self, slots: Collection[str]) -> dict[str, Any]:
        """Keep exactly these permanent replication slots (the other site's) on the cluster's
        leader, whoever it is; returns what changed."""
        raise StackError(f"{self.name} has no permanent replication slots pglab can keep")

    def converge_settings(self, topology: Topology) -> dict[str, Any]:
        """Bring the stack's own settings (the topology's section for this stack, which bootstrap
        alone would never change on a running cluster) to the topology. Returns what changed."""
        return {}

    def application_name(self, member: str) -> str:
        """The name the member's WAL receiver gives the primary (pg_stat_replication)."""
        return member

    def history(self) -> list[dict[str, Any]]:
        """Leader changes, oldest first: ``timeline``, ``reason``, ``time``, ``new_leader``."""
        return []

    def rebuild(self, member: str) -> str:
        """Have the stack rebuild a replica's data from the leader (its spec's ``cannot_rebuild``
        says when it cannot); returns the stack's answer."""
        raise StackError(f"{self.name} has no way for pglab to rebuild {member}")


@dataclass(frozen=True)
class DefaultNode:
    """A node of the lab `pglab init` writes for a stack."""

    name: str
    address: str
    role: str
    comment: str | None = None
    # Roles the node carries besides its main one (the dcs node holds the backup repository).
    also: tuple[str, ...] = ()


@dataclass(frozen=True)
class RestoreSteps:
    """A stack's part in restoring its cluster in place: commands run as the service user on data
    nodes whose stack service is stopped, each as (node name, argv)."""

    # Make the stack forget the cluster (its members, its history), run in this order, before the
    # leader's data directory is restored: the restored primary then starts a new history.
    forget: tuple[tuple[str, tuple[str, ...]], ...]
    # By data node, the command that registers it with the stack again before its service starts:
    # the restored leader over its data, a replica into its emptied data directory (which the
    # command fills). A node without one: starting its service is enough (the stack makes it).
    rejoin: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Whether the replicas may be made at once, or must join one after the other.
    replicas_at_once: bool = True


@dataclass(frozen=True)
class RebuildSteps:
    """How pglab makes a replica anew whose data directory was lost, for a stack whose client cannot
    ask the stack to: commands run as the service user on that node with its stack service stopped."""

    # Make the stack forget the member (the monitor drops it), before its data directory is emptied.
    forget: tuple[str, ...]
    # Register it again into its emptied data directory: the command clones the primary.
    rejoin: tuple[str, ...]


@dataclass(frozen=True)
class DecisionLog:
    """Where a stack says, in its own words, what it decided about a fault (a promotion, a
    demotion): the log of its service on nodes of ``role`` (:meth:`StackSpec.service`), and the
    lines that matter (regular expressions, searched in each line). Drills quote the first such
    line written after the fault."""

    role: str
    patterns: tuple[str, ...]
    # Whether the deciding node is a data node (the new leader, else the old one, says it); else
    # every node of ``role`` (a monitor) is read.
    on_leaders: bool = True


class StackSpec(ABC):
    """Everything that is one stack's, declared in one place: its stack module defines one
    subclass and an instance ``SPEC``, and :data:`pglab.stacks.STACKS` registers the module.
    Topology, rendering, prerequisites, the box, the providers, the checks and the CLI loop over
    the registered specs instead of naming stacks."""

    name: ClassVar[str]
    # The node roles the stack uses, in the order inventories list their groups.
    roles: ClassVar[tuple[str, ...]]
    # Its topology section (a pydantic model), named after the stack; None when it has none.
    settings: ClassVar[type[BaseModel] | None] = None
    # Whether it keeps its state in the topology's DCS (``dcs:``), which the provider must run.
    uses_dcs: ClassVar[bool] = False
    # The lab `pglab init` writes.
    default_nodes: ClassVar[tuple[DefaultNode, ...]] = ()
    # `pglab init`'s comments for its section, by dotted key (``patroni.ttl``).
    comments: ClassVar[Mapping[str, str]] = {}
    # Why a role of another stack does not fit this one, and the fix, by role.
    role_notes: ClassVar[Mapping[str, str]] = {}
    # Debian packages the offline box holds for it (the roles install the same ones).
    packages: ClassVar[tuple[str, ...]] = ()
    # Units its packages enable that the box disables so Debian's defaults never start them.
    box_disabled_units: ClassVar[tuple[str, ...]] = ()
    # Accounts of its own, beyond the superuser every stack shares (:data:`pglab.secrets.SUPERUSER`);
    # the lab generates a password for each.
    accounts: ClassVar[tuple[Account, ...]] = ()
    # The account its standbys replicate with (one of ``accounts``).
    replication_account: ClassVar[Account | None] = None
    # The ports its roles listen on, by the topology's name for each (``ports.patroni``), with their
    # defaults; PostgreSQL's (``ports.postgres``) is every lab's.
    ports: ClassVar[Mapping[str, int]] = {}
    # Whether its roles archive WAL to pgBackRest and restore from it (the topology's backup:).
    backups: ClassVar[bool] = False
    # The verify checks that serve this stack only (file stems under pglab/checks/).
    checks: ClassVar[tuple[str, ...]] = ()
    # Its roles' settings for machines far slower than the host (emulated VMs): what the vagrant
    # provider sets when it runs guests under software emulation.
    slow_machine_variables: ClassVar[Mapping[str, Any]] = {}
    # Where it writes down its decisions about a fault, for drills to quote; None: nowhere.
    decision_log: ClassVar[DecisionLog | None] = None
    # Why a lab of this stack cannot hold a second site (a standby cluster of the first), or None
    # when it can.
    cannot_stand_by: ClassVar[str | None] = "pglab does not know how this stack runs a standby cluster"
    # In a two-site lab: the roles every site needs a node of, each with why.
    site_roles: ClassVar[Mapping[str, str]] = {}

    @abstractmethod
    def client(self) -> type[Stack]:
        """The client class that talks to a running cluster of this stack."""

    @abstractmethod
    def service(self, role: str, topology: Topology) -> str:
        """The service (supervisor program or systemd unit) that runs ``role`` on a node."""

    @abstractmethod
    def role_ports(self, ports: Ports) -> dict[str, list[int]]:
        """The ports each of its roles listens on."""

    def check(self, topology: Topology) -> None:
        """The stack's own rules for a topology; raise :class:`pglab.topology.FieldProblem`."""
        return None

    def inventory_vars(self, topology: Topology) -> dict[str, Any]:
        """Its roles' variables, from the topology."""
        return {}

    def site_variables(self, topology: Topology, site: str) -> dict[str, Any]:
        """In a two-site lab: its roles' variables for the nodes of ``site`` at the cluster's
        creation (the first site primary, the other its standby cluster), beyond what the site's
        own view of the topology gives them (see :func:`pglab.render.site_host_variables`)."""
        return {}

    def site_source(self, topology: Topology, site: str, following: str) -> tuple[Node, int, str]:
        """In a two-site lab: where ``site``'s standby cluster streams from when it follows site
        ``following``: that site's router node, its write port, and the permanent slot it streams
        through."""
        raise StackError(f"{self.name} has no standby cluster")

    def follow_while_down(self, topology: Topology, node_root: str, on_this_machine: bool,
                          source: StandbySource) -> tuple[str, ...]:
        """In a two-site lab: the command (run as the service user on a data node of the site,
        ``node_root`` its root) that makes the site's cluster a standby cluster of ``source`` in its
        state store while its data nodes are down and the store runs, so that they come back
        following ``source`` (rewound onto its timeline where they went ahead), never as a primary."""
        raise StackError(f"{self.name} has no standby cluster")

    def entry_points(self, topology: Topology) -> list[tuple[Node, int]]:
        """Where clients connect besides the data nodes' PostgreSQL (a router), as (node, port)."""
        return []

    def tls_services(self, topology: Topology) -> list[TlsService]:
        """Every service of the stack that presents its node's certificate: what verify checks
        against the lab's CA and `pglab certs rotate` waits for."""
        return []

    def tls_rotation(self, topology: Topology) -> list[Rotation]:
        """How each of its running services takes up new certificates (`pglab certs rotate`)."""
        return []

    def routes(self, topology: Topology) -> list[Route]:
        """The endpoints the lab's router (HAProxy) serves for it, each with its health check;
        empty when clients reach the nodes themselves (a multi-host URI)."""
        return []

    def primary_check(self, topology: Topology) -> str:
        """A shell command, run on a data node as the service user, that exits 0 when the node's
        own PostgreSQL is the primary as the stack says, quickly (a virtual IP's track script runs
        it every second); Ansible variables of the node allowed. Empty: the stack has none."""
        return ""

    def prerequisites(self, topology: Topology) -> list[Prerequisite]:
        """What this machine needs to run the stack's nodes (the local provider)."""
        return []

    def package_roles(self, topology: Topology) -> list[str]:
        """The roles whose package tasks install its components on this machine."""
        return []

    def machine_variables(self) -> dict[str, Any]:
        """Inventory variables for its components installed on this machine (the local provider)."""
        return {}

    def user_install_variables(self) -> dict[str, Any] | None:
        """Variables for playbooks/prepare.yml that install, without root, the prerequisites
        marked ``user_installable``; None when the stack has none."""
        return None

    def box_venvs(self) -> list[tuple[str, list[str]]]:
        """Virtual environments the offline box holds for it: (path, pip packages)."""
        return []

    # Why pglab cannot have the stack rebuild a data node whose data directory was lost (the
    # client's :meth:`Stack.rebuild`, or :meth:`rebuild_steps`), or None when it can.
    cannot_rebuild: ClassVar[str | None] = "pglab does not know how this stack rebuilds a lost data directory"

    def rebuild_steps(self, topology: Topology, node_root: str) -> RebuildSteps | None:
        """The commands that make a replica anew (node_root: its root on its machine), for a stack
        whose client cannot ask the stack itself; None: the client's :meth:`Stack.rebuild` does it."""
        return None

    def state_store(self, topology: Topology) -> tuple[str, list[tuple[Node, str]]]:
        """Where the stack keeps the cluster's state outside the data nodes (a DCS, a monitor):
        its name for people, and every (node, service) that holds it; empty when it has none."""
        return "", []

    def leader_lease(self, topology: Topology) -> float | None:
        """Seconds a leader keeps leading without reaching its state store (Patroni's ttl), or
        None when losing it does not end the leader's term."""
        return None

    def restore_steps(self, topology: Topology, node_roots: Mapping[str, str], on_this_machine: bool,
                      leader: str) -> RestoreSteps | None:
        """What the stack runs around `pglab restore` (:mod:`pglab.backups.restore`) on its data nodes
        (``node_roots``: name -> the node's root) when ``leader`` is the one restored; None: the
        stack cannot restore a cluster in place (`pglab restore` refuses)."""
        return None
