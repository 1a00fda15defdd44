"""The lab's topology as a pydantic model: its fields, defaults and the rules a lab must follow.

A rule that fails raises :class:`FieldProblem` naming the field, so the message (see
:mod:`pglab.topology.messages`) points at the right line of the file.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Role = Literal["dcs", "postgres", "haproxy", "monitor"]
Stack = Literal["patroni", "pg_auto_failover"]
Provider = Literal["local", "vagrant"]
Dcs = Literal["etcd", "consul"]

NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}$"
MAX_NODES = 64


class TopologyError(ValueError):
    """A topology that cannot be used; ``str()`` is the whole user-facing message."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Node(_Strict):
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    address: ipaddress.IPv4Address
    roles: Annotated[list[Role], Field(min_length=1)]

    @field_validator("roles")
    @classmethod
    def _no_repeated_roles(cls, roles: list[Role]) -> list[Role]:
        repeated = sorted(r for r, n in Counter(roles).items() if n > 1)
        if repeated:
            raise ValueError(f"role {repeated[0]!r} is listed twice; list each role once")
        return roles


class Ports(_Strict):
    """TCP ports, the same on every node; the local provider keeps them by giving every node
    its own loopback address."""

    postgres: int = 5432
    patroni: int = 8008
    etcd: int = 2379
    etcd_peer: int = 2380
    consul: int = 8500
    haproxy_primary: int = 5000
    haproxy_replicas: int = 5001
    haproxy_stats: int = 7000
    monitor: int = 5431

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


