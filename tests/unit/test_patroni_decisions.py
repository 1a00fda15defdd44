"""How Patroni's answers become members and health, on answers recorded from a real lab
(tests/fixtures/patroni/, written by `python -m tests.fixtures.record_answers patroni`): /cluster,
each member's own /patroni and HAProxy's stats rows, for a healthy cluster, settings pending a
restart (raised and lowered), a lagging replica, a stopped one, every step of a switchover and a
lost DCS."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pglab.components import haproxy
from pglab.operations import lowers_hot_standby_setting, restart_pass
from pglab.stacks import patroni
from pglab.stacks.base import Health, Member, leader_of
from pglab.stacks.patroni import cluster_health, cluster_members

FIXTURES = Path(__file__).parents[1] / "fixtures" / "patroni"


def _answer(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def _health(answer: dict[str, Any]) -> Health:
    """What PatroniStack.health() decides from these answers."""
    members = cluster_members(answer["cluster"], answer["addresses"], answer["own"].get)
    routing = answer["haproxy"]
    if isinstance(routing, dict):
        return cluster_health(answer["cluster"], members, None, f"HAProxy stats unreachable: {routing['error']}")
    return cluster_health(answer["cluster"], members, [haproxy.Backend(*b) for b in routing])


def _by_name(health: Health) -> dict[str, Member]:
    return {m.name: m for m in health.members}


def test_a_healthy_cluster_has_one_leader_and_streaming_replicas() -> None:
    health = _health(_answer("healthy"))
    assert health.healthy, health.problems
    assert health.leader == "pg1"
    assert [(m.name, m.role, m.state) for m in health.members] == [
        ("pg1", "leader", "running"), ("pg2", "replica", "streaming"), ("pg3", "replica", "streaming")]
    assert [m.name for m in health.streaming_replicas] == ["pg2", "pg3"]
    assert all(not m.pending_restart for m in health.members)
    assert {m.lag_mb for m in health.streaming_replicas} == {0.0}
    assert {(b.proxy, b.server) for b in health.routing if b.status == "UP"} == {
        ("primary", "pg1"), ("replicas", "pg2"), ("replicas", "pg3")}


@pytest.mark.parametrize(("fixture", "old", "new", "lowers"), [("pending_raised", "100", "200", False),
                                                                ("pending_lowered", "100", "50", True)])
def test_a_setting_pending_restart_shows_on_every_member(fixture: str, old: str, new: str, lowers: bool) -> None:
    health = _health(_answer(fixture))
    assert health.healthy, health.problems  # pending is not unhealthy
    assert all(m.pending_restart for m in health.members)
    assert {m.name: m.pending_changes for m in health.members} == {
        name: {"max_connections": {"old_value": old, "new_value": new}} for name in ("pg1", "pg2", "pg3")}
    assert lowers_hot_standby_setting(_by_name(health)["pg1"]) is lowers


def test_raising_a_setting_restarts_the_replicas_then_moves_the_leader_away() -> None:
    members = _health(_answer("pending_raised")).members
    assert restart_pass(members, everyone=False, rolling=True, first=True) == (None, ["pg2", "pg3"], "pg1")


def test_lowering_a_setting_restarts_the_leader_in_place_first() -> None:
    members = _health(_answer("pending_lowered")).members
    assert restart_pass(members, everyone=False, rolling=True, first=True) == ("pg1", ["pg2", "pg3"], None)


def test_a_leader_still_pending_after_a_pass_restarts_in_place() -> None:
    members = _health(_answer("pending_raised")).members
    assert restart_pass(members, everyone=False, rolling=True, first=False) == ("pg1", ["pg2", "pg3"], None)
    assert restart_pass(members, everyone=False, rolling=False, first=True) == ("pg1", ["pg2", "pg3"], None)


def test_nothing_pending_restarts_nobody_unless_everyone_is_asked_for() -> None:
    members = _health(_answer("healthy")).members
    assert restart_pass(members, everyone=False, rolling=True, first=True) == (None, [], None)
    assert restart_pass(members, everyone=True, rolling=True, first=True) == (None, ["pg2", "pg3"], "pg1")


def test_a_lagging_replica_shows_its_lag_and_still_streams() -> None:
    # pg2 was frozen while the leader wrote 24 MB: its member key still holds its last position.
    health = _health(_answer("lagging"))
    members = _by_name(health)
    assert members["pg2"].state == "streaming" and members["pg2"].lag_mb is not None and members["pg2"].lag_mb > 20
    assert members["pg3"].lag_mb == 0.0
    assert health.healthy, health.problems  # Patroni's health is about roles and routing, not lag


def test_a_stopped_replica_is_a_problem_named_after_it() -> None:
    health = _health(_answer("stopped"))
    members = _by_name(health)
    assert (members["pg2"].role, members["pg2"].state, members["pg2"].lag_mb) == ("replica", "stopped", None)
    assert health.leader == "pg1"
    assert health.problems == ["pg2 is stopped, not streaming"]
    assert [m.name for m in health.streaming_replicas] == ["pg3"]


def test_a_switchover_is_unhealthy_until_the_old_leader_streams_and_haproxy_follows() -> None:
    steps = [_health(step) for step in _answer("switchover")["steps"]]
    first, last = steps[0], steps[-1]
    assert first.healthy and first.leader == "pg1"
    assert last.healthy and last.leader not in (None, "pg1"), last.problems
    assert _by_name(last)["pg1"].state == "streaming"
    assert _by_name(last)[last.leader].timeline == _by_name(first)["pg1"].timeline + 1  # type: ignore[operator]
    between = steps[1:-1]
    assert between and not any(h.healthy for h in between)
    # On the way: the old leader stopping (no running leader), then a new leader that HAProxy
    # does not route to yet.
    assert any(h.leader is None and "0 running leaders (expected 1)" in h.problems for h in between)
    assert any(h.leader == last.leader and any(p.startswith("HAProxy routes writes to") for p in h.problems)
               for h in between)
    # The switchover's own test for "moved" (stack.leader()): the first running leader but pg1.
    moved = next(h for h in steps if leader_of(h.members) not in (None, "pg1"))
    assert leader_of(moved.members) == last.leader and not moved.healthy


def test_a_lost_dcs_shows_each_member_as_it_sees_itself() -> None:
    answer = _answer("no_dcs")
    assert answer["cluster"] is None
    health = _health(answer)
    assert not health.healthy
    assert health.problems[0] == "no member can read the DCS (is etcd/Consul down?)"
    assert all(m.state == "running, no DCS" for m in health.members), health.members
    assert sorted(m.role for m in health.members) == ["leader", "replica", "replica"]


def test_a_member_that_does_not_answer_itself_is_stopped() -> None:
    answer = _answer("no_dcs")
    members = cluster_members(None, answer["addresses"], lambda name: None)
    assert [(m.role, m.state) for m in members] == [("", "stopped")] * 3
    health = cluster_health(None, members, None)
    assert health.problems == ["no member can read the DCS (is etcd/Consul down?)", "0 running leaders (expected 1)",
                               "pg1 is stopped, not streaming", "pg2 is stopped, not streaming",
                               "pg3 is stopped, not streaming"]


def test_haproxy_that_does_not_answer_is_a_problem() -> None:
    answer = _answer("healthy")
    members = cluster_members(answer["cluster"], answer["addresses"], answer["own"].get)
    health = cluster_health(answer["cluster"], members, None, "HAProxy stats unreachable: refused")
    assert health.leader == "pg1" and health.problems == ["HAProxy stats unreachable: refused"]


def test_a_switchover_patroni_did_not_see_end_is_still_under_way() -> None:
    # Patroni's REST API: accepted, but the new leader did not show within its own wait.
    assert patroni._still_under_way(503, "Switchover status unknown")
    assert patroni._still_under_way(503, "Failover status unknown\n")
    assert not patroni._still_under_way(503, "Switchover failed")
    assert not patroni._still_under_way(412, "candidate name does not match with sync_standby")


def test_a_switchover_waits_for_patroni_to_name_a_synchronous_standby() -> None:
    # Synchronous mode, a replica just back from a restart: Patroni has no sync standby yet.
    assert patroni._no_sync_standby_yet(412, "switchover is not possible: can not find sync_standby")
    # With a candidate: a refusal that stands while another replica is the sync standby ...
    refused = "candidate name does not match with sync_standby"
    named = {"members": [{"name": "pg1", "role": "leader"}, {"name": "pg2", "role": "sync_standby"},
                         {"name": "pg3", "role": "replica"}]}
    assert not patroni._no_sync_standby_yet(412, refused, lambda: named)
    # ... and a wait while none is named yet (the old leader just back, after a switchover).
    unnamed = {"members": [{"name": "pg1", "role": "leader"}, {"name": "pg2", "role": "replica"}]}
    assert patroni._no_sync_standby_yet(412, refused, lambda: unnamed)
    assert not patroni._no_sync_standby_yet(200, "Successfully switched over")
