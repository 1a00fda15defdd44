"""How the pg_auto_failover monitor's rows become members and health, on answers recorded from a
real lab (tests/fixtures/pg_auto_failover/, written by
`python -m tests.fixtures.record_answers pg_auto_failover`): the monitor's node rows (read by
column name) and each node's settings pending a restart, for a healthy formation, settings
pending (raised and lowered), a secondary left behind, a stopped one, every step of a switchover
and a silent monitor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pglab.operations import lowers_hot_standby_setting, restart_pass
from pglab.stacks.base import Health, Member, leader_of
from pglab.stacks.pgaf import MonitorNode, formation_health, members_from_monitor, pending_changes

FIXTURES = Path(__file__).parents[1] / "fixtures" / "pg_auto_failover"


def _answer(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def _health(answer: dict[str, Any]) -> Health:
    """What PgAutoFailoverStack.health() decides from these answers."""
    rows = None if answer["nodes"] is None else [MonitorNode(**r) for r in answer["nodes"]]

    def pending(name: str) -> dict[str, dict[str, str]]:
        # A node that did not answer (stopping while the monitor still saw it up) has none, as
        # in PgAutoFailoverStack._pending.
        return pending_changes([(n, old, new) for n, old, new in answer["pending"][name] or []])

    return formation_health(rows, members_from_monitor(rows, answer["addresses"], pending), answer["monitor"])


def _by_name(health: Health) -> dict[str, Member]:
    return {m.name: m for m in health.members}


def _states(health: Health) -> list[tuple[str, str, str]]:
    return [(m.name, m.role, m.state) for m in health.members]


def test_a_healthy_formation_has_a_primary_and_a_streaming_secondary() -> None:
    health = _health(_answer("healthy"))
    assert health.healthy, health.problems
    assert health.leader == "pg1"
    assert _states(health) == [("pg1", "leader", "running"), ("pg2", "replica", "streaming")]
    members = _by_name(health)
    assert (members["pg2"].current_state, members["pg2"].assigned_state) == ("secondary", "secondary")
    assert members["pg2"].lag_mb == 0.0 and members["pg1"].lag_mb is None
    assert {m.port for m in health.members} == {5432}
    assert not any(m.pending_restart for m in health.members)


@pytest.mark.parametrize(("fixture", "new", "lowers"), [("pending_raised", "200", False),
                                                        ("pending_lowered", "50", True)])
def test_a_setting_pending_restart_shows_the_running_and_the_file_value(fixture: str, new: str, lowers: bool) -> None:
    health = _health(_answer(fixture))
    assert health.healthy, health.problems
    assert {m.name: m.pending_changes for m in health.members} == {
        name: {"max_connections": {"old_value": "100", "new_value": new}} for name in ("pg1", "pg2")}
    assert lowers_hot_standby_setting(_by_name(health)["pg1"]) is lowers


def test_the_restart_order_follows_the_direction_of_the_change() -> None:
    raised = _health(_answer("pending_raised")).members
    lowered = _health(_answer("pending_lowered")).members
    assert restart_pass(raised, everyone=False, rolling=True, first=True) == (None, ["pg2"], "pg1")
    assert restart_pass(lowered, everyone=False, rolling=True, first=True) == ("pg1", ["pg2"], None)


def test_listen_addresses_is_never_pending() -> None:
    # pg_autoctl starts PostgreSQL with -h ADDRESS while its include says listen_addresses = '*'.
    rows = [("listen_addresses", "127.0.42.152", "*"), ("max_connections", "100", "50")]
    assert pending_changes(rows) == {"max_connections": {"old_value": "100", "new_value": "50"}}


def test_a_secondary_left_behind_shows_its_lag() -> None:
    # pg2 frozen while pg1 wrote: the monitor keeps the LSN pg2's keeper last reported, soon
    # judges it unhealthy and assigns it catchingup; pg1 waits as wait_primary.
    health = _health(_answer("lagging"))
    members = _by_name(health)
    assert members["pg2"].lag_mb is not None and members["pg2"].lag_mb > 4
    assert (members["pg2"].role, members["pg2"].state) == ("replica", "unreachable")
    assert (members["pg1"].role, members["pg1"].state, members["pg1"].current_state) == (
        "leader", "running", "wait_primary")
    assert health.leader == "pg1"
    assert health.problems == ["pg2 is unreachable, not a streaming secondary",
                               "the primary pg1 reports its standbys as async, not yet in sync"]


def test_a_stopped_secondary_is_unreachable_and_not_asked_for_its_settings() -> None:
    health = _health(_answer("stopped"))
    assert _states(health) == [("pg1", "leader", "running"), ("pg2", "replica", "unreachable")]
    assert not health.healthy
    assert health.problems[0] == "pg2 is unreachable, not a streaming secondary"


def test_a_switchover_goes_through_the_monitors_states_until_the_roles_are_swapped() -> None:
    steps = [_health(step) for step in _answer("switchover")["steps"]]
    first, last = steps[0], steps[-1]
    assert first.healthy and first.leader == "pg1"
    assert last.healthy and last.leader == "pg2", last.problems
    assert _states(last) == [("pg1", "replica", "streaming"), ("pg2", "leader", "running")]
    assert _by_name(last)["pg2"].timeline == _by_name(first)["pg1"].timeline + 1  # type: ignore[operator]
    between = steps[1:-1]
    assert between and not any(h.healthy for h in between)
    # While pg1 drains and pg2 prepares its promotion there is no running primary at all; then pg2
    # leads (wait_primary) before pg1 streams again.
    assert any(h.leader is None and "0 running primaries (expected 1)" in h.problems for h in between)
    leaders = [leader_of(h.members) for h in steps]
    assert leaders[0] == "pg1" and leaders[-1] == "pg2"
    assert "pg1" not in leaders[leaders.index("pg2"):], "the primary went back to pg1 during the switchover"
    # A node in transition shows where it is and where the monitor sends it.
    assert _states(between[0]) == [("pg1", "replica", "primary -> draining"),
                                   ("pg2", "replica", "secondary -> prepare_promotion")]
    # The last step before healthy: pg2 primary, pg1 streaming, the primary not yet reporting it in sync.
    assert steps[-2].problems == ["the primary pg2 reports its standbys as async, not yet in sync"]


def test_a_silent_monitor_leaves_every_node_unknown() -> None:
    health = _health(_answer("no_monitor"))
    assert health.leader is None
    assert _states(health) == [("pg1", "", "monitor unreachable"), ("pg2", "", "monitor unreachable")]
    assert health.problems == ["the monitor at 127.0.42.151:5431 does not answer"]


def test_a_node_the_monitor_does_not_know_is_a_problem() -> None:
    answer = _answer("healthy")
    rows = [MonitorNode(**r) for r in answer["nodes"] if r["nodename"] == "pg1"]
    health = formation_health(rows, members_from_monitor(rows, answer["addresses"], lambda name: {}), "monitor")
    assert _states(health)[1] == ("pg2", "", "not registered")
    assert health.leader == "pg1" and health.problems == ["pg2 is not registered"]
