"""Check 5, manual failover: `failover --to` a replica promotes it, the former leader streams
from it, the writes port follows, and no row is lost."""

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
def failover(lab: Lab, password: str) -> dict[str, Any]:
    return change_leader(lab, password, operations.failover)


def test_chosen_replica_is_promoted(lab: Lab, failover: dict[str, Any]) -> None:
    now = leader(lab)
    assert now == failover["target"], f"after a failover to {failover['target']} the leader is {now}"


def test_timeline_increases(lab: Lab, failover: dict[str, Any]) -> None:
    target, before = failover["target"], failover["old_timeline"]
    after = members(lab)[target].timeline
    assert after is not None and before is not None and after > before, (
        f"{target} leads on timeline {after}, not above the former leader's timeline {before}")


def test_former_leader_streams_from_the_new_one(lab: Lab, failover: dict[str, Any], password: str) -> None:
    ok, detail = wait_streaming(lab, failover["old"], leader(lab), password)
    assert ok, f"the former leader {detail}"


def test_writes_port_follows_the_new_leader(lab: Lab, failover: dict[str, Any], password: str) -> None:
    reached = writes_reach(lab, password)
    assert reached == failover["target"], f"the writes port reaches {reached}, not the new leader {failover['target']}"


def test_rows_survive_the_failover(lab: Lab, failover: dict[str, Any], password: str) -> None:
    host, port = lab.writes_endpoint()
    now = count_rows(lab, host, port, password)
    assert now >= failover["rows"], f"{failover['rows']} rows before the failover, {now} after it"
