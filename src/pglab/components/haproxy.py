"""HAProxy, the router in front of a stack that routes clients (Patroni): the ports it listens on,
the stats page's account, and reading that page (CSV) to see which servers each listener routes
to: over HTTPS, its certificate verified against the lab's CA, in a TLS lab; over HTTP with
``tls: false``."""

from __future__ import annotations

import base64
import csv
import io
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pglab.secrets import Account
from pglab.tls import certs

# The topology's ports (``ports.haproxy_primary`` ...) and their defaults.
PORTS = {"haproxy_primary": 5000, "haproxy_replicas": 5001, "haproxy_stats": 7000}
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
