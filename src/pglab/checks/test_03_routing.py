"""Check 3, routing: HAProxy's writes port reaches the leader, its reads port a replica, and its
stats show the leader (and only it) UP behind the writes port."""

from __future__ import annotations

import psycopg

from pglab import sql
from pglab.checks import leader, node_at, streaming_replicas
from pglab.lab import Lab


def _server(lab: Lab, name: str, port: int, password: str, what: str) -> tuple[bool, str]:
    address = lab.address(name)
    try:
        in_recovery, server = sql.server_state(address, port, password, lab.libpq_tls())
    except (OSError, psycopg.Error) as exc:
        raise AssertionError(
            f"{name}: the {what} port {address}:{port} does not answer: {sql.first_line(exc)}") from None
    return in_recovery, node_at(lab, server)


def test_writes_port_reaches_the_leader(lab: Lab, haproxy_node: str, password: str) -> None:
    current = leader(lab)
    name, address = haproxy_node, lab.address(haproxy_node)
    port = lab.topology.ports.haproxy_primary
    in_recovery, server = _server(lab, haproxy_node, port, password, "writes")
    assert server == current and not in_recovery, (
        f"{name}: the writes port {address}:{port} reaches {server}{' (in recovery)' if in_recovery else ''}, "
        f"not the leader {current}")


def test_reads_port_reaches_a_replica(lab: Lab, haproxy_node: str, password: str) -> None:
    replicas = streaming_replicas(lab)
    name, address = haproxy_node, lab.address(haproxy_node)
    port = lab.topology.ports.haproxy_replicas
    in_recovery, server = _server(lab, haproxy_node, port, password, "reads")
    assert in_recovery and server in replicas, (
        f"{name}: the reads port {address}:{port} reaches {server}{'' if in_recovery else ' (not in recovery)'}, "
        f"not a streaming replica ({', '.join(replicas) or 'none'})")


def test_stats_show_only_the_leader_up_for_writes(lab: Lab, haproxy_node: str) -> None:
    current = leader(lab)
    name, address = haproxy_node, lab.address(haproxy_node)
    try:
        backends = lab.stack(timeout=3).routing()
    except OSError as exc:
        raise AssertionError(f"{name}: the stats page on {address}:{lab.topology.ports.haproxy_stats} "
                             f"does not answer: {sql.first_line(exc)}") from None
    up = sorted(b.server for b in backends if b.proxy == "primary" and b.status == "UP")
    assert up == [current], (
        f"{name}: the stats show {', '.join(up) or 'no server'} UP in the primary backend, expected only the "
        f"leader {current}")
