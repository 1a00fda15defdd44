"""The drill's arithmetic and outputs, on made-up probe attempts: no lab needed."""

from __future__ import annotations

import json
from pathlib import Path

from pglab.drills import timeline
from pglab.drills.probe import Attempt, tally
from pglab.drills.result import DrillResult, Marker, png_name, write_json_line
from pglab.drills.summary import setting, summary


def _attempts() -> list[Attempt]:
    # acked 1-3 before the fault at t=10, 4-6 fail, 7-9 acked after a 3 s outage
    return [
        Attempt(1, 8.0, 8.01, True), Attempt(2, 9.0, 9.01, True), Attempt(3, 10.0, 10.5, True),
        Attempt(4, 10.6, 11.6, False, "no answer within 1 s"), Attempt(5, 11.6, 12.0, False, "refused"),
        Attempt(6, 12.0, 12.5, False, "refused"),
        Attempt(7, 13.4, 13.5, True), Attempt(8, 13.6, 13.7, True), Attempt(9, 14.0, 14.1, True),
    ]


def test_tally_finds_the_outage_the_lost_and_the_failed_but_committed() -> None:
    present = {1, 2, 4, 7, 8, 9}  # 3 acknowledged but missing; 4 failed but committed
    t = tally(_attempts(), present, since=10.0)
    assert (t.attempts, t.acknowledged, t.failed) == (9, 6, 3)
    assert round(t.unavailable, 2) == 3.0 and t.unavailable_from == 10.5
    assert t.lost == [3]
    assert t.failed_committed == [4]
    assert t.errors == {"refused": 2, "no answer within 1 s": 1}


def _result(kind: str, unavailable_lost: tuple[float, int]) -> DrillResult:
    attempts = _attempts()
    present = {a.id for a in attempts if a.ok} - set(range(100, 100 + unavailable_lost[1]))
    result = DrillResult(kind, 1, "2026-01-01T00:00:00+00:00", "pg1", "pg1", "pg2", True,
                         tally(attempts, present, 10.0),
                         [Marker(0, f"{kind} pg1"), Marker(3.0, "writes resumed")],
                         attempts=[(a.started - 10, a.ended - 10, a.ok) for a in attempts])
    result.tally.unavailable = unavailable_lost[0]
    return result


def test_summary_gives_min_median_max_per_kind_and_fails_on_a_lost_write() -> None:
    results = [_result("crash", (20.0, 0)), _result("crash", (22.0, 0)), _result("crash", (21.0, 0))]
    lossy = _result("hang", (17.0, 0))
    lossy.tally.lost = [42]
    rows = summary([*results, lossy])
    assert rows[0]["kind"] == "crash" and rows[0]["unavailable_s"] == {"min": 20.0, "median": 21.0, "max": 22.0}
    assert rows[0]["ok"] and rows[0]["leaders"] == ["pg1 -> pg2"] * 3
    assert rows[1]["lost"] == 1 and not rows[1]["ok"]


def test_json_line_and_png_timeline(tmp_path: Path) -> None:
    result = _result("switchover", (3.0, 0))
    path = write_json_line(result, tmp_path)
    line = json.loads(path.read_text().splitlines()[0])
    assert line["kind"] == "switchover" and line["unavailable_s"] == 3.0 and line["ok"] is True
    # the setting is there even when the drill ended before its clients' figures were gathered
    assert (line["workload"], line["clients"], line["readers"], line["load_tps"]) == ("insert", 1, 0, 0.0)
    assert setting(line) == "insert, 1 client"
    png = timeline.write_png(result, tmp_path / png_name(result))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
