"""Check 6, node loss: stopping the leader's whole node promotes a replica and writes resume
through the writes port; started again, the old leader rejoins as a streaming replica and has
the row written while it was down (nothing lost). In a compact lab the leader first moves off
the node that routes the clients."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from pglab import operations, sql
from pglab.checks import a_leader_to_stop, ensure_rows, insert_row, leader, rows_on, wait_streaming
from pglab.lab import Lab


@pytest.fixture(scope="module")
def outage(lab: Lab, password: str) -> dict[str, Any]:
    ensure_rows(lab, password)
    old = a_leader_to_stop(lab, password)
    seen: dict[str, Any] = {"old": old}
    try:
        result = operations.stop_node(lab, old)
        seen["new_leader"] = result.details.get("new_leader")
        try:
            seen["row"], seen["written_on"] = insert_row(lab, password, f"written while {old} was down")
        except (OSError, psycopg.Error) as exc:
            seen["write_error"] = sql.first_line(exc)
    finally:
        # Whatever happened, the node comes back: the next checks (and the user) need the lab.
        seen["start"] = operations.start_node(lab, old)
    return seen


def test_a_replica_is_promoted_when_the_leader_stops(outage: dict[str, Any]) -> None:
    new = outage["new_leader"]
    assert new not in (None, outage["old"]), f"no replica was promoted after stopping the leader {outage['old']}"


def test_writes_resume_while_the_old_leader_is_down(outage: dict[str, Any]) -> None:
    assert "row" in outage, (
        f"a row could not be written through the writes port while {outage['old']} was down: "
        f"{outage.get('write_error')}")
    assert outage["written_on"] == outage["new_leader"], (
        f"the row written while {outage['old']} was down went to {outage['written_on']}, "
        f"not the new leader {outage['new_leader']}")


def test_old_leader_rejoins_as_a_streaming_replica(lab: Lab, outage: dict[str, Any], password: str) -> None:
    ok, detail = wait_streaming(lab, outage["old"], leader(lab), password)
    assert ok, f"after its restart, the old leader {detail}"


def test_row_written_during_the_outage_reaches_the_old_leader(lab: Lab, outage: dict[str, Any],
                                                              password: str) -> None:
    assert "row" in outage, "no row was written during the outage (see the writes check above)"
    ok, seen = rows_on(lab, outage["old"], password, 1, where="WHERE id = %s", params=(outage["row"],))
    assert ok, f"{outage['old']} does not have row {outage['row']}, written while it was down (saw: {seen})"
