"""The drills' JSON lines keep their shape: lines recorded from real drills on a loopback lab
(switchover with a reader, a bank failover under load, a partition with the client on the cut-off
node's machine, a certificate rotation, a restore) are rebuilt as drill results, and each result
must write back exactly the recorded line: the same keys, in the same order, with the same values
and types. Scripts and `pglab report` read these lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pglab.drills.crowd import CrowdSpec
from pglab.drills.invariants import Anomaly
from pglab.drills.kinds.restore import RestoreFigures
from pglab.drills.probe import Tally
from pglab.drills.result import BesideFigures, ClientFigures, DrillResult, Marker, Measures, write_json_line

RECORDED = Path(__file__).parent.parent / "fixtures" / "drills" / "drills.jsonl"
LINES = [json.loads(text) for text in RECORDED.read_text().splitlines()]


def _rebuilt(line: dict[str, Any]) -> DrillResult:
    """The drill result that writes ``line``, put together from its parts the way the drill does."""
    tally = Tally(line["attempts"], line["acknowledged"], line["failed"], line["unavailable_s"], None,
                  line["lost_ids"], line["failed_committed_ids"], line["errors"])
    spec = CrowdSpec(line["clients"], line["readers"], line["load_tps"])
    result = DrillResult(
        line["kind"], line["run"], line["started"], line["node"], line["old_leader"], line["new_leader"],
        line["recovered"], tally, [Marker(m["at"], m["what"]) for m in line["markers"]], line["operations"],
        line["problem"], workload=line["workload"], spec=spec,
        measures=Measures(line["commit_latency_ms"], line["lag_worst"], line["healthy_again_s"], line["stack_said"]),
        fault_at_unix=line["fault_at_unix"])
    side = line["cut_off_side"]
    if side is not None:
        result.beside = BesideFigures(side["acknowledged_after_fault"], side["last_ok_s"], side["lost"],
                                      side["two_primaries_s"])
    if "checks" in line:
        result.clients = ClientFigures(
            line["workload"], spec, line["checks"],
            [Anomaly(a["check"], a["what"], a["evidence"]) for a in line["anomalies"]], line["primaries"],
            line["discarded"], line["per_client"], line["throughput"], line["conflicts"], line["replication"],
            line["lag_at_fault"], line["staleness"], line["reads"], line["load"], line["cpu"])
    if "target" in line:
        result.part = RestoreFigures(
            line["target"], line["last_before"], line["first_after"], line["lost_ids"], line["extra_ids"],
            line["restore_s"], line["phases"], line["discarded_after_target"])
    return result


def _types(value: Any) -> Any:
    """The shape of a JSON value: its type, and for an object its keys' shapes."""
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value).__name__


def test_the_recording_covers_an_ordinary_drill_a_partition_certs_and_a_restore() -> None:
    kinds = [line["kind"] for line in LINES]
    assert kinds == ["switchover", "failover", "partition", "certs", "restore"]
    assert LINES[2]["cut_off_side"] is not None and "target" in LINES[4] and "checks" not in LINES[4]


@pytest.mark.parametrize("line", LINES, ids=[line["kind"] for line in LINES])
def test_a_drill_result_writes_the_recorded_json_line(line: dict[str, Any], tmp_path: Path) -> None:
    written = json.loads(write_json_line(_rebuilt(line), tmp_path).read_text())
    assert list(written) == list(line)  # the same keys, in the same order
    assert _types(written) == _types(line)  # the same types, nested objects too
    assert written == line
