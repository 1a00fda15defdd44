"""Issue 17: point-in-time restore on the session lab (Patroni, backups on), for real: rows written
one by one, a target between two of them, `pglab restore --to` keeps exactly the rows before it and
leaves a healthy cluster on a new timeline; a target outside the window is refused and changes
nothing; `pglab drill restore` loses no write and keeps none after its target."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg

from pglab import sql
from pglab.lab import Lab
from tests.integration.rows import write_rows_and_pick_a_target


def _pglab(lab: Lab, *args: str, timeout: float = 420) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pglab.cli", *args, "-f", str(lab.topology_file)],
                          capture_output=True, text=True, timeout=timeout)


def _timeline(lab: Lab) -> tuple[str | None, int | None]:
    health = lab.wait_healthy(120)
    leader = next(m for m in health.members if m.name == health.leader)
    return health.leader, leader.timeline


def test_a_target_outside_the_window_is_refused_and_changes_nothing(lab: Lab) -> None:
    before = _timeline(lab)
    for moment in ("2000-01-01 00:00:00+00:00",
                   (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)).isoformat()):
        refused = _pglab(lab, "restore", "--to", moment, "--yes")
        assert refused.returncode == 2, refused.stderr
        assert "restorable window is" in refused.stderr and "nothing was changed" in refused.stderr
    assert _timeline(lab) == before


def test_restore_to_a_moment_between_two_writes_keeps_exactly_the_writes_before(lab: Lab) -> None:
    _, old_timeline = _timeline(lab)
    target = write_rows_and_pick_a_target(lab, rows=6, first_discarded=4)  # after row 3's commit
    done = _pglab(lab, "restore", "--to", target.isoformat(), "--yes", "--json")
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(done.stdout)
    assert [p["name"] for p in result["phases"]] == [
        "archive", "stop", "forget", "restore", "recover", "leader", "replicas", "healthy"]
    assert result["restore_s"] > 0 and result["new_timeline"] > old_timeline
    with sql.session(**lab.writes_conninfo()) as conn:
        assert [r[0] for r in conn.execute("SELECT id FROM restore_rows ORDER BY id")] == [1, 2, 3]
        conn.execute("INSERT INTO restore_rows (id) VALUES (4)")  # writable on the new timeline
    health = lab.wait_healthy(120)
    assert health.healthy and len(health.streaming_replicas) == 2
    for replica in health.streaming_replicas:  # the replicas were made again and follow the new history
        with psycopg.connect(host=lab.address(replica.name), port=lab.topology.ports.postgres, dbname="postgres",
                             **lab.connect_kwargs()) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)


def test_drill_restore_loses_nothing_and_keeps_nothing_after_its_target(lab: Lab, tmp_path: Path) -> None:
    lab.wait_healthy(120)
    done = _pglab(lab, "drill", "restore", "--out", str(tmp_path), "--json")
    assert done.returncode == 0, done.stderr[-4000:]
    [drilled] = json.loads(done.stdout)["drills"]
    assert drilled["ok"] and drilled["lost"] == 0 and drilled["extra"] == 0
    assert drilled["restore_s"] > 0 and drilled["discarded_after_target"] > 0
    assert drilled["last_before"] < drilled["first_after"]
    [png] = tmp_path.glob("restore-*.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
