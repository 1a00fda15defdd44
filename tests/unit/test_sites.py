"""A two-site lab's topology: the sites, each node's site, the rules per site, `pglab init --sites 2`.

No processes: YAML texts parsed in memory, and the CLI through click's runner.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from pglab import catalog
from pglab.cli import main
from pglab.topology import TopologyError

SOURCE = "labs/two.yml"


def _two_sites(change: Callable[[dict[str, Any]], Any] | None = None, **kwargs: Any) -> str:
    """`pglab init --sites 2`'s lab, changed in place by ``change``."""
    text = catalog.default_yaml(sites=2, **kwargs)
    if change is None:
        return text
    data = yaml.safe_load(text)
    change(data)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


def _refused(text: str) -> str:
    with pytest.raises(TopologyError) as caught:
        catalog.parse(text, SOURCE)
    message = str(caught.value)
    assert message.startswith(f"{SOURCE}, line ") and "\n" not in message
    return message


def _drop_role(site: str, role: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data["nodes"] = [n for n in data["nodes"] if not (n["site"] == site and role in n["roles"])]
    return change


# The default two-site lab ------------------------------------------------------------------------

def test_init_two_sites_writes_each_site_its_own_nodes() -> None:
    topo = catalog.parse(_two_sites(), SOURCE)
    assert topo.sites == ["east", "west"]
    east, west = topo.site_view("east"), topo.site_view("west")
    assert [n.name for n in east.nodes] == ["east-dcs", "east-haproxy", "east-pg1", "east-pg2", "east-pg3"]
    assert [n.name for n in west.nodes] == ["west-dcs", "west-haproxy", "west-pg1", "west-pg2", "west-pg3"]
    # Each site a cluster of its own name, its own DCS, router and repository.
    assert (east.postgres.scope, west.postgres.scope) == ("pglab-east", "pglab-west")
    for view in (east, west):
        assert len(view.with_role("dcs")) == len(view.with_role("haproxy")) == len(view.with_role("backup")) == 1
        assert view.sites == [] and len(view.with_role("postgres")) == 3
    # One address range: the second site's nodes further on in it.
    assert str(topo.node("west-pg1").address) == "192.168.11.160"
    assert str(topo.loopback_address(topo.node("west-pg1"))) == "127.0.11.160"


def test_one_site_lab_is_written_as_before() -> None:
    one = catalog.default_yaml()
    assert one == catalog.default_yaml(sites=1)
    assert "sites" not in one and "site:" not in one
    topo = catalog.parse(one, SOURCE)
    assert topo.sites == [] and all(n.site is None for n in topo.nodes)


def test_site_view_of_the_loopback_keeps_the_lab_range() -> None:
    topo = catalog.parse(_two_sites(loopback="127.0.60.0/24"), SOURCE)
    west = topo.site_view("west")
    assert [str(west.loopback_address(n)) for n in west.with_role("postgres")] == [
        "127.0.60.160", "127.0.60.161", "127.0.60.162"]


# Refusals: one paragraph naming the file, the line, the field and the fix -------------------------

def test_pg_auto_failover_has_no_standby_cluster() -> None:
    message = _refused(_two_sites(stack="pg_auto_failover"))
    assert "field sites:" in message and "pg_auto_failover has no standby cluster" in message
    assert "set stack: patroni" in message


def test_a_node_outside_the_sites_is_refused() -> None:
    message = _refused(_two_sites(lambda d: d["nodes"][7].update(site="north")))
    assert "field nodes[7] (west-pg1).site" in message and "'north'" in message and "site: east" in message
    message = _refused(_two_sites(lambda d: d["nodes"][7].pop("site")))
    assert "field nodes[7] (west-pg1)" in message and "has no site:" in message


def test_site_on_a_node_of_a_one_site_lab_is_refused() -> None:
    text = catalog.default_yaml().replace("    roles: [postgres]\n", "    roles: [postgres]\n    site: east\n", 1)
    message = _refused(text)
    assert "nodes[2] (pg1).site" in message and "lists no sites" in message


@pytest.mark.parametrize("sites", [["east"], ["east", "east"]])
def test_sites_lists_two_different_names(sites: list[str]) -> None:
    message = _refused(_two_sites(lambda d: d.update(sites=sites)))
    assert "field sites:" in message and "two different site names" in message


def test_more_than_two_sites_are_refused() -> None:
    message = _refused(_two_sites(lambda d: d.update(sites=["east", "west", "north"])))
    assert "field sites:" in message and "at most 2" in message


@pytest.mark.parametrize(("role", "says"), [("dcs", "its own DCS"), ("haproxy", "write endpoint")])
def test_each_site_needs_its_dcs_and_its_router(role: str, says: str) -> None:
    message = _refused(_two_sites(_drop_role("west", role)))
    assert f"site west has no node with the role {role}" in message and says in message
    assert f"roles: [{role}] and site: west" in message


def test_each_site_needs_data_nodes() -> None:
    message = _refused(_two_sites(_drop_role("west", "postgres")))
    assert "site west has no node with the role postgres" in message


def test_each_site_holds_its_own_repository() -> None:
    def move_backup(data: dict[str, Any]) -> None:
        data["nodes"][5]["roles"] = ["dcs"]  # west-dcs gives up the repository
        data["nodes"][1]["roles"] = ["haproxy", "backup"]  # a second one in east
    message = _refused(_two_sites(lambda d: d["nodes"][5].update(roles=["dcs"])))
    assert "no node of site west has the role backup" in message
    message = _refused(_two_sites(move_backup))
    assert "only one node of site east may hold the role backup" in message and "nodes[1] (east-haproxy)" in message


def test_a_site_cluster_name_fits_postgres_limits() -> None:
    message = _refused(_two_sites(lambda d: d.update(sites=["east", "a-very-long-site-name-here"])))
    assert "field sites:" in message and "longer than 31 characters" in message


# pglab init --sites 2 ----------------------------------------------------------------------------

def test_cli_init_two_sites(tmp_path: Path) -> None:
    path = tmp_path / "pglab.yml"
    result = CliRunner().invoke(main, ["init", "-f", str(path), "--sites", "2", "--name", "dr"])
    assert result.exit_code == 0, result.output
    assert "sites east and west" in result.output
    topo = catalog.load(path)
    assert topo.sites == ["east", "west"] and topo.site_scope("west") == "dr-west"


def test_cli_init_two_sites_of_pg_auto_failover_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "pglab.yml"
    result = CliRunner().invoke(main, ["init", "-f", str(path), "--sites", "2", "--stack", "pg_auto_failover"])
    assert result.exit_code == 2
    assert "pg_auto_failover has no standby cluster" in result.output and "field sites" in result.output
    assert not path.exists()


def test_cli_init_refuses_three_sites(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["init", "-f", str(tmp_path / "p.yml"), "--sites", "3"])
    assert result.exit_code == 2 and "--sites" in result.output
