"""The lab's topology as a pydantic model: its fields, defaults and the rules a lab must follow.

A rule that fails raises :class:`FieldProblem` naming the field, so the message (see
:mod:`pglab.topology.messages`) points at the right line of the file.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from typing import TYPE_CHECKING, Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Roles, stacks and providers are the registered ones (see :func:`pglab.catalog.schema`); the DCS a
# stack may keep its state in is the topology's.
Role = str
Stack = str
Provider = str
Dcs = Literal["etcd", "consul"]
Section = TypeVar("Section", bound=BaseModel)

NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}$"
MAX_NODES = 64
# A lab holds one site, or two: the first listed starts as the primary cluster, the other as its
# standby cluster (its own DCS, router and repository, replicating from the first).
MAX_SITES = 2
# The node role that holds the backup repository; every stack offers it.
BACKUP_ROLE = "backup"


class TopologyError(ValueError):
    """A topology that cannot be used; ``str()`` is the whole user-facing message."""


class Strict(BaseModel):
    """A section of the topology: unknown keys refused, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Node(Strict):
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    address: ipaddress.IPv4Address
    roles: Annotated[list[Role], Field(min_length=1)]
    # The site the node belongs to, one of the topology's ``sites``; none in a one-site lab.
    site: Annotated[str, Field(pattern=NAME_PATTERN)] | None = None

    @field_validator("roles")
    @classmethod
    def _no_repeated_roles(cls, roles: list[Role]) -> list[Role]:
        repeated = sorted(r for r, n in Counter(roles).items() if n > 1)
        if repeated:
            raise ValueError(f"role {repeated[0]!r} is listed twice; list each role once")
        return roles


class Ports(Strict):
    """TCP ports, the same on every node; the local provider keeps them by giving every node
    its own loopback address. PostgreSQL's is every lab's; the rest are declared by the stacks and
    components that listen on them, and :func:`pglab.catalog.schema` adds them as fields."""

    postgres: int = 5432

    if TYPE_CHECKING:
        # The declared ports are fields of the catalog's subclass; to the type checker, any port.
        def __getattr__(self, name: str) -> int: ...

    @model_validator(mode="after")
    def _ports_distinct_and_valid(self) -> Ports:
        values = self.model_dump()
        for field, port in values.items():
            if not 1024 <= port <= 65535:
                raise FieldProblem(
                    ("ports", field),
                    f"ports.{field} is {port}; use a port between 1024 and 65535 so no root "
                    "privilege is needed to bind it"
                )
        clashes = [p for p, n in Counter(values.values()).items() if n > 1]
        if clashes:
            names = [f for f, p in values.items() if p == clashes[0]]
            raise FieldProblem(("ports", names[-1]),
                                f"ports {', '.join(names)} are all {clashes[0]}; give each its own port")
        return self


