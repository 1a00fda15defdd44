"""Check 3, routing (pg_auto_failover): the formation's multi-host URI with
target_session_attrs=read-write reaches the primary, with =standby a secondary, and the URI the
monitor publishes lists every data node."""

from __future__ import annotations

import psycopg

from pglab import sql
from pglab.checks import leader, node_at, streaming_replicas
from pglab.lab import Lab


def _reach(lab: Lab, which: str, password: str) -> tuple[bool, str]:
    uri = lab.endpoints()[which]
    try:
        with sql.session(uri, password=password, connect_timeout=sql.CONNECT_TIMEOUT) as conn:
            in_recovery, server = conn.execute("SELECT pg_is_in_recovery(), host(inet_server_addr())").fetchone()  # type: ignore[misc]  # one row always
    except (OSError, psycopg.Error) as exc:
        raise AssertionError(f"the {which} URI {uri} does not connect: {sql.first_line(exc)}") from None
    return in_recovery, node_at(lab, server)


def test_write_uri_reaches_the_primary(lab: Lab, password: str) -> None:
    current = leader(lab)
    in_recovery, server = _reach(lab, "write", password)
    assert server == current and not in_recovery, (
        f"the write URI reaches {server}{' (in recovery)' if in_recovery else ''}, not the primary {current}")


def test_read_uri_reaches_a_secondary(lab: Lab, password: str) -> None:
    secondaries = streaming_replicas(lab)
    in_recovery, server = _reach(lab, "read", password)
    assert in_recovery and server in secondaries, (
        f"the read URI reaches {server}{'' if in_recovery else ' (not in recovery)'}, not a secondary "
        f"({', '.join(secondaries) or 'none'})")


def test_monitor_uri_lists_every_data_node(lab: Lab) -> None:
    uri = lab.stack().uri()
    assert uri, "the monitor publishes no formation URI"
    missing = [n.name for n in lab.topology.with_role("postgres")
               if f"{lab.address(n.name)}:{lab.topology.ports.postgres}" not in uri]
    assert not missing and "target_session_attrs=read-write" in uri, (
        f"the formation URI {uri} misses {', '.join(missing) or 'target_session_attrs=read-write'}")
