"""The command line: bad input exits 2 and creates nothing; init writes a valid default lab."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pglab import catalog
from pglab.cli import main

COMPACT = """\
name: compact
network:
  loopback: 127.0.22.0/24
nodes:
  - name: solo
    address: 192.168.11.120
    roles: [dcs, postgres, proxy]
"""


@pytest.mark.parametrize("command", [["up"], ["render"], ["status"], ["destroy"], ["switchover"], ["verify"],
                                     ["drill", "crash"]])
def test_bad_topology_exits_2_and_creates_nothing(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "pglab.yml"
    path.write_text(COMPACT)
    result = CliRunner().invoke(main, [*command, "-f", str(path)])
    assert result.exit_code == 2, result.output
    assert str(path) in result.output and "nodes[0] (solo).roles[2]" in result.output
    assert list(tmp_path.iterdir()) == [path]


def test_missing_topology_file_says_run_init(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["up", "-f", str(tmp_path / "nope.yml")])
    assert result.exit_code == 2
    assert "pglab init" in result.output
    assert list(tmp_path.iterdir()) == []


def test_init_writes_the_classic_lab_and_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "pglab.yml"
    runner = CliRunner()
    assert runner.invoke(main, ["init", "-f", str(path)]).exit_code == 0
    topo = catalog.load(path)
    assert [n.name for n in topo.nodes] == ["dcs", "haproxy", "pg1", "pg2", "pg3"]
    again = runner.invoke(main, ["init", "-f", str(path)])
    assert again.exit_code == 2 and "--force" in again.output
    assert runner.invoke(main, ["init", "-f", str(path), "--force", "--name", "other"]).exit_code == 0
    assert catalog.load(path).name == "other"


def test_init_rejects_consul_on_the_local_provider(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["init", "-f", str(tmp_path / "p.yml"), "--dcs", "consul"])
    assert result.exit_code == 2 and "dcs: etcd" in result.output
    assert list(tmp_path.iterdir()) == []


def test_init_writes_a_pg_auto_failover_lab(tmp_path: Path) -> None:
    path = tmp_path / "pglab.yml"
    result = CliRunner().invoke(main, ["init", "-f", str(path), "--stack", "pg_auto_failover"])
    assert result.exit_code == 0, result.output
    topo = catalog.load(path)
    assert topo.stack == "pg_auto_failover"
    assert [n.name for n in topo.with_role("monitor")] == ["monitor"]
    assert [n.name for n in topo.with_role("postgres")] == ["pg1", "pg2"]
    assert not topo.with_role("haproxy") and not topo.with_role("dcs")


def test_help_teaches_the_commands() -> None:
    out = CliRunner().invoke(main, ["--help"]).output
    for command in ("init", "up", "status", "destroy", "switchover", "failover", "restart", "config"):
        assert command in out


def test_a_directory_is_not_a_topology(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["up", "-f", str(tmp_path)])
    assert result.exit_code == 2
    assert "cannot be read as a topology" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(("args", "hint"), [
    (["drill", "meteor"], "'meteor' is not one of"),
    (["drill", "switchover", "--node", "pg2"], "--node applies to crash, hang, partition"),
    (["drill", "crash", "--node", "pg9"], "no node named 'pg9'"),
])
def test_drill_refuses_bad_input_with_exit_2_before_touching_the_lab(tmp_path: Path, args: list[str],
                                                                      hint: str) -> None:
    path = tmp_path / "pglab.yml"
    path.write_text(catalog.default_yaml(loopback="127.0.22.0/24"))
    result = CliRunner().invoke(main, [*args, "-f", str(path)])
    assert result.exit_code == 2, result.output
    assert hint in result.output
    assert list(tmp_path.iterdir()) == [path]
