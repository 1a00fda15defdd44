"""The network and stack faults' pure parts: what a commit felt, the rise a delay should cause,
netem found without changing anything, the nftables rules of a loss and a delay, Patroni's
failsafe_mode reaching its DCS configuration, and each kind refusing (exit 2) what the lab cannot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pglab import catalog, stacks
from pglab.drills.kinds import dcs_loss, network, pgdata_lost
from pglab.drills.probe import Attempt
from pglab.errors import InputError
from pglab.lab import Lab
from pglab.providers import netfaults
from pglab.render import lab_variables
from tests.conftest import write_topology


def _attempt(started: float, took: float, ok: bool = True) -> Attempt:
    return Attempt(id=int(started * 1000), started=started, ended=started + took, ok=ok)


def test_commit_times_are_p50_and_p99_of_acknowledged_writes_in_the_window() -> None:
    attempts = [_attempt(t, 0.002) for t in range(10)] + [_attempt(10 + t, 0.102) for t in range(10)]
    attempts.append(_attempt(5.5, 3.0, ok=False))
    assert network.commit_times(attempts, 0, 10) == {"p50_ms": 2.0, "p99_ms": 2.0, "commits": 10}
    assert network.commit_times(attempts, 10, 30)["p50_ms"] == pytest.approx(102.0)
    assert network.commit_times(attempts, 40, 50) == {"p50_ms": None, "p99_ms": None, "commits": 0}


def test_expected_rise_counts_the_legs_the_delayed_node_sends() -> None:
    assert network.expected_rise_ms(50, is_leader=True, is_sync_standby=True) == 100
    assert network.expected_rise_ms(50, is_leader=True, is_sync_standby=False) == 50
    assert network.expected_rise_ms(50, is_leader=False, is_sync_standby=True) == 50
    assert network.expected_rise_ms(50, is_leader=False, is_sync_standby=False) == 0


def test_netem_is_found_in_the_kernel_config_or_said_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netfaults.shutil, "which", lambda name: f"/usr/sbin/{name}")
    monkeypatch.setattr(netfaults.Path, "exists", lambda self: False)
    monkeypatch.setattr(netfaults, "_kernel_config", lambda: "# CONFIG_NET_SCH_NETEM is not set\n")
    missing = netfaults.netem_missing()
    assert missing is not None and "netem (sch_netem)" in missing
    monkeypatch.setattr(netfaults, "_kernel_config", lambda: "CONFIG_NET_SCH_NETEM=m\n")
    assert netfaults.netem_missing() is None


def _scripts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    scripts: list[str] = []
    monkeypatch.setattr(netfaults.shutil, "which", lambda name: f"/usr/sbin/{name}")
    monkeypatch.setattr(netfaults, "_nft", scripts.append)
    return scripts


def test_loss_drops_both_ways_between_the_node_and_the_other_nodes_only(monkeypatch: pytest.MonkeyPatch) -> None:
    scripts = _scripts(monkeypatch)
    faults = netfaults.NetFaults("lab-1")
    faults.lose("pg1", "127.0.11.120", ["127.0.11.100", "127.0.11.121"], 'socket cgroupv2 level 3 "x"', 5)
    mark = f"{faults.mark('pg1'):#x}"
    [script] = scripts
    assert "add table inet pglab_net_lab_1" in script
    assert f'ct direction original socket cgroupv2 level 3 "x" ct mark set {mark}' in script
    assert (f"ct mark {mark} ct original ip daddr {{ 127.0.11.100, 127.0.11.121 }} "
            "numgen random mod 100 < 5 counter drop") in script
    assert f"ct mark != {mark} ct original ip daddr 127.0.11.120 numgen random mod 100 < 5 counter drop" in script
    # a partition of the same node has another mark: healing one never lifts the other
    from pglab.providers.nft import LabFirewall
    assert LabFirewall("lab-1").mark("pg1") != faults.mark("pg1")


def test_delay_marks_what_the_node_sends_for_the_netem_band(monkeypatch: pytest.MonkeyPatch) -> None:
    scripts = _scripts(monkeypatch)
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(netfaults, "netem_missing", lambda: None)
    monkeypatch.setattr(netfaults, "_tc", lambda *args: calls.append(args) or "qdisc noqueue 0: root refcnt 2")
    faults = netfaults.NetFaults("lab")
    faults.delay("pg1", "127.0.11.120", ["127.0.11.121"], "M", 50, 5)
    packet = f"meta mark set {faults.packet_mark('pg1'):#x}"
    assert f"ct direction original ct mark {faults.mark('pg1'):#x} ct original ip daddr {{ 127.0.11.121 }} {packet}" \
        in scripts[0]
    assert f"ct direction reply ct mark != {faults.mark('pg1'):#x} ct original ip daddr 127.0.11.120 {packet}" \
        in scripts[0]
    assert any("netem" in call and "50ms" in call and "5ms" in call for call in calls)
    assert any("fw" in call and f"{faults.packet_mark('pg1'):#x}" in call for call in calls)


def test_failsafe_mode_reaches_patronis_dcs_configuration_and_defaults_to_off() -> None:
    default = catalog.parse(catalog.default_yaml(), "t.yml")
    assert default.patroni.failsafe_mode is False
    text = catalog.default_yaml().replace("failsafe_mode: false", "failsafe_mode: true")
    topo = catalog.parse(text, "t.yml")
    from pglab.providers import get_provider
    assert lab_variables(topo, get_provider(topo, Path("/nonexistent")))["patroni_failsafe_mode"] is True
    template = Path(__file__).parents[2] / "roles/patroni/templates/patroni.yml.j2"
    assert "failsafe_mode: {{ patroni_failsafe_mode | bool | to_json }}" in template.read_text()


def _lab(tmp_path: Path, **kwargs: Any) -> Lab:
    tmp_path.mkdir(exist_ok=True)
    return Lab.from_file(write_topology(tmp_path, **kwargs))


def test_pg_auto_failover_rebuilds_a_replica_by_dropping_and_creating_it(tmp_path: Path) -> None:
    lab = _lab(tmp_path, stack="pg_auto_failover")
    pgdata_lost.PgdataLost().check(lab)
    node = lab.topology.with_role("postgres")[1]
    steps = stacks.spec("pg_auto_failover").rebuild_steps(lab.topology, lab.provider.node_root(node))
    assert steps is not None
    assert steps.forget[-4:-1] == ("drop", "node", "--force") and steps.forget[-1].startswith("--pgdata=")
    assert len(steps.rejoin) == 1 and steps.rejoin[0].endswith("/pglab-register")
    assert stacks.spec("patroni").rebuild_steps(lab.topology, "/x") is None  # Patroni's reinit instead


def test_pgdata_lost_refuses_the_leader(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="pick a replica"):
        pgdata_lost.PgdataLost(node="leader").check(_lab(tmp_path / "p"))


def test_dcs_loss_lasts_twice_ttl_by_default_and_knows_each_stacks_store(tmp_path: Path) -> None:
    kind = dcs_loss.DcsLoss()
    kind.check(_lab(tmp_path))
    assert kind.duration == 40 and kind.store == "the DCS (etcd)"
    kind = dcs_loss.DcsLoss()
    kind.check(_lab(tmp_path / "pgaf", stack="pg_auto_failover"))
    assert kind.duration == dcs_loss.DEFAULT_FOR and kind.store == "the monitor"


def test_network_kinds_refuse_an_unknown_node(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="pg9"):
        network.Loss(node="pg9").check(_lab(tmp_path))


def test_only_latency_reports_a_rise() -> None:
    times: dict[str, dict[str, float | None]] = {"before": {}, "during": {"p50_ms": 101.0}, "after": {}}
    latency = network.NetworkFigures({"delay_ms": 50.0}, times, 100.0, 99.0)
    assert latency.as_json()["expected_rise_ms"] == 100.0 and "rise 99.0 ms" in latency.headline()
    assert "expected_rise_ms" not in network.NetworkFigures({"percent": 5.0}, times).as_json()
