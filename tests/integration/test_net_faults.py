"""The network and stack fault kinds on the session lab (Patroni), each short: loss, a killed
postmaster, the DCS lost for longer than ttl, a replica's data directory removed; latency where the
kernel has no netem is an exit 2 naming it. Each leaves nothing behind: no nftables table, no
qdisc on lo."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from pglab import waiting
from pglab.lab import Lab
from pglab.providers import netfaults
from pglab.stacks.patroni import PatroniStack
from tests.integration.drilling import run_drill


def _traces() -> tuple[str, str]:
    ruleset = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    qdisc = subprocess.run(["tc", "qdisc", "show", "dev", "lo"], capture_output=True, text=True).stdout
    return ruleset, qdisc


@pytest.fixture
def untouched(lab: Lab) -> Any:
    lab.wait_healthy(90)
    ruleset, qdisc = _traces()
    yield
    after_ruleset, after_qdisc = _traces()
    assert "pglab_net_" not in after_ruleset and after_qdisc == qdisc
    assert ruleset.count("table ") == after_ruleset.count("table ")


def test_latency_without_netem_is_an_exit_2_naming_it(lab: Lab, tmp_path: Path, untouched: None) -> None:
    if netfaults.netem_missing() is None:
        pytest.skip("this kernel has netem")
    done = run_drill(lab, tmp_path, "latency", "--delay", "50", "--for", "5", expect=2)
    assert "netem" in done["stderr"]


def test_loss_on_the_leader_is_measured_and_healed(lab: Lab, tmp_path: Path, untouched: None) -> None:
    summary = run_drill(lab, tmp_path, "loss", "--percent", "20", "--for", "6", "--clients", "2")
    [drilled] = summary["drills"]
    assert drilled["fault"]["percent"] == 20.0 and drilled["fault"]["dropped_packets"] > 0
    assert drilled["lost"] == 0 and drilled["commit_ms"]["before"]["commits"] > 0
    assert any(m["what"] == "loss lifted" for m in drilled["markers"])


def test_postgres_kill_restarts_in_place_or_fails_over(lab: Lab, tmp_path: Path, untouched: None) -> None:
    summary = run_drill(lab, tmp_path, "postgres-kill")
    [drilled] = summary["drills"]
    assert drilled["outcome"] in ("restarted in place", "failed over") and drilled["back_after_s"] > 0
    assert (drilled["outcome"] == "failed over") == (drilled["new_leader"] != drilled["old_leader"])


def test_pgdata_lost_on_a_replica_is_rebuilt(lab: Lab, tmp_path: Path, untouched: None) -> None:
    summary = run_drill(lab, tmp_path, "pgdata-lost", "--grace", "40")
    [drilled] = summary["drills"]
    assert drilled["rebuilt_after_s"] is not None and drilled["noticed_after_s"] <= drilled["rebuilt_after_s"]
    assert drilled["node"] != drilled["old_leader"] and drilled["lost"] == 0


def test_dcs_lost_longer_than_ttl_demotes_the_leader(lab: Lab, tmp_path: Path, untouched: None) -> None:
    summary = run_drill(lab, tmp_path, "dcs-loss", "--for", "30")
    [drilled] = summary["drills"]
    assert drilled["store"] == "the DCS (etcd)" and drilled["lost"] == 0
    # without failsafe_mode, Patroni demotes a leader that cannot renew its lock within ttl (20 s)
    assert not drilled["leader_kept_writes"] and drilled["demoted_after_s"] < 30
    assert all(state == "RUNNING" for state in lab.provider.services(lab.node("dcs")).values())


def test_dcs_lost_with_failsafe_mode_keeps_the_leader_writing(lab: Lab, tmp_path: Path, untouched: None) -> None:
    stack = lab.stack()
    assert isinstance(stack, PatroniStack)
    stack.set_dynamic({"failsafe_mode": True})
    try:
        # The leader publishes the members it must reach (the /failsafe key): the drill starts then.
        leader, members = stack.leader(), {n.name for n in lab.topology.with_role("postgres")}
        assert leader is not None
        # (HTTP 502 until the key is there: an OSError, "not yet" to poll)
        done, detail, _ = waiting.poll(lambda: (set(seen := stack.get(leader, "/failsafe") or {}) == members,
                                                str(seen)), 30, 0.5)
        assert done, f"the leader never published the failsafe members: {detail}"
        summary = run_drill(lab, tmp_path, "dcs-loss", "--for", "30")
    finally:
        lab.wait_healthy(90)
        stack.set_dynamic({"failsafe_mode": False})
    [drilled] = summary["drills"]
    assert drilled["leader_kept_writes"] and drilled["demoted_after_s"] is None
    assert drilled["unavailable_s"] < 2 and drilled["new_leader"] == drilled["old_leader"]
