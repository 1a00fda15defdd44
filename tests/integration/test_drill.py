"""`pglab drill` on the session lab, one short drill per workload: the table, one JSON line, one
PNG, every check run and 0 anomalies, exit 0. The heavy runs (16 clients, crashes under load,
synchronous replication) are bench/ scripts."""

from __future__ import annotations

import json
from pathlib import Path

from pglab.lab import Lab
from tests.integration.drilling import run_drill


def test_drill_switchover_writes_a_json_line_and_a_png(lab: Lab, tmp_path: Path) -> None:
    """Three insert clients and a read-your-writes reader on the replicas' endpoint."""
    lab.wait_healthy(60)
    leader = lab.stack().leader()
    summary = run_drill(lab, tmp_path, "switchover", "--count", "1", "--clients", "3", "--readers", "1")
    [row] = summary["summary"]
    assert row["kind"] == "switchover" and row["drills"] == 1 and row["recovered"] == 1
    assert row["lost"] == 0 and row["setting"].startswith("insert, 3 clients, 1 reader")
    assert row["leaders"][0].startswith(f"{leader} -> ") and not row["leaders"][0].endswith(leader)
    [line] = (tmp_path / "drills.jsonl").read_text().splitlines()
    drilled = json.loads(line)
    assert drilled["ok"] and drilled["acknowledged"] > 0 and drilled["unavailable_s"] >= 0
    assert drilled["markers"][0]["at"] == 0
    assert drilled["checks"] == {"lost": 0, "split_brain": 0}
    assert sorted(c["client"] for c in drilled["per_client"]) == [0, 1, 2]
    assert all(c["acknowledged"] > 0 for c in drilled["per_client"])
    # every write was acknowledged by one of two primaries: the old leader's timeline, then the new one's
    assert len(drilled["primaries"]) == 2
    assert drilled["staleness"]["before"]["followed"] > 0 and drilled["staleness"]["after"]["followed"] > 0
    [png] = tmp_path.glob("switchover-*.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_drill_bank_keeps_its_total_through_a_failover(lab: Lab, tmp_path: Path) -> None:
    lab.wait_healthy(60)
    summary = run_drill(lab, tmp_path, "failover", "--workload", "bank", "--clients", "4", "--readers", "1",
                     "--load", "50")
    [drilled] = summary["drills"]
    assert drilled["ok"] and drilled["checks"] == {"lost": 0, "split_brain": 0, "bank_total": 0, "bank_ledger": 0}
    # each replica's lag as the old leader saw it just before the fault (Patroni names them after the members)
    assert drilled["load"]["acknowledged"] > 0 and len(drilled["lag_at_fault"]) == 2
    assert set(drilled["lag_at_fault"]) <= {n.name for n in lab.topology.with_role("postgres")}
    assert all(lag["replay_bytes"] is not None for lag in drilled["lag_at_fault"].values())
    # the readers summed through both endpoints, and every sum was the total
    assert drilled["reads"]["write"] > 0 and drilled["reads"]["read"] > 0
    assert drilled["acknowledged"] > 0


def test_drill_append_keeps_every_list_in_order_through_a_switchover(lab: Lab, tmp_path: Path) -> None:
    lab.wait_healthy(60)
    summary = run_drill(lab, tmp_path, "switchover", "--workload", "append", "--clients", "3")
    [drilled] = summary["drills"]
    assert drilled["ok"] and drilled["checks"] == {"lost": 0, "split_brain": 0, "append_duplicate": 0,
                                                   "append_order": 0}
    assert drilled["workload"] == "append" and drilled["cpu"]["seconds"] > 0
