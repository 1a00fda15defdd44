"""`pglab drill switchover` on the session lab: the table, one JSON line, one PNG, exit 0."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pglab.lab import Lab


def test_drill_switchover_writes_a_json_line_and_a_png(lab: Lab, tmp_path: Path) -> None:
    lab.wait_healthy(60)
    leader = lab.stack().leader()
    done = subprocess.run(
        [sys.executable, "-m", "pglab.cli", "drill", "switchover", "--count", "1", "--out", str(tmp_path),
         "--json", "-f", str(lab.topology_file)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    [row] = summary["summary"]
    assert row["kind"] == "switchover" and row["drills"] == 1 and row["recovered"] == 1
    assert row["lost"] == 0
    assert row["leaders"][0].startswith(f"{leader} -> ") and not row["leaders"][0].endswith(leader)
    [line] = (tmp_path / "drills.jsonl").read_text().splitlines()
    drilled = json.loads(line)
    assert drilled["ok"] and drilled["acknowledged"] > 0 and drilled["unavailable_s"] >= 0
    assert drilled["markers"][0]["at"] == 0
    [png] = tmp_path.glob("switchover-*.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
