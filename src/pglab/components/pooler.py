"""PgBouncer on every data node, in the clients' path: the component's declaration
(:data:`COMPONENT`: the topology's ``pooler:`` section, its port, package, service, TLS and
reload) and the reading of its admin console (``SHOW POOLS``), which ``pglab status`` shows.

Clients speak TLS to PgBouncer (plaintext refused) and PgBouncer speaks TLS to its own node's
PostgreSQL over TCP on the node's address (``verify-full``), so ``inet_server_addr()`` still
names the node. It serves TLS only, so it runs in labs with ``tls: true``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import psycopg
from pydantic import BaseModel, Field

from pglab import sql
from pglab.components.base import Component, ComponentSite, Rotation, TlsService
from pglab.prerequisites import Prerequisite, has_binary
from pglab.secrets import SUPERUSER
from pglab.topology import Node, Strict, Topology

NAME = "pooler"  # the component, its topology section and its port's name (ports.pooler)
ROLE = "pgbouncer"  # the Ansible role
SERVICE = "pgbouncer"
BINARY = "/usr/sbin/pgbouncer"
# Debian 12's PgBouncer 1.18.
PACKAGES = ("pgbouncer",)
PORTS = {NAME: 6432}
ADMIN_DATABASE = "pgbouncer"


class PoolerSettings(Strict):
    """PgBouncer on every data node (a lab without the section gets these defaults)."""

    # On by default, as in the common Patroni deployments; `pooler: {enabled: false}` keeps
    # HAProxy straight to PostgreSQL. A lab with `tls: false` runs without it.
    enabled: bool = True
    # transaction: a server connection serves a client for one transaction only (no SET, no
    # temporary tables, no protocol-level prepared statements across transactions on 1.18).
    pool_mode: Literal["session", "transaction", "statement"] = "transaction"
    default_pool_size: Annotated[int, Field(ge=1)] = 20
    max_client_conn: Annotated[int, Field(ge=1)] = 200


def settings(topology: Topology) -> PoolerSettings:
    """The topology's ``pooler:`` section (its defaults for a model built without the registry)."""
    value = getattr(topology, NAME, None)
    return value if isinstance(value, PoolerSettings) else PoolerSettings()


def enabled(topology: Topology) -> bool:
    """Whether PgBouncer runs: asked for, in a TLS lab, with data nodes."""
    return settings(topology).enabled and topology.tls and bool(topology.with_role("postgres"))


def runs_on(topology: Topology, node: Node) -> bool:
    return enabled(topology) and "postgres" in node.roles


@dataclass(frozen=True)
class Pool:
    """One line of PgBouncer's ``SHOW POOLS``: a database/user pair's clients and servers."""

    database: str
    user: str
    clients_active: int
    clients_waiting: int
    servers_active: int
    servers_idle: int
    pool_mode: str


def pools(address: str, port: int, password: str, ca_file: Path | None, timeout: float = 2.0) -> list[Pool]:
    """``SHOW POOLS`` from the admin console (simple query protocol: the console knows no other)."""
    conninfo: dict[str, Any] = {"host": address, "port": port, "dbname": ADMIN_DATABASE, "user": SUPERUSER.user,
                                "password": password, "connect_timeout": max(1, round(timeout)),
                                **sql.tls_keywords(ca_file)}
    with sql.session(cursor_factory=psycopg.ClientCursor, **conninfo) as conn:
        cursor = conn.execute("SHOW POOLS")
        names = [column.name for column in cursor.description or ()]
        rows = [dict(zip(names, row, strict=False)) for row in cursor.fetchall()]
    return [Pool(str(r["database"]), str(r["user"]), int(r["cl_active"]), int(r["cl_waiting"]),
                 int(r["sv_active"]), int(r["sv_idle"]), str(r.get("pool_mode") or ""))
            for r in rows if r["database"] != ADMIN_DATABASE]


class PoolerComponent(Component):
    name = NAME
    role = ROLE
    checks = ("test_03_pooler", "test_04_switchover_pooler")
    ports: ClassVar[Mapping[str, int]] = PORTS
    packages = PACKAGES
    # Debian's package enables its own instance (localhost:6432, /etc/pgbouncer); the role runs pglab's.
    box_disabled_units = (f"{SERVICE}.service",)
    settings: ClassVar[type[BaseModel] | None] = PoolerSettings
    comments: ClassVar[Mapping[str, str]] = {
        "pooler": "PgBouncer on every data node, in the clients' path (needs tls: true)",
        "pooler.enabled": "false: clients reach PostgreSQL itself",
        "pooler.pool_mode": "session | transaction | statement",
        "pooler.default_pool_size": "server connections per database and user",
        "pooler.max_client_conn": "clients each PgBouncer accepts",
    }

    def enabled(self, topology: Topology) -> bool:
        return enabled(topology)

    def prerequisites(self, topology: Topology) -> list[Prerequisite]:
        return [Prerequisite("pgbouncer", "pgbouncer", has_binary("pgbouncer", BINARY))] if enabled(topology) else []

    def package_roles(self, topology: Topology) -> list[str]:
        return [ROLE] if enabled(topology) else []

    def services(self, topology: Topology, node: Node) -> list[str]:
        return [SERVICE] if runs_on(topology, node) else []

    def node_ports(self, topology: Topology, node: Node) -> list[int]:
        return [topology.ports.pooler] if runs_on(topology, node) else []

    def tls_services(self, topology: Topology) -> list[TlsService]:
        return [TlsService(node, SERVICE, topology.ports.pooler, postgres=True)
                for node in topology.nodes if runs_on(topology, node)]

    def tls_rotation(self, topology: Topology) -> list[Rotation]:
        # SIGHUP is PgBouncer's RELOAD: it rereads its configuration and its TLS files, clients stay.
        return [Rotation(node, "Reload PgBouncer", "pglab", "reload", SERVICE)
                for node in topology.nodes if runs_on(topology, node)]

    def inventory_vars(self, topology: Topology, site: ComponentSite) -> dict[str, Any]:
        chosen = settings(topology)
        return {
            "pgbouncer_enabled": enabled(topology),
            "pgbouncer_port": getattr(topology.ports, NAME, PORTS[NAME]),
            "pgbouncer_pool_mode": chosen.pool_mode,
            "pgbouncer_default_pool_size": chosen.default_pool_size,
            "pgbouncer_max_client_conn": chosen.max_client_conn,
        }


COMPONENT = PoolerComponent()