class Network(Strict):
    subnet: ipaddress.IPv4Network = ipaddress.IPv4Network("192.168.11.0/24")
    # The local provider puts each node at the same host number inside this loopback network.
    loopback: ipaddress.IPv4Network = ipaddress.IPv4Network("127.0.11.0/24")

    @field_validator("loopback")
    @classmethod
    def _inside_loopback(cls, net: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        if not net.subnet_of(ipaddress.IPv4Network("127.0.0.0/8")):
            raise ValueError(f"{net} is not inside 127.0.0.0/8; use a loopback network such as 127.0.11.0/24")
        return net


class PostgresSettings(Strict):
    version: Literal[15] = 15
    scope: Annotated[str, Field(pattern=NAME_PATTERN)] = "pglab"
    parameters: dict[str, str | int | float | bool] = Field(default_factory=dict)


class BackupSettings(Strict):
    """Backups and point-in-time restore: the repository lives on the node with the role
    ``backup`` (never a data node); every data node reaches it over pgBackRest's TLS server."""

    enabled: bool = True
    tool: Literal["pgbackrest"] = "pgbackrest"
    # Full backups kept; older ones expire with the WAL only they needed.
    retention_full: Annotated[int, Field(ge=1, le=100)] = 2
    compression: Literal["lz4", "zst", "gz", "bz2", "none"] = "lz4"
    # pgBackRest's compress-level (lz4 -5..12, zst -7..22, gz 0..9, bz2 1..9); unset: its default.
    compression_level: Annotated[int, Field(ge=-7, le=22)] | None = None
    # Parallel processes for backup and restore.
    processes: Annotated[int, Field(ge=1, le=32)] = 2


class Vip(Strict):
    """A virtual IP that follows the leader: keepalived on every data node holds it on the
    primary's node, so clients reach the primary at one address whichever node leads."""

    # An address of network.subnet that no node has.
    address: ipaddress.IPv4Address
    # The network interface that carries it; empty: the one that holds the node's own address.
    interface: str = ""

    @field_validator("interface")
    @classmethod
    def _interface_name(cls, name: str) -> str:
        if not re.fullmatch(r"([a-zA-Z0-9_.-]{1,15})?", name):
            raise ValueError(f"{name!r} is not a network interface name; write one such as eth0 or eth1 "
                             "(letters, digits, . _ -, at most 15), or leave it out: the interface that "
                             "holds the node's own address")
        return name


class Topology(Strict):
    """What every lab has. :func:`pglab.catalog.schema` adds what the registries bring: the stack
    and provider names, the roles, the ports, each stack's and provider's own section
    (``patroni:``, ``vagrant:``) and the rules they add."""

    name: Annotated[str, Field(pattern=NAME_PATTERN)] = "pglab"
    provider: Provider
    stack: Stack
    dcs: Dcs = "etcd"
    # TLS on every connection (PostgreSQL, replication, REST API, DCS, monitor), with the lab's
    # own CA; false keeps the plaintext lab.
    tls: bool = True
    postgres: PostgresSettings = PostgresSettings()
    network: Network = Network()
    ports: Ports = Ports()
    # A lab without a backup: section has no backups (labs written before backups keep working);
    # `pglab init` writes the section, on.
    backup: BackupSettings = BackupSettings(enabled=False)
    # A virtual IP on the leader's node (keepalived); none unless the file has the section.
    vip: Vip | None = None
    # Two site names make a two-site lab (each node says its site); empty: one site.
    sites: Annotated[list[Annotated[str, Field(pattern=NAME_PATTERN)]], Field(max_length=MAX_SITES)] = Field(
        default_factory=list)
    nodes: Annotated[list[Node], Field(min_length=1, max_length=MAX_NODES)]

    @model_validator(mode="after")
    def _check_lab(self) -> Topology:
        _check_unique(self.nodes)
        _check_sites(self)
        for i, node in enumerate(self.nodes):
            if node.address not in self.network.subnet or node.address in (
                self.network.subnet.network_address,
                self.network.subnet.broadcast_address,
            ):
                raise FieldProblem(
                    ("nodes", i, "address"),
                    f"{node.address} is not a host address of network.subnet {self.network.subnet}; "
                    f"pick a free address inside {self.network.subnet} or widen network.subnet",
                )
            offset = int(node.address) - int(self.network.subnet.network_address)
            if offset >= self.network.loopback.num_addresses - 1:
                raise FieldProblem(
                    ("nodes", i, "address"),
                    f"host number {offset} does not fit in network.loopback {self.network.loopback}; "
                    "use a smaller address or a larger loopback network",
                )
        _check_vip(self)
        # The rules that need the registries follow in the catalog's subclass (pglab.catalog), which
        # calls check_data_nodes and check_backup_holder below in its order.
        return self

    # Derived views used by rendering and providers -------------------------------------------
    def with_role(self, role: Role) -> list[Node]:
        return [n for n in self.nodes if role in n.roles]

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node named {name!r} in lab {self.name!r}; nodes are: "
                       + ", ".join(n.name for n in self.nodes))

    def section(self, name: str, model: type[Section]) -> Section:
        """The section ``name`` (a stack's own, such as ``patroni``), typed as ``model``."""
        value = getattr(self, name, None)
        if not isinstance(value, model):
            raise KeyError(f"the topology has no {name} section of type {model.__name__}")
        return value

    def site_nodes(self, site: str) -> list[tuple[int, Node]]:
        """The nodes of ``site``, each with its index in ``nodes`` (where messages point)."""
        return [(i, n) for i, n in enumerate(self.nodes) if n.site == site]

    def site_scope(self, site: str) -> str:
        """The cluster name of ``site``'s Patroni (each site's cluster has its own)."""
        return f"{self.postgres.scope}-{site}"

    def site_view(self, site: str) -> Topology:
        """``site`` alone as a one-site lab: its nodes, its own cluster name. Rendering, the stack's
        client and the checks read a site through it, as they read a one-site lab."""
        postgres = self.postgres.model_copy(update={"scope": self.site_scope(site)})
        return self.model_copy(update={"nodes": [n for _i, n in self.site_nodes(site)], "sites": [],
                                       "postgres": postgres})

    def loopback_address(self, node: Node) -> ipaddress.IPv4Address:
        """The node's address on the local provider: same host number, loopback network."""
        offset = int(node.address) - int(self.network.subnet.network_address)
        return self.network.loopback.network_address + offset


