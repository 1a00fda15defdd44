"""The network and stack fault kinds on a pg_auto_failover lab (monitor, primary, secondary) of its
own, on the second test range: loss, a killed postmaster and the monitor lost; pgdata-lost is
refused with exit 2 saying why. Nothing is left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pglab.lab import Lab
from tests.conftest import SECOND_LOOPBACK, write_topology


@pytest.fixture(scope="module")
def pgaf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    path = write_topology(tmp_path_factory.mktemp("pgaf-faults"), name="itest-pgaf-faults", loopback=SECOND_LOOPBACK,
                          stack="pg_auto_failover")
    lab = Lab.from_file(path)
    if lab.missing_prerequisites() and os.geteuid() != 0:
        pytest.skip("the pg_auto_failover test needs: " + "; ".join(lab.missing_prerequisites()))
    try:
        lab.up(timeout=180)
        yield lab
    finally:
        lab.destroy()

# The kinds' own figures, printed with -s.
FIGURES = ("fault", "commit_ms", "expected_rise_ms", "measured_rise_ms", "store", "leader_kept_writes",
           "demoted_after_s", "outcome", "back_after_s", "noticed_after_s", "rebuilt_after_s", "rebuilt_by",
           "unavailable_s")


def _drill(lab: Lab, out: Path, *args: str, expect: int = 0) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "pglab.cli", "drill", *args, "--out", str(out), "--json", "-f", str(lab.topology_file)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == expect, done.stderr[-3000:] + done.stdout[-3000:]
    print(done.stderr[-1500:])  # the drill's own words and figures, for -s
    if expect == 0:
        for drilled in json.loads(done.stdout)["drills"]:
            print({key: value for key, value in drilled.items() if key in FIGURES})
    return json.loads(done.stdout)["drills"][0] if expect != 2 else {"stderr": done.stderr}


def _ruleset() -> str:
    return subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout


def test_loss_on_the_primary(pgaf: Lab, tmp_path: Path) -> None:
    pgaf.wait_healthy(120)
    drilled = _drill(pgaf, tmp_path, "loss", "--percent", "20", "--for", "6")
    assert drilled["lost"] == 0 and drilled["commit_ms"]["before"]["commits"] > 0
    assert drilled["fault"]["dropped_packets"] > 0
    assert "pglab_net_" not in _ruleset()


def test_postgres_kill_on_the_primary(pgaf: Lab, tmp_path: Path) -> None:
    pgaf.wait_healthy(120)
    drilled = _drill(pgaf, tmp_path, "postgres-kill")
    assert drilled["outcome"] in ("restarted in place", "failed over") and drilled["lost"] == 0


def test_the_monitor_lost_leaves_the_primary_writing(pgaf: Lab, tmp_path: Path) -> None:
    pgaf.wait_healthy(120)
    drilled = _drill(pgaf, tmp_path, "dcs-loss", "--for", "15")
    assert drilled["store"] == "the monitor" and drilled["leader_kept_writes"]
    assert all(state == "RUNNING" for state in pgaf.provider.services(pgaf.node("monitor")).values())


def test_pgdata_lost_is_refused_saying_why(pgaf: Lab, tmp_path: Path) -> None:
    done = _drill(pgaf, tmp_path, "pgdata-lost", expect=2)
    assert "pg_auto_failover" in done["stderr"] and "rebuild" in done["stderr"]
