"""What every drill measures beside the write gap, from recorded attempts, looks and log lines:
commit latency around the fault, when the cluster was healthy again, the stack's own words."""

from __future__ import annotations

import re

from pglab import stacks
from pglab.drills import figures
from pglab.drills.frame import latency_windows
from pglab.drills.probe import Attempt
from pglab.drills.result import Measures
from pglab.drills.stack_words import decisions, new_lines
from pglab.drills.watch import healthy_again


def _attempt(id_: int, started: float, took: float, ok: bool = True) -> Attempt:
    return Attempt(id_, started, started + took, ok)


def test_commit_latency_is_counted_in_the_window_its_acknowledgement_fell_in() -> None:
    attempts = ([_attempt(i, i * 0.1, 0.002) for i in range(10)]  # before: 2 ms
                + [_attempt(100 + i, 1.0 + i * 0.1, 0.050) for i in range(10)]  # during: 50 ms
                + [_attempt(200, 2.0, 1.0, ok=False)]  # failed: never counted
                + [_attempt(300 + i, 3.0 + i * 0.1, 0.004) for i in range(100)])  # after: 4 ms, one slow
    attempts[-1] = _attempt(399, 12.9, 0.400)
    found = figures.commit_latency(attempts, {"before": (0.0, 1.0), "during": (1.0, 3.0), "after": (3.0, 14.0),
                                              "never": (20.0, 30.0)})
    assert found["before"] == {"p50": 2.0, "p99": 2.0, "n": 10}
    assert found["during"] == {"p50": 50.0, "p99": 50.0, "n": 10}
    assert found["after"]["p50"] == 4.0 and found["after"]["n"] == 100 and found["after"]["p99"] == 4.0
    assert found["never"] is None


def test_the_nearest_rank_percentile() -> None:
    values = [float(v) for v in range(1, 101)]
    assert figures.percentile(values, 0.5) == 50.0 and figures.percentile(values, 0.99) == 99.0
    assert figures.percentile([7.0], 0.99) == 7.0


def test_during_lasts_until_the_undoing_began_and_after_starts_once_it_is_done() -> None:
    attempts = [_attempt(1, 0.0, 0.01), _attempt(2, 30.0, 0.01)]
    windows = latency_windows(attempts, 5.0, {"injected": 8.0, "undoing": 12.0, "undone": 20.0})
    assert windows["before"] == (0.0, 5.0) and windows["during"] == (5.0, 12.0) and windows["after"][0] == 20.0
    # A kind that undoes nothing (a switchover): the fault is over when its operation returned.
    windows = latency_windows(attempts, 5.0, {"injected": 8.0})
    assert windows["during"] == (5.0, 8.0) and windows["after"][0] == 8.0


def test_healthy_again_is_the_first_healthy_look_after_the_last_unhealthy_one() -> None:
    looks = [(0.0, True), (11.0, False), (12.0, True), (13.0, False), (15.0, False), (16.5, True), (17.5, True)]
    assert healthy_again(looks, 10.0, 30.0) == 6.5
    assert healthy_again([(11.0, True), (12.0, True)], 10.0, 30.0) is None  # never unhealthy after the fault
    assert healthy_again([(9.0, False), (11.0, True)], 10.0, 30.0) is None  # unhealthy only before it
    assert healthy_again([(11.0, False)], 10.0, 25.0) == 15.0  # the drill found it healthy later
    assert healthy_again([(11.0, False)], 10.0, None) is None


def test_only_lines_written_after_the_fault_count() -> None:
    before = ["10:00:01 a", "10:00:02 b", "10:00:03 c"]
    after = ["10:00:02 b", "10:00:03 c", "10:00:04 d", "10:00:05 e"]
    assert new_lines(before, after) == ["10:00:04 d", "10:00:05 e"]
    assert new_lines([], after) == after
    assert new_lines(["09:00:00 long gone"], after) == after  # the log moved on further than was read
    assert new_lines(before, before) == []


