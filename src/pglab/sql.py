"""Small psycopg helpers with timeouts of their own: a frozen (SIGSTOP) server must never hang
pglab or its checks."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import TupleRow

from pglab.secrets import SUPERUSER
from pglab.waiting import timeout_scale

CONNECT_TIMEOUT = 3
STATEMENT_TIMEOUT_MS = 5000


def connect_timeout() -> int:
    """Seconds libpq waits for a connection (scaled on slow, emulated machines)."""
    return round(CONNECT_TIMEOUT * timeout_scale())


def writer_attrs(host: str) -> dict[str, str]:
    """libpq keywords for writing at ``host``: with several hosts ("a,b"), libpq tries them in turn
    for the one that takes writes (target_session_attrs=read-write), as a multi-host URI does."""
    return {"target_session_attrs": "read-write"} if "," in host else {}


def tls_keywords(ca_file: Path | None) -> dict[str, str]:
    """libpq keywords for a lab with TLS: verify-full, that is the server's certificate chains to
    the lab's CA bundle and names the address dialled; none for a plaintext lab (``None``)."""
    return {"sslmode": "verify-full", "sslrootcert": str(ca_file)} if ca_file else {}


def session(conninfo: str = "", *, autocommit: bool = True, **keywords: Any) -> psycopg.Connection[TupleRow]:
    """A psycopg session as every pglab client opens one, from a URI and/or libpq keywords: no
    protocol-level prepared statements, since PgBouncer 1.18 in transaction mode cannot keep them
    (another client's statement of the same name may already sit on the server connection)."""
    return psycopg.connect(conninfo, autocommit=autocommit, prepare_threshold=None, **keywords)


def connect(host: str, port: int, password: str, dbname: str = "postgres", user: str = SUPERUSER.user,
            autocommit: bool = True, tls: Mapping[str, str] | None = None) -> psycopg.Connection:
    """A session at host:port; ``host`` may list several hosts (see :func:`writer_attrs`);
    ``tls`` holds the lab's :func:`tls_keywords`."""
    conninfo: dict[str, Any] = {
        "host": host, "port": port, "dbname": dbname, "user": user, "password": password,
        "connect_timeout": connect_timeout(),
        "options": f"-c statement_timeout={round(STATEMENT_TIMEOUT_MS * timeout_scale())}",
        "application_name": "pglab", **writer_attrs(host), **(tls or {}),
    }
    return session(autocommit=autocommit, **conninfo)


def query(host: str, port: int, password: str, sql: str, params: Any = None, dbname: str = "postgres",
          tls: Mapping[str, str] | None = None) -> list[tuple[Any, ...]]:
    with connect(host, port, password, dbname, tls=tls) as conn:
        return conn.execute(sql, params).fetchall()


def first_line(exc: BaseException) -> str:
    """An error's first line (libpq messages run on with hints), or its type when it says nothing."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def server_state(host: str, port: int, password: str, tls: Mapping[str, str] | None = None) -> tuple[bool, str]:
    """(in recovery, server address) of a session opened at host:port; raises psycopg errors."""
    in_recovery, server = query(host, port, password, "SELECT pg_is_in_recovery(), host(inet_server_addr())",
                                tls=tls)[0]
    return in_recovery, server


def writable(host: str, port: int, password: str, tls: Mapping[str, str] | None = None) -> tuple[bool, str]:
    """Whether a session at host:port accepts writes, and the server address it reached."""
    try:
        in_recovery, server = server_state(host, port, password, tls)
    except psycopg.Error as exc:
        return False, first_line(exc)
    return (not in_recovery), server
