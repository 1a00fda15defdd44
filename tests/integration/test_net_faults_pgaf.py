"""The network and stack fault kinds on a pg_auto_failover lab (monitor, primary, secondary) of its
own, on the second test range: loss, a killed postmaster, the monitor lost and the secondary's data
directory lost (pglab rebuilds it). Nothing is left behind."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pglab.lab import Lab
from tests.conftest import SECOND_LOOPBACK, write_topology
from tests.integration.drilling import run_drill


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

def _ruleset() -> str:
    return subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout


def test_loss_on_the_primary(pgaf: Lab, tmp_path: Path) -> None:
    pgaf.wait_healthy(120)
    drilled = run_drill(pgaf, tmp_path, "loss", "--percent", "20", "--for", "6")["drills"][0]
    assert drilled["lost"] == 0 and drilled["commit_ms"]["before"]["commits"] > 0
    assert drilled["fault"]["dropped_packets"] > 0
    assert "pglab_net_" not in _ruleset()


def test_postgres_kill_on_the_primary(pgaf: Lab, tmp_path: Path) -> None:
    pgaf.wait_healthy(120)
    drilled = run_drill(pgaf, tmp_path, "postgres-kill")["drills"][0]
    assert drilled["outcome"] in ("restarted in place", "failed over") and drilled["lost"] == 0


def test_the_monitor_lost_leaves_the_primary_writing(pgaf: Lab, tmp_path: Path) -> None:
    pgaf.wait_healthy(120)
    drilled = run_drill(pgaf, tmp_path, "dcs-loss", "--for", "15")["drills"][0]
    assert drilled["store"] == "the monitor" and drilled["leader_kept_writes"]
    assert all(state == "RUNNING" for state in pgaf.provider.services(pgaf.node("monitor")).values())


def test_pgdata_lost_on_the_secondary_is_rebuilt_by_pglab(pgaf: Lab, tmp_path: Path) -> None:
    # The keeper does not make a lost data directory anew by itself: pglab rebuild drops the node
    # from the monitor and creates it again after the grace.
    pgaf.wait_healthy(120)
    summary = run_drill(pgaf, tmp_path, "pgdata-lost", "--grace", "15")
    [drilled] = summary["drills"]
    assert drilled["rebuilt_after_s"] is not None and drilled["lost"] == 0
    assert drilled["node"] != drilled["old_leader"]
