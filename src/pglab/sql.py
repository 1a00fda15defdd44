"""Small psycopg helpers with timeouts of their own: a frozen (SIGSTOP) server must never hang
pglab or its checks."""

from __future__ import annotations

from typing import Any

import psycopg

CONNECT_TIMEOUT = 3
STATEMENT_TIMEOUT_MS = 5000


def connect(host: str, port: int, password: str, dbname: str = "postgres", user: str = "postgres",
            autocommit: bool = True) -> psycopg.Connection:
    return psycopg.connect(
        host=host, port=port, dbname=dbname, user=user, password=password, autocommit=autocommit,
        connect_timeout=CONNECT_TIMEOUT, options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
        application_name="pglab",
    )


def query(host: str, port: int, password: str, sql: str, params: Any = None, dbname: str = "postgres") -> list[tuple]:
    with connect(host, port, password, dbname) as conn:
        return conn.execute(sql, params).fetchall()


def writable(host: str, port: int, password: str) -> tuple[bool, str]:
    """Whether a session at host:port accepts writes, and the server address it reached."""
    try:
        rows = query(host, port, password, "SELECT pg_is_in_recovery(), inet_server_addr()::text")
    except psycopg.Error as exc:
        return False, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    in_recovery, server = rows[0]
    return (not in_recovery), server
