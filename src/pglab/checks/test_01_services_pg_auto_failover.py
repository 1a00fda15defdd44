"""Check 1, services (pg_auto_failover): the monitor's PostgreSQL answers with the pgautofailover
extension and knows every data node; every node's pg_autoctl runs under the node's service
manager and each data node's PostgreSQL listens."""

from __future__ import annotations

from pglab.checks import listens, service_state
from pglab.lab import Lab
from pglab.stacks.base import StackError
from pglab.stacks.pgaf import PgAutoFailoverStack

SERVICE = "pgautofailover"  # the keeper's (and the monitor's) service: supervisor program or systemd unit


def _stack(lab: Lab) -> PgAutoFailoverStack:
    stack = lab.stack()
    assert isinstance(stack, PgAutoFailoverStack)
    return stack


def test_monitor_answers_with_its_extension(lab: Lab, monitor_node: str) -> None:
    try:
        version = _stack(lab).extension_version()
    except StackError as exc:
        raise AssertionError(f"{monitor_node}: {exc}") from None
    assert version, f"{monitor_node}: the monitor's database has no pgautofailover extension"


def test_monitor_service_runs(lab: Lab, monitor_node: str) -> None:
    running, detail = service_state(lab, monitor_node, SERVICE)
    assert running, f"{monitor_node}: the monitor's pg_autoctl is not running: {detail}"


def test_monitor_listens(lab: Lab, monitor_node: str) -> None:
    address, port = lab.address(monitor_node), lab.topology.ports.monitor
    assert listens(lab, monitor_node, port), (
        f"{monitor_node}: nothing listens on {address}:{port} (the monitor's PostgreSQL)")


def test_keeper_service_runs(lab: Lab, postgres_node: str) -> None:
    running, detail = service_state(lab, postgres_node, SERVICE)
    assert running, f"{postgres_node}: pg_autoctl is not running: {detail}"


def test_postgres_listens(lab: Lab, postgres_node: str) -> None:
    address, port = lab.address(postgres_node), lab.topology.ports.postgres
    assert listens(lab, postgres_node, port), f"{postgres_node}: nothing listens on {address}:{port} (PostgreSQL)"


def test_node_is_registered_and_healthy(lab: Lab, postgres_node: str) -> None:
    rows = {r.nodename: r for r in _stack(lab).monitor_nodes() or []}
    assert postgres_node in rows, (
        f"{postgres_node}: not registered with the monitor (it knows: {', '.join(rows) or 'no node'})")
    health = rows[postgres_node].health
    assert health == 1, f"{postgres_node}: the monitor's health check says {health} (1 is healthy)"
