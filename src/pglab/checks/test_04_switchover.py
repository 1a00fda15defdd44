"""Check 4, switchover: a planned switchover to a replica moves the leader there on a new
timeline, the old leader streams again, the writes port follows, and no row is lost."""

from __future__ import annotations

from typing import Any

import pytest

from pglab import operations
from pglab.checks import (
    change_leader,
    count_rows,
    leader,
    members,
    wait_streaming,
    writes_reach,
)
from pglab.lab import Lab


@pytest.fixture(scope="module")
def switchover(lab: Lab, password: str) -> dict[str, Any]:
    return change_leader(lab, password, operations.switchover)


def test_leader_moves_to_the_chosen_replica(lab: Lab, switchover: dict[str, Any]) -> None:
    now = leader(lab)
    assert now == switchover["target"], (
        f"after a switchover from {switchover['old']} to {switchover['target']} the leader is {now}")


def test_timeline_increases(lab: Lab, switchover: dict[str, Any]) -> None:
    target, before = switchover["target"], switchover["old_timeline"]
    after = members(lab)[target].timeline
    assert after is not None and before is not None and after > before, (
        f"{target} leads on timeline {after}, not above the old leader's timeline {before}")


def test_old_leader_streams_again(lab: Lab, switchover: dict[str, Any], password: str) -> None:
    ok, detail = wait_streaming(lab, switchover["old"], leader(lab), password)
    assert ok, f"the old leader {detail}"


def test_writes_port_follows_the_new_leader(lab: Lab, switchover: dict[str, Any], password: str) -> None:
    reached = writes_reach(lab, password)
    assert reached == switchover["target"], (
        f"the writes port reaches {reached}, not the new leader {switchover['target']}")


def test_rows_survive_the_switchover(lab: Lab, switchover: dict[str, Any], password: str) -> None:
    host, port = lab.writes_endpoint()
    now = count_rows(lab, host, port, password)
    assert now >= switchover["rows"], f"{switchover['rows']} rows before the switchover, {now} after it"