class FieldProblem(ValueError):
    """Raised inside validators to point the message at a precise field."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


def _check_unique(nodes: list[Node]) -> None:
    seen_names: dict[str, int] = {}
    seen_addresses: dict[ipaddress.IPv4Address, int] = {}
    for i, node in enumerate(nodes):
        if node.name in seen_names:
            raise FieldProblem(
                ("nodes", i, "name"),
                f"node name {node.name!r} is already used by nodes[{seen_names[node.name]}]; "
                "give every node its own name",
            )
        if node.address in seen_addresses:
            raise FieldProblem(
                ("nodes", i, "address"),
                f"address {node.address} is already used by nodes[{seen_addresses[node.address]}] "
                f"({nodes[seen_addresses[node.address]].name}); give every node its own address "
                "(roles can share a node: list them under one node's roles instead)",
            )
        seen_names[node.name] = i
        seen_addresses[node.address] = i


def _check_vip(topo: Topology) -> None:
    """The virtual IP is a free host address of the lab's subnet: the nodes' peers reach it there."""
    if topo.vip is None:
        return
    address, subnet = topo.vip.address, topo.network.subnet
    if address not in subnet or address in (subnet.network_address, subnet.broadcast_address):
        raise FieldProblem(("vip", "address"), f"{address} is not a host address of network.subnet {subnet}; "
                           f"pick a free address inside {subnet} (no node's) for the virtual IP")
    for node in topo.nodes:
        if node.address == address:
            raise FieldProblem(("vip", "address"), f"{address} is node {node.name}'s address; the virtual IP "
                               f"moves between nodes, so give it a free address of {subnet}")


def _check_sites(topo: Topology) -> None:
    """No site, or two named ones with every node in one of them and none empty."""
    if not topo.sites:
        placed = next((i for i, n in enumerate(topo.nodes) if n.site is not None), None)
        if placed is not None:
            raise FieldProblem(("nodes", placed, "site"), f"the lab lists no sites, so a node cannot name one; "
                               f"remove site: {topo.nodes[placed].site}, or list the lab's two sites "
                               "(sites: [east, west])")
        return
    if len(topo.sites) != MAX_SITES or topo.sites[0] == topo.sites[1]:
        raise FieldProblem(("sites",), "a two-site lab lists two different site names, the primary's first "
                           "(sites: [east, west]); remove sites: for a one-site lab")
    longest = max(topo.sites, key=len)
    if len(topo.site_scope(longest)) > 31:
        raise FieldProblem(("sites",), f"site {longest}'s cluster is named {topo.site_scope(longest)} "
                           "(postgres.scope, a dash, the site), longer than 31 characters; shorten the "
                           "site's name or postgres.scope")
    for i, node in enumerate(topo.nodes):
        if node.site not in topo.sites:
            wrong = f"names site {node.site!r}, which is not" if node.site else "has no site:"
            raise FieldProblem(("nodes", i, "site") if node.site else ("nodes", i), f"node {node.name} {wrong} one of "
                               f"the lab's sites; give it site: {' or site: '.join(topo.sites)}")


def check_data_nodes(topo: Topology) -> None:
    """At least one node runs PostgreSQL."""
    if not topo.with_role("postgres"):
        raise FieldProblem(
            ("nodes",),
            "no node has the role postgres; add `postgres` to the roles of at least one node "
            "(three make a proper HA lab)",
        )
    for site in topo.sites:
        if not any("postgres" in n.roles for _i, n in topo.site_nodes(site)):
            raise FieldProblem(("sites",), f"site {site} has no node with the role postgres; add `postgres` to "
                               f"the roles of at least one of its nodes (three make a proper HA site)")


def check_backup_holder(topo: Topology) -> None:
    """One repository node, never a data node, when backups are on (one in each site of a
    two-site lab: a site's cluster archives to its own)."""
    if not topo.backup.enabled:
        return
    sites: list[str | None] = [*topo.sites] or [None]
    for site in sites:
        _check_backup_holder(topo, site)


def _check_backup_holder(topo: Topology, site: str | None) -> None:
    nodes = topo.site_nodes(site) if site else list(enumerate(topo.nodes))
    holders = [i for i, n in nodes if BACKUP_ROLE in n.roles]
    where, each = (f"site {site}", " in that site") if site else ("", "")
    if not holders:
        raise FieldProblem(("backup",), f"backups are enabled but no node{' of ' + where if site else ''} has the "
                           f"role backup (it holds the repository); add `backup` to the roles of a node{each} that "
                           "is not a data node (the dcs or monitor node), or set backup: {enabled: false}")
    if len(holders) > 1:
        raise FieldProblem(("nodes", holders[1], "roles"), f"only one node{' of ' + where if site else ''} may hold "
                           "the role backup (the repository); remove it from all nodes but one")
    if "postgres" in topo.nodes[holders[0]].roles:
        raise FieldProblem(("nodes", holders[0], "roles"), "the backup repository must not sit on a data node "
                           "(losing the node would lose its backups); put the role backup on the dcs or "
                           "monitor node")