class Network(_Strict):
    subnet: ipaddress.IPv4Network = ipaddress.IPv4Network("192.168.11.0/24")
    # The local provider puts each node at the same host number inside this loopback network.
    loopback: ipaddress.IPv4Network = ipaddress.IPv4Network("127.0.11.0/24")

    @field_validator("loopback")
    @classmethod
    def _inside_loopback(cls, net: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        if not net.subnet_of(ipaddress.IPv4Network("127.0.0.0/8")):
            raise ValueError(f"{net} is not inside 127.0.0.0/8; use a loopback network such as 127.0.11.0/24")
        return net


class PostgresSettings(_Strict):
    version: Literal[15] = 15
    scope: Annotated[str, Field(pattern=NAME_PATTERN)] = "pglab"
    parameters: dict[str, str | int | float | bool] = Field(default_factory=dict)


class PatroniSettings(_Strict):
    """Patroni's dynamic configuration knobs: set at bootstrap, converged by every `pglab up`."""

    ttl: Annotated[int, Field(ge=20)] = 20  # Patroni 4 refuses less
    loop_wait: Annotated[int, Field(ge=1)] = 2
    retry_timeout: Annotated[int, Field(ge=1)] = 5
    maximum_lag_on_failover: Annotated[int, Field(ge=0)] = 1048576
    synchronous_mode: bool = False
    synchronous_mode_strict: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> PatroniSettings:
        if self.loop_wait + 2 * self.retry_timeout > self.ttl:
            raise FieldProblem(
                ("patroni", "ttl"),
                f"ttl {self.ttl} is shorter than loop_wait + 2 x retry_timeout "
                f"({self.loop_wait} + 2 x {self.retry_timeout}), so a healthy leader could lose its lock; "
                f"raise ttl to at least {self.loop_wait + 2 * self.retry_timeout} or lower the other two",
            )
        if self.synchronous_mode_strict and not self.synchronous_mode:
            raise FieldProblem(("patroni", "synchronous_mode_strict"),
                                "synchronous_mode_strict only applies with synchronous_mode: true; "
                                "set synchronous_mode: true too, or remove synchronous_mode_strict")
        return self

    def dynamic(self) -> dict[str, Any]:
        """The settings in Patroni's own words (its /config keys)."""
        return self.model_dump()


class VagrantSettings(_Strict):
    # A public Debian 12 box; `pglab box build` makes the offline one, pglab/debian12.
    box: str = "debian/bookworm64"
    hypervisor: Literal["libvirt", "virtualbox"] = "libvirt"
    # libvirt only: kvm (hardware virtualization) or qemu (software emulation, where KVM is missing).
    driver: Literal["kvm", "qemu"] = "kvm"
    memory: Annotated[int, Field(ge=512, le=1024 * 1024)] = 1024
    cpus: Annotated[int, Field(ge=1, le=256)] = 1


class PgAutoFailoverSettings(_Strict):
    """stack pg_auto_failover: the formation the data nodes join and how it replicates."""

    formation: Annotated[str, Field(pattern=NAME_PATTERN)] = "default"
    # Standbys that must acknowledge each commit (pg_auto_failover's number_sync_standbys).
    number_sync_standbys: Annotated[int, Field(ge=0)] = 0
    # Data node name -> candidate priority (0 never promoted .. 100); unlisted nodes keep 50.
    candidate_priorities: dict[str, Annotated[int, Field(ge=0, le=100)]] = Field(default_factory=dict)


class Topology(_Strict):
    name: Annotated[str, Field(pattern=NAME_PATTERN)] = "pglab"
    provider: Provider = "local"
    stack: Stack = "patroni"
    dcs: Dcs = "etcd"
    postgres: PostgresSettings = PostgresSettings()
    patroni: PatroniSettings = PatroniSettings()
    network: Network = Network()
    ports: Ports = Ports()
    vagrant: VagrantSettings = VagrantSettings()
    pg_auto_failover: PgAutoFailoverSettings = PgAutoFailoverSettings()
    nodes: Annotated[list[Node], Field(min_length=1, max_length=MAX_NODES)]

    @model_validator(mode="after")
    def _check_lab(self) -> Topology:
        _check_unique(self.nodes)
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
        _check_roles(self)
        if self.stack != "patroni" and "patroni" in self.model_fields_set:
            raise FieldProblem(("patroni",), f"the patroni section applies to stack patroni, not {self.stack}; "
                                "remove it or set stack: patroni")
        if self.provider == "local" and self.dcs == "consul" and self.stack == "patroni":
            raise FieldProblem(
                ("dcs",),
                "the local provider runs etcd only (Debian 12 packages no Consul); set dcs: etcd, "
                "or use Consul with provider: vagrant",
            )
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


def _check_roles(topo: Topology) -> None:
    postgres = topo.with_role("postgres")
    if not postgres:
        raise FieldProblem(
            ("nodes",),
            "no node has the role postgres; add `postgres` to the roles of at least one node "
            "(three make a proper HA lab)",
        )
    for i, node in enumerate(topo.nodes):
        if topo.stack == "patroni" and "monitor" in node.roles:
            raise FieldProblem(
                ("nodes", i, "roles"),
                "role monitor belongs to stack pg_auto_failover; remove it or set stack: pg_auto_failover",
            )
        if topo.stack == "pg_auto_failover" and "dcs" in node.roles:
            raise FieldProblem(
                ("nodes", i, "roles"),
                "pg_auto_failover keeps its state in its monitor, not in a DCS; replace role dcs "
                "with monitor, or set stack: patroni",
            )
        if topo.stack == "pg_auto_failover" and "haproxy" in node.roles:
            raise FieldProblem(
                ("nodes", i, "roles"),
                "pg_auto_failover clients reach the primary through the formation's multi-host URI "
                "(target_session_attrs=read-write), not HAProxy; remove role haproxy, or set stack: patroni",
            )
        if "monitor" in node.roles and "postgres" in node.roles:
            raise FieldProblem(
                ("nodes", i, "roles"),
                "the pg_auto_failover monitor must not share a node with a data node it watches; "
                "put monitor on a node of its own",
            )
    if topo.stack == "patroni" and not topo.with_role("dcs"):
        raise FieldProblem(
            ("nodes",),
            "stack patroni needs a node with the role dcs (it runs etcd or Consul); "
            "add `dcs` to a node's roles",
        )
    if topo.stack == "pg_auto_failover" and len(topo.with_role("monitor")) != 1:
        raise FieldProblem(
            ("nodes",),
            "stack pg_auto_failover needs exactly one node with the role monitor",
        )
    if topo.stack == "pg_auto_failover":
        _check_pg_auto_failover(topo)


def _check_pg_auto_failover(topo: Topology) -> None:
    data_nodes = [n.name for n in topo.with_role("postgres")]
    settings = topo.pg_auto_failover
    for name in settings.candidate_priorities:
        if name not in data_nodes:
            raise FieldProblem(
                ("pg_auto_failover", "candidate_priorities", name),
                f"{name!r} is not a data node; list only nodes with the role postgres "
                f"({', '.join(data_nodes)})",
            )
    if settings.number_sync_standbys > max(len(data_nodes) - 2, 0):
        raise FieldProblem(
            ("pg_auto_failover", "number_sync_standbys"),
            f"{settings.number_sync_standbys} synchronous standbys need at least "
            f"{settings.number_sync_standbys + 2} data nodes (pg_auto_failover keeps one standby spare so "
            f"writes go on when a standby is lost); lower it or add data nodes",
        )
    if len(data_nodes) > 1 and not any(settings.candidate_priorities.get(n, 50) > 0 for n in data_nodes):
        raise FieldProblem(
            ("pg_auto_failover", "candidate_priorities"),
            "every data node has candidate priority 0, so none could ever be promoted; give at least "
            "one a priority above 0",
        )
