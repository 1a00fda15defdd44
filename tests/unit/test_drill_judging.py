"""How a drill is judged from its probe's attempts and the rows the new primary has: a lost
acknowledged write fails it, a failed write that committed is counted but does not, and a
cluster that did not recover fails it whatever the writes say."""

from __future__ import annotations

from pglab.drills.probe import Attempt, tally
from pglab.drills.result import DrillResult
from pglab.drills.summary import summary

FAULT = 100.0  # the moment the fault began (monotonic seconds)


def _attempts() -> list[Attempt]:
    """Acked 1-2 before the fault, 3 acked just after it, 4-5 fail (4 without an answer), 6-7 acked."""
    return [Attempt(1, 98.0, 98.1, True), Attempt(2, 99.0, 99.1, True), Attempt(3, 100.0, 100.2, True),
            Attempt(4, 100.3, 101.3, False, "no answer within 1 s"), Attempt(5, 101.4, 101.5, False, "refused"),
            Attempt(6, 104.0, 104.1, True), Attempt(7, 104.2, 104.3, True)]


def _judged(present: set[int], recovered: bool = True, problem: str | None = None) -> DrillResult:
    return DrillResult("crash", 1, "2026-01-01T00:00:00+00:00", None, "pg1", "pg2", recovered,
                       tally(_attempts(), present, FAULT), problem=problem)


def test_every_acknowledged_write_kept_and_recovered_is_ok() -> None:
    result = _judged({1, 2, 3, 6, 7})
    assert result.ok
    assert (result.tally.lost, result.tally.failed_committed) == ([], [])
    assert round(result.tally.unavailable, 2) == 3.9  # from the last ack (100.2) to the next (104.1)
    assert result.as_json()["ok"] is True and result.as_json()["lost"] == 0


def test_an_acknowledged_write_missing_from_the_new_primary_is_lost_and_fails_the_drill() -> None:
    result = _judged({1, 2, 6, 7})  # 3 was acknowledged by the old primary, never replicated
    assert result.tally.lost == [3]
    assert not result.ok
    [row] = summary([result])
    assert row["lost"] == 1 and row["ok"] is False


def test_a_failed_write_that_committed_is_counted_but_does_not_fail_the_drill() -> None:
    result = _judged({1, 2, 3, 4, 6, 7})  # 4's commit landed, its answer did not
    assert result.tally.failed_committed == [4] and result.tally.lost == []
    assert result.ok
    assert summary([result])[0]["failed_committed"] == 1


def test_a_cluster_that_did_not_recover_fails_the_drill_even_without_a_lost_write() -> None:
    assert not _judged({1, 2, 3, 6, 7}, recovered=False).ok
    assert not _judged({1, 2, 3, 6, 7}, problem="the crash did not complete").ok


def test_the_summary_counts_recoveries_and_fails_the_kind_when_one_drill_fails() -> None:
    good, lossy, stuck = _judged({1, 2, 3, 6, 7}), _judged({1, 2, 6, 7}), _judged({1, 2, 3, 6, 7}, recovered=False)
    [row] = summary([good, lossy, stuck])
    assert (row["drills"], row["recovered"], row["lost"], row["ok"]) == (3, 2, 1, False)
    [row] = summary([good, good])
    assert (row["drills"], row["recovered"], row["lost"], row["ok"]) == (2, 2, 0, True)
