"""What pglab asks of a component that serves every stack (HAProxy, the pgBackRest repository; a
pooler or a virtual IP later), and the value types stacks and components share: a routed endpoint
with its health check, a TLS service, the way a service takes up new certificates.

A component module defines one :class:`Component` subclass and an instance ``COMPONENT``;
:data:`pglab.components.COMPONENTS` registers the module. Rendering, the providers, rotation and
the verify suite loop over the registry instead of naming a component.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from pglab.prerequisites import Prerequisite
from pglab.secrets import Account
from pglab.topology import Node, Topology


@dataclass(frozen=True)
class HealthCheck:
    """How the router asks a server whether it may take an endpoint's clients: an HTTP request
    to the server's own health port (Patroni's REST API ...), answered with ``expect_status``."""

    method: str
    path: str
    port: int
    tls: bool  # over HTTPS, the server's certificate (and its name) verified against the lab's CA
    expect_status: int = 200


@dataclass(frozen=True)
class Route:
    """An endpoint the router (HAProxy) serves for a stack: a listener on the router's node that
    sends clients to those data nodes whose health check answers."""

    name: str  # the listener's name (HAProxy's stats call it the proxy)
    port: int  # where clients connect, on the router's node
    server_port: int  # where the data nodes take them (PostgreSQL's port)
    check: HealthCheck
    comment: str  # one line above the listener in the rendered configuration
    # Lines below the comment in a lab whose checks speak TLS (why the hops are what they are).
    tls_comment: str = ""
    balance: str | None = None  # HAProxy's balance algorithm, for endpoints served by several nodes
    # Reads are checked less often than writes: no write waits for them.
    reads: bool = False
    # A pooled endpoint's servers are poolers on the data nodes: their pooler's port must answer
    # (TLS) as well as the health check, so a dead pooler on the leader is routed around.
    pooler_port: int | None = None


@dataclass(frozen=True)
class TlsService:
    """A service that serves the node's certificate (labs with ``tls: true``)."""

    node: Node
    service: str  # postgresql, patroni, etcd, monitor ...
    port: int
    postgres: bool = False  # PostgreSQL's protocol (TLS after an SSLRequest); else TLS from the start
    client_certificate: bool = False  # the server requires a client certificate of the lab's CA


@dataclass(frozen=True)
class Rotation:
    """How a running service on a node takes up the lab's new certificates (`pglab certs rotate`,
    playbooks/certs.yml): tasks of an Ansible role, included there once the certificates are
    delivered, with ``pglab_service_name`` and ``pglab_service_reload_signal`` set to ``service``
    and ``signal``."""

    node: Node
    what: str  # the step as Ansible's output names it: "Reload Patroni"
    role: str
    tasks_from: str
    service: str
    signal: str = "HUP"
    # A service whose restart costs its cluster a member: one node at a time (etcd, Consul).
    one_at_a_time: bool = False
    # The service keeps its own copy of the certificates: its tasks notify "pglab service config
    # changed" when the copy changed, and the service restarts (it reads them when it starts).
    own_copy: bool = False

    def variable(self) -> dict[str, Any]:
        """The rotation as the play reads it (one item of ``pglab_tls_rotation[node]``)."""
        return {"what": self.what, "role": self.role, "tasks_from": self.tasks_from, "service": self.service,
                "signal": self.signal, "one_at_a_time": self.one_at_a_time, "own_copy": self.own_copy}


def rotation_variable(rotations: list[Rotation]) -> dict[str, list[dict[str, Any]]]:
    """``pglab_tls_rotation``: each node's rotations, by node name, in declaration order."""
    by_node: dict[str, list[dict[str, Any]]] = {}
    for rotation in rotations:
        by_node.setdefault(rotation.node.name, []).append(rotation.variable())
    return by_node


@dataclass(frozen=True)
class ComponentSite:
    """What a component is told of a lab beside its topology: where the lab's certificates lie on
    this machine, and the endpoints the lab's stack routes through a router."""

    tls_dir: Path
    routes: tuple[Route, ...] = ()
    # A shell command, run on a data node as the service user, that exits 0 when the node's
    # PostgreSQL is the primary, as the stack says (Ansible variables allowed); empty: none.
    primary_check: str = ""


class Component(ABC):
    """One component that serves every stack, declared in one place."""

    name: ClassVar[str]
    # The Ansible role that runs it.
    role: ClassVar[str]
    # The verify checks that serve this component only (file stems under pglab/checks/): they run
    # only in labs where it is enabled.
    checks: ClassVar[tuple[str, ...]] = ()
    # Its role's settings for machines far slower than the host (emulated VMs).
    slow_machine_variables: ClassVar[Mapping[str, Any]] = {}
    # The ports it listens on, by the topology's name for each (``ports.pgbackrest``), with their defaults.
    ports: ClassVar[Mapping[str, int]] = {}
    # Accounts of its own; the lab generates a password for each.
    accounts: ClassVar[tuple[Account, ...]] = ()
    # Debian packages the offline box holds for it (its role installs the same ones).
    packages: ClassVar[tuple[str, ...]] = ()
    # Units its packages enable that the box disables, so Debian's defaults never start them (a
    # package's own instance would hold the component's port before its role runs).
    box_disabled_units: ClassVar[tuple[str, ...]] = ()
    # Its own section of the topology, named after it (``pooler:``), with the model's defaults
    # when a lab's file has none; None: no section.
    settings: ClassVar[type[BaseModel] | None] = None
    # `pglab init`'s comments for its section, by dotted key (``pooler.pool_mode``).
    comments: ClassVar[Mapping[str, str]] = {}

    def enabled(self, topology: Topology) -> bool:
        """Whether the lab runs it."""
        return False

    def needs_certificates(self, topology: Topology) -> bool:
        """Whether it speaks TLS with the lab's CA even in a lab with ``tls: false``."""
        return False

    def prerequisites(self, topology: Topology) -> list[Prerequisite]:
        """What this machine needs to run it (the local provider), when the lab runs it."""
        return []

    def package_roles(self, topology: Topology) -> list[str]:
        """The roles whose package tasks install it on this machine, when the lab runs it."""
        return []

    def services(self, topology: Topology, node: Node) -> list[str]:
        """The services it adds to ``node`` beyond those its stack runs for the node's roles."""
        return []

    def node_ports(self, topology: Topology, node: Node) -> list[int]:
        """The ports it listens on on ``node``, beyond those of the node's roles."""
        return []

    def tls_services(self, topology: Topology) -> list[TlsService]:
        """Its services that serve the node's certificate (checked against the lab's CA)."""
        return []

    def tls_rotation(self, topology: Topology) -> list[Rotation]:
        """How each of its running services takes up new certificates."""
        return []

    def inventory_vars(self, topology: Topology, site: ComponentSite) -> dict[str, Any]:
        """Its role's variables, from the topology."""
        return {}

