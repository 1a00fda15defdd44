"""A failed `up` names the task and the node, and shows that node's recent log lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from pglab import paths
from pglab.ansible import PlaybookResult, TaskFailure
from pglab.lab import Lab
from tests.conftest import write_topology


@pytest.fixture(autouse=True)
def _private_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nodes' directories under tmp_path, never the machine's /var/lib/pglab."""
    monkeypatch.setattr(paths, "state_base", lambda: tmp_path / "state")


def test_failure_names_task_node_and_shows_logs(tmp_path: Path) -> None:
    lab = Lab.from_file(write_topology(tmp_path, name="ftest"))
    log_dir = lab.provider.run_dir / "pg2" / "var" / "log" / "pglab"  # type: ignore[attr-defined]
    log_dir.mkdir(parents=True)
    try:
        (log_dir / "patroni.log").write_text("line one\nFATAL: could not bind 127.0.21.121:5432\n")
        result = PlaybookResult(rc=2, status="failed", failures=[
            TaskFailure("pg2", "Write the Patroni configuration", "validation failed: bin_dir missing"),
        ], log=tmp_path / "stdout")
        text = lab._failure_text("`pglab up`", result)
    finally:
        lab.provider.destroy()
    assert "Task 'Write the Patroni configuration' failed on node pg2" in text
    assert "bin_dir missing" in text
    assert "could not bind 127.0.21.121:5432" in text
    assert str(tmp_path / "stdout") in text


def test_failure_outside_tasks_still_explains(tmp_path: Path) -> None:
    lab = Lab.from_file(write_topology(tmp_path, name="ftest2"))
    text = lab._failure_text("`pglab up`", PlaybookResult(rc=4, status="failed"))
    assert "status failed (rc 4)" in text