def test_patronis_words_at_a_failover_are_its_promotion_not_its_routine() -> None:
    log = stacks.spec("patroni").decision_log
    assert log is not None and log.on_leaders
    lines = ["2026-12-06 07:00:01,100 INFO: no action. I am (pg2), a secondary, and following a leader (pg1)",
             "2026-12-06 07:00:21,500 WARNING: Request failed to pg1: GET http://127.0.101.5:8008/patroni",
             "2026-12-06 07:00:21,700 INFO: promoted self to leader by acquiring session lock",
             "2026-12-06 07:00:31,100 INFO: no action. I am (pg2), the leader with the lock"]
    assert decisions(lines, log.patterns) == [lines[2]]
    assert decisions(["2026-12-06 07:00:21,700 INFO: demoting self because DCS is not accessible and I was a "
                      "leader"], log.patterns)


def test_pg_auto_failovers_words_are_the_monitors_assignments() -> None:
    log = stacks.spec("pg_auto_failover").decision_log
    assert log is not None and log.role == "monitor" and not log.on_leaders
    line = ('07:00:21 4242 INFO  Setting goal state of node 2 "node_2" (127.0.101.6:5432) to prepare_promotion '
            'after node 1 "node_1" (127.0.101.5:5432) became unhealthy.')
    assert decisions(["07:00:20 4242 INFO  Node 1 is healthy", line], log.patterns) == [line]


def test_every_stacks_patterns_compile() -> None:
    for spec in stacks.specs():
        if spec.decision_log is not None:
            assert spec.decision_log.role in spec.roles
            for pattern in spec.decision_log.patterns:
                re.compile(pattern)


def test_a_drill_without_figures_still_writes_every_key() -> None:
    empty = Measures().as_json()
    assert empty == {"commit_latency_ms": {"before": None, "during": None, "after": None}, "lag_worst": {},
                     "healthy_again_s": None, "stack_said": None}
    assert Measures().headline() == "commit p50 - / - / - ms"


def test_the_figures_in_one_line_and_the_stacks_words_cut_to_width() -> None:
    measures = Measures({"before": {"p50": 1.5, "p99": 9.0, "n": 10}, "during": None,
                         "after": {"p50": 2.0, "p99": 11.25, "n": 12}},
                        {"pg2": {"flush_bytes": 10, "replay_bytes": 12960, "replay_lag_s": 0.01, "at_s": 2.0},
                         "pg3": {"flush_bytes": 0, "replay_bytes": 176, "replay_lag_s": 0.0, "at_s": 1.0}},
                        21.5, {"node": "pg2", "service": "patroni", "lines": ["x" * 300]})
    assert measures.line() == ("commit p50 / p99 ms: before 1.5 / 9, during -, after 2 / 11.25; "
                               "worst replay lag 12,960 bytes (pg2); healthy again: 21.5 s")
    assert len(measures.said_line(80)) == 80 and measures.said_line(80).startswith("patroni on pg2: xxx")
    assert "nothing" in Measures().said_line() and "never unhealthy" in Measures().line()


def test_a_new_connection_through_several_hosts_may_wait_out_each_silent_one() -> None:
    """A frozen first host of a multi-host URI (pg_auto_failover) takes libpq's connect timeout
    before the next host is tried: the probe's client waits that long to connect, not to write."""
    from pglab.drills.probe import CONNECT_TIMEOUT, WriteProbe

    multi = WriteProbe({"host": "10.0.0.12,10.0.0.13", "port": 5432}, timeout=1.0)
    assert multi.attempt_bound(connecting=True) == 1.0 + CONNECT_TIMEOUT
    assert multi.attempt_bound(connecting=False) == 1.0  # a statement on an open session: the client's own bound
    assert multi.timeout_ms == 1000 and multi.conninfo["connect_timeout"] == CONNECT_TIMEOUT
    single = WriteProbe({"host": "10.0.0.10", "port": 5000}, timeout=1.0)
    assert single.attempt_bound(connecting=True) == single.attempt_bound(connecting=False) == 1.0
