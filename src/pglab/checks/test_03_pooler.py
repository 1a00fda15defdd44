"""Check 3, the pooler: every data node's PgBouncer answers over TLS (the lab's CA, the node's
name verified) and refuses plaintext; HAProxy's direct ports reach the leader and a replica as
its pooled ones do (check 3, routing)."""

from __future__ import annotations

import psycopg

from pglab import sql, waiting
from pglab.checks import leader, node_at, streaming_replicas
from pglab.lab import Lab

LOGIN_RETRY_GRACE = 10.0  # seconds; the role sets server_login_retry to 1


def test_pooler_answers_over_tls_only(lab: Lab, postgres_node: str, password: str) -> None:
    address, port = lab.address(postgres_node), lab.topology.ports.pooler
    found: list[str] = []

    def answers() -> tuple[bool, str]:
        try:
            found.append(sql.server_state(address, port, password, lab.libpq_tls())[1])
        except (OSError, psycopg.Error) as exc:
            return False, sql.first_line(exc)
        return True, ""

    # A PgBouncer whose PostgreSQL just restarted waits server_login_retry before it logs in again.
    done, detail, _ = waiting.poll(answers, LOGIN_RETRY_GRACE, 0.5)
    if not done:
        raise AssertionError(f"{postgres_node}: PgBouncer on {address}:{port} does not answer over TLS: {detail}")
    server = found[-1]
    assert node_at(lab, server) == postgres_node, (
        f"{postgres_node}: PgBouncer on {address}:{port} reaches {node_at(lab, server)}, not its own PostgreSQL")
    try:
        sql.query(address, port, password, "SELECT 1", tls={"sslmode": "disable"})
    except psycopg.Error:
        return
    raise AssertionError(f"{postgres_node}: PgBouncer on {address}:{port} takes plaintext clients")


def test_direct_writes_port_reaches_the_leader(lab: Lab, haproxy_node: str, password: str) -> None:
    port = lab.topology.ports.haproxy_primary_direct
    in_recovery, server = sql.server_state(lab.address(haproxy_node), port, password, lab.libpq_tls())
    assert node_at(lab, server) == leader(lab) and not in_recovery, (
        f"{haproxy_node}: the direct writes port {port} reaches {node_at(lab, server)}, not the leader")


def test_direct_reads_port_reaches_a_replica(lab: Lab, haproxy_node: str, password: str) -> None:
    port = lab.topology.ports.haproxy_replicas_direct
    in_recovery, server = sql.server_state(lab.address(haproxy_node), port, password, lab.libpq_tls())
    assert in_recovery and node_at(lab, server) in streaming_replicas(lab), (
        f"{haproxy_node}: the direct reads port {port} reaches {node_at(lab, server)}, not a streaming replica")
