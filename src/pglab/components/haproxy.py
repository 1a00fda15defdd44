"""HAProxy, the router a stack's clients reach its leader and replicas through: the component's
declaration (:data:`COMPONENT`: its listeners from the stack's routes, its stats page's TLS, its
reload, its settings for slow machines), its ports and the stats page's account, and its stats
page (CSV), read to see which servers each listener routes to: over HTTPS, its certificate
verified against the lab's CA, in a TLS lab; over HTTP with ``tls: false``."""

from __future__ import annotations

import base64
import csv
import io
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pglab.components.base import Component, ComponentSite, Rotation, Route, TlsService
from pglab.secrets import Account
from pglab.tls import certs
from pglab.topology import Node, Topology

ROLE = "haproxy"  # the node role and the Ansible role
SERVICE = "haproxy"

# The topology's ports (``ports.haproxy_primary`` ...) and their defaults.
# With the pooler on, 5000 / 5001 go through the nodes' PgBouncer and 5002 / 5003 straight to PostgreSQL.
PORTS = {"haproxy_primary": 5000, "haproxy_replicas": 5001, "haproxy_stats": 7000,
         "haproxy_primary_direct": 5002, "haproxy_replicas_direct": 5003}
STATS_ACCOUNT = Account("admin", "haproxy_stats_user", "haproxy_stats_password", "HAProxy stats page")
ACCOUNTS = (STATS_ACCOUNT,)


@dataclass(frozen=True)
class Backend:
    proxy: str
    server: str
    status: str  # UP, DOWN, MAINT, "no check" ...


def stats_url(address: str, port: int, ca_file: Path | None) -> str:
    """The stats page: HTTPS when the lab has a CA (``ca_file``), HTTP otherwise."""
    return f"{'https' if ca_file else 'http'}://{address}:{port}/"


def backends(address: str, port: int, user: str, password: str, timeout: float = 2.0,
             ca_file: Path | None = None) -> list[Backend]:
    request = urllib.request.Request(stats_url(address, port, ca_file) + ";csv")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=timeout, context=certs.client_context(ca_file)) as response:
        text = response.read().decode()
    rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
    return [
        Backend(row["pxname"], row["svname"], row["status"])
        for row in rows
        if row["svname"] not in ("FRONTEND", "BACKEND")
    ]


def listeners(routes: tuple[Route, ...] | list[Route]) -> list[dict[str, Any]]:
    """The stack's routes as the haproxy role's template reads them (``haproxy_listeners``)."""
    return [{"name": r.name, "port": r.port, "server_port": r.server_port, "comment": r.comment,
             "tls_comment": r.tls_comment, "balance": r.balance, "reads": r.reads, "pooler_port": r.pooler_port,
             "check": {"method": r.check.method, "path": r.check.path, "port": r.check.port,
                       "tls": r.check.tls, "expect_status": r.check.expect_status}}
            for r in routes]


class HaproxyComponent(Component):
    name = "haproxy"
    role = ROLE
    # Guests 10x slower than the host, sharing its CPUs: on a replica that is not streaming yet,
    # every health check opens a replication connection to ask its timeline; four checks a
    # second, each slower than HAProxy waits for, pile up until max_wal_senders is spent and the
    # replica cannot stream at all. Reads are checked no faster than writes there.
    slow_machine_variables: ClassVar[Mapping[str, Any]] = {
        "haproxy_check_inter": "3s", "haproxy_check_fastinter": "1s",
        "haproxy_check_downinter": "3s", "haproxy_check_timeout": "5s",
        "haproxy_replicas_check_inter": "3s", "haproxy_replicas_check_fastinter": "1s",
        "haproxy_replicas_check_downinter": "3s",
    }

    ports: ClassVar[Mapping[str, int]] = PORTS
    accounts = ACCOUNTS

    def enabled(self, topology: Topology) -> bool:
        return bool(topology.with_role(ROLE))

    def node_ports(self, topology: Topology, node: Node) -> list[int]:
        return [topology.ports.haproxy_stats] if ROLE in node.roles else []

    def tls_services(self, topology: Topology) -> list[TlsService]:
        """The stats page: HAProxy relays PostgreSQL's TLS on its client ports and checks the
        servers with the lab's CA, but serves its own certificate on the stats page only."""
        return [TlsService(node, "haproxy-stats", topology.ports.haproxy_stats) for node in topology.with_role(ROLE)]

    def tls_rotation(self, topology: Topology) -> list[Rotation]:
        # -W master-worker: SIGUSR2 to the master rereads the CA bundle without dropping listeners.
        return [Rotation(node, "Reload HAProxy", "pglab", "reload", SERVICE, signal="USR2")
                for node in topology.with_role(ROLE)]

    def inventory_vars(self, topology: Topology, site: ComponentSite) -> dict[str, Any]:
        return {"haproxy_stats_port": topology.ports.haproxy_stats, "haproxy_listeners": listeners(site.routes)}


COMPONENT = HaproxyComponent()
