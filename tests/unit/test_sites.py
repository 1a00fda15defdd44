"""A two-site lab's topology: the sites, each node's site, the rules per site, `pglab init --sites 2`.

No processes: YAML texts parsed in memory, and the CLI through click's runner.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from rich.console import Console

from pglab import catalog, operations, paths, sites, stacks, ui
from pglab.checks import CHECKS_DIR, selection
from pglab.cli import main
from pglab.components.haproxy import Backend
from pglab.drills.kind import Drill
from pglab.drills.kinds.site_loss import SiteLoss, SiteLossFigures
from pglab.drills.probe import Attempt, tally
from pglab.drills.result import DrillResult
from pglab.errors import InputError
from pglab.lab import Lab
from pglab.stacks import patroni
from pglab.stacks.base import StandbySource
from pglab.tls import certs
from pglab.topology import TopologyError
from tests.conftest import write_topology

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


# Rendering: each site's own cluster, DCS, router and repository ------------------------------------

@pytest.fixture(scope="module")
def two_site_lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    directory = tmp_path_factory.mktemp("two")
    path = directory / "pglab.yml"
    path.write_text(catalog.default_yaml(name="two", sites=2, loopback="127.0.60.0/24"))
    return Lab.from_file(path)


def test_inventory_groups_each_site_and_gives_its_nodes_their_site_variables(two_site_lab: Lab) -> None:
    inventory = yaml.safe_load((two_site_lab.render().inventory / "hosts.yml").read_text())["all"]
    groups, hosts = inventory["children"], inventory["hosts"]
    # The lab's role groups hold both sites (the plays run on them); each site has its own too.
    assert set(groups["pglab_dcs"]["hosts"]) == {"east-dcs", "west-dcs"}
    assert set(groups["pglab_west_dcs"]["hosts"]) == {"west-dcs"}
    assert set(groups["pglab_east_postgres"]["hosts"]) == {"east-pg1", "east-pg2", "east-pg3"}
    west, east = hosts["west-pg2"], hosts["east-pg1"]
    assert (east["patroni_scope"], west["patroni_scope"]) == ("two-east", "two-west")
    assert west["etcd_group"] == west["patroni_dcs_group"] == "pglab_west_dcs"
    assert west["haproxy_backend_group"] == west["pgbackrest_data_group"] == "pglab_west_postgres"
    assert west["pgbackrest_repo_host"] == "west-dcs" and west["pgbackrest_stanza"] == "two-west"
    # The first site primary, keeping a slot for the second, which starts as its standby cluster.
    assert east["patroni_slots"] == {"site_west": {"type": "physical"}} and "patroni_standby_cluster" not in east
    assert west["patroni_standby_cluster"] == {"router": "east-haproxy", "port": 5002, "slot": "site_west"}
    assert west["pgbackrest_stanza_create"] is False and "pgbackrest_stanza_create" not in east
    for node in (east, west):
        assert node["patroni_postgresql_parameters"] == {"max_slot_wal_keep_size": "1GB", "max_connections": 100}
        assert "pglab_tls_rotation" not in node  # by node already: no site copy


def test_one_site_inventory_has_no_site_groups_or_variables(tmp_path: Path) -> None:
    lab = Lab.from_file(write_topology(tmp_path, name="one"))
    inventory = yaml.safe_load((lab.render().inventory / "hosts.yml").read_text())["all"]
    assert set(inventory["children"]) == {f"pglab_{role}" for role in stacks.roles()}
    assert set(inventory["hosts"]["pg1"]) == {"pglab_address"} | set(
        lab.provider.connection_vars(lab.topology.node("pg1")))


def test_every_node_certificate_of_a_data_node_names_both_sites_routers(two_site_lab: Lab) -> None:
    dns, _addresses = certs.node_sans(two_site_lab.topology, two_site_lab.topology.node("east-pg1"))
    # The other site's standby leader verifies the name it dialled: this site's router.
    assert {"east-haproxy", "west-haproxy", "127.0.60.101", "127.0.60.141"} <= set(dns)


def test_the_roles_render_each_site_its_own_configuration(two_site_lab: Lab, tmp_path: Path) -> None:
    files = _render(two_site_lab, tmp_path, {
        "east-pg1": ["patroni/templates/patroni.yml.j2"],
        "west-pg1": ["patroni/templates/patroni.yml.j2"],
        "west-dcs": ["etcd/templates/etcd.conf.yml.j2", "pgbackrest/templates/pgbackrest.conf.j2"],
        "west-haproxy": ["haproxy/templates/haproxy.cfg.j2"],
    })
    east = yaml.safe_load(files["east-pg1-patroni.yml.j2"])
    west = yaml.safe_load(files["west-pg1-patroni.yml.j2"])
    assert (east["scope"], west["scope"]) == ("two-east", "two-west")
    assert east["etcd3"]["hosts"] == ["127.0.60.100:2379"] and west["etcd3"]["hosts"] == ["127.0.60.140:2379"]
    assert east["bootstrap"]["dcs"]["slots"] == {"site_west": {"type": "physical"}}
    assert "standby_cluster" not in east["bootstrap"]["dcs"]
    assert west["bootstrap"]["dcs"]["standby_cluster"] == {
        "host": "127.0.60.101", "port": 5002, "primary_slot_name": "site_west",
        "create_replica_methods": ["basebackup"]}
    assert west["bootstrap"]["dcs"]["postgresql"]["parameters"]["max_slot_wal_keep_size"] == "1GB"
    # Replication (the standby leader's too) verifies the server's name against the lab's CA.
    assert west["postgresql"]["authentication"]["replication"]["sslmode"] == "verify-full"
    etcd = yaml.safe_load(files["west-dcs-etcd.conf.yml.j2"])
    assert etcd["initial-cluster"] == "west-dcs=https://127.0.60.140:2380"
    repository = files["west-dcs-pgbackrest.conf.j2"]
    assert "[two-west]" in repository and "pg1-host=127.0.60.160" in repository and "127.0.60.120" not in repository
    haproxy = files["west-haproxy-haproxy.cfg.j2"]
    assert "west-pg1 127.0.60.160" in haproxy and "east-pg1" not in haproxy


def _render(lab: Lab, tmp_path: Path, wanted: dict[str, list[str]]) -> dict[str, str]:
    """Templates rendered by Ansible itself for the nodes named, from a copy of the lab's
    inventory with every role's defaults beneath it (nothing runs)."""
    inventory = tmp_path / "inventory"
    shutil.copytree(lab.render().inventory, inventory)
    defaults: dict[str, object] = {}
    for defaults_file in sorted(paths.roles_dir().glob("*/defaults/main.yml")):
        defaults.update(yaml.safe_load(defaults_file.read_text()) or {})
    (inventory / "group_vars" / "all" / "00-role-defaults.yml").write_text(yaml.safe_dump(defaults))
    out = tmp_path / "out"
    out.mkdir()
    facts = {"pgbackrest_pg_path": "{{ postgresql_data_dir }}",
             "pgbackrest_pg_socket_path": "{{ postgresql_socket_dir }}",
             "pgbackrest_client_command": "{{ pgbackrest_command }}"}
    plays = [{"hosts": "pglab_postgres", "gather_facts": False, "tasks": [{"ansible.builtin.set_fact": facts}]}]
    plays += [{"hosts": host, "gather_facts": False, "tasks": [
        {"ansible.builtin.template": {"src": str(paths.roles_dir() / template),
                                      "dest": f"{out}/{host}-{Path(template).name}"}} for template in templates]}
        for host, templates in wanted.items()]
    playbook = tmp_path / "render.yml"
    playbook.write_text(yaml.safe_dump(plays))
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), str(playbook),
         "-e", "ansible_connection=local", "-e", f"ansible_python_interpreter={sys.executable}"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    return {p.name: p.read_text() for p in out.iterdir()}


# A standby cluster's health, and the sites in `pglab status` ------------------------------------

STANDBY_VIEW = {"members": [
    {"name": "west-pg1", "role": "standby_leader", "state": "streaming", "host": "127.0.60.160", "timeline": 1},
    {"name": "west-pg2", "role": "replica", "state": "streaming", "host": "127.0.60.161", "timeline": 1, "lag": 0},
]}


def _backends(primary_up: list[str]) -> list[Backend]:
    return [Backend("primary", name, "UP" if name in primary_up else "DOWN") for name in ("west-pg1", "west-pg2")]


def test_a_streaming_standby_leader_leads_its_cluster_and_gets_no_writes() -> None:
    members = list(patroni.members_from_cluster(STANDBY_VIEW).values())
    health = patroni.cluster_health(STANDBY_VIEW, members, _backends([]))
    assert health.healthy and health.leader == "west-pg1"
    routed = patroni.cluster_health(STANDBY_VIEW, members, _backends(["west-pg1"]))
    assert routed.problems == ["HAProxy routes writes to ['west-pg1'] in a standby cluster"]


def test_a_streaming_member_does_not_lead_a_primary_cluster() -> None:
    view = {"members": [{**STANDBY_VIEW["members"][0], "role": "leader"}, STANDBY_VIEW["members"][1]]}
    members = list(patroni.members_from_cluster(view).values())
    assert "0 running leaders (expected 1)" in patroni.cluster_health(view, members, None).problems


def test_site_role_from_the_standby_source() -> None:
    assert sites.site_role({"host": "127.0.60.101", "port": 5002}, answered=True) == "standby"
    assert sites.site_role(None, answered=True) == "primary"
    assert sites.site_role(None, answered=False) == "unknown"


def test_status_shows_the_sites_and_each_site_members() -> None:
    member = patroni.members_from_cluster(STANDBY_VIEW)
    views = [sites.SiteView("east", "primary", "two-east", True, "east-pg1", [], []),
             sites.SiteView("west", "standby", "two-west", True, "west-pg1", list(member.values()), [],
                            lag=sites.SiteLag(0, 0, 0.0, streaming=True), source="127.0.60.101:5002")]
    console = Console(width=80, record=True)
    console.print(ui.sites_table(views))
    console.print(ui.members_table("two-west", views[1].members, leader_word="Standby leader"))
    text = console.export_text()
    assert "Standby leader" in text and "primary" in text and "standby" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_the_sites_checks_serve_two_site_labs_only() -> None:
    one, two = catalog.parse(catalog.default_yaml(), SOURCE), catalog.parse(_two_sites(), SOURCE)
    assert not selection.serves(one, "test_08_sites", sites_only=True)
    assert selection.serves(two, "test_08_sites", sites_only=True)
    assert selection.serves(one, "test_02_replication") and selection.serves(two, "test_02_replication")
    assert "\nSITES = True\n" in (CHECKS_DIR / "test_08_sites.py").read_text()


# Promotion and demotion through Patroni's DCS ----------------------------------------------------------

class _RecordingPatroni(patroni.PatroniStack):
    """A Patroni client whose REST calls are recorded and answered from a dynamic configuration."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(patroni.Endpoints({"west-pg1": "127.0.60.160"}, None, 8008, 7000, "patroni", "admin"), {})
        self.config = config
        self.patches: list[dict[str, Any]] = []

    def dynamic_config(self) -> dict[str, Any]:
        return self.config

    def call_any(self, method: str, path: str, body: dict[str, Any] | None = None,
                 prefer: str | None = None, timeout: float | None = None) -> tuple[int, str]:
        assert (method, path) == ("PATCH", "/config")
        self.patches.append(body or {})
        return 200, "{}"


def test_follow_sets_and_removes_the_standby_cluster_in_the_dcs() -> None:
    stack = _RecordingPatroni({})
    stack.follow(StandbySource("127.0.60.101", 5002, "site_west"))
    stack.follow(None)
    assert stack.patches == [
        {"standby_cluster": {"host": "127.0.60.101", "port": 5002, "primary_slot_name": "site_west",
                             "create_replica_methods": ["basebackup"]}},
        {"standby_cluster": None}]


def test_keep_slots_adds_the_missing_and_drops_the_others_once() -> None:
    stack = _RecordingPatroni({"slots": {"site_east": {"type": "physical"}}})
    assert stack.keep_slots(["site_west"]) == {"site_east": None, "site_west": {"type": "physical"}}
    kept = _RecordingPatroni({"slots": {"site_west": {"type": "physical"}}})
    assert kept.keep_slots(["site_west"]) == {} and kept.patches == []


def test_standby_source_is_the_dynamic_configuration_section() -> None:
    assert _RecordingPatroni({"ttl": 20}).standby_source() is None
    assert _RecordingPatroni({"standby_cluster": {"host": "h", "port": 5002}}).standby_source() == {
        "host": "h", "port": 5002}


def test_site_source_is_the_followed_site_router_and_the_site_slot() -> None:
    topo = catalog.parse(_two_sites(), SOURCE)
    router, port, slot = patroni.SPEC.site_source(topo, "east", "west")
    assert (router.name, port, slot) == ("west-haproxy", 5002, "site_east")


def test_a_lost_site_is_made_a_standby_cluster_in_its_own_dcs_while_its_members_are_down() -> None:
    topo = catalog.parse(_two_sites(), SOURCE).site_view("west")
    argv = patroni.SPEC.follow_while_down(topo, "/labs/two/west-pg1", True, StandbySource("127.0.60.101", 5002,
                                                                                            "site_west"))
    # patronictl writes the DCS itself: no member needs to run. Values are YAML (JSON is YAML).
    assert argv[0].endswith("/bin/patronictl") and argv[1:4] == ("-c", "/labs/two/west-pg1/etc/patroni/patroni.yml",
                                                                   "edit-config")
    assert "--force" in argv and argv[-2:] == ("-s", "slots=null")
    key, _, value = argv[argv.index("-s") + 1].partition("=")
    assert key == "standby_cluster" and yaml.safe_load(value) == {
        "host": "127.0.60.101", "port": 5002, "primary_slot_name": "site_west",
        "create_replica_methods": ["basebackup"]}


SINGLE_USER_OUTPUT = """
PostgreSQL stand-alone backend 15.18 (Debian 15.18-0+deb12u1)
backend> \t 1: value\t(typeid = 25, len = -1, typmod = -1, byval = f)
\t----
\t 1: value = "1,2,3,4,5"\t(typeid = 25, len = -1, typmod = -1, byval = f)
\t----
backend> """


def test_a_stopped_member_is_read_by_postgres_in_single_user_mode(two_site_lab: Lab,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[list[str]] = []
    answers = iter([SINGLE_USER_OUTPUT, "\nPostgreSQL stand-alone backend 15.18\nbackend> backend> "])

    def check_as_service_user(node: Any, argv: list[str], what: str, *args: Any, **kwargs: Any) -> str:
        ran.append(argv)
        return next(answers)

    monkeypatch.setattr(two_site_lab.provider, "check_as_service_user", check_as_service_user)
    assert operations.query_stopped(two_site_lab, "east-pg1", "SELECT 1") == "1,2,3,4,5"
    assert operations.query_stopped(two_site_lab, "east-pg1", "SELECT 1 FROM missing") is None  # its error
    script, query, postgres, data = ran[0][2], ran[0][4], ran[0][5], ran[0][6]
    # No listener, no archiver: nothing reaches it, no WAL leaves it.
    assert "--single" in script and "archive_command=false" in script
    assert query == "SELECT (SELECT 1)::text AS value" and postgres == "/usr/lib/postgresql/15/bin/postgres"
    assert data.endswith("/var/lib/postgresql/15/main")


def test_site_commands_refuse_a_one_site_lab_and_unknown_sites(tmp_path: Path) -> None:
    one = write_topology(tmp_path, name="one")
    result = CliRunner().invoke(main, ["site", "promote", "west", "-f", str(one)])
    assert result.exit_code == 2 and "has no site 'west'" in result.output
    two = tmp_path / "two.yml"
    two.write_text(_two_sites())
    result = CliRunner().invoke(main, ["site", "demote", "east", "--follow", "east", "-f", str(two)])
    assert result.exit_code == 2 and "--follow names the other site: west" in result.output


# The site-loss drill's verdict ------------------------------------------------------------------------

def _judged(kind: SiteLoss, present: set[int], old_ids: set[int] | None, acknowledged: list[int]) -> DrillResult:
    attempts = [Attempt(i, float(i), float(i) + 0.1, ok=i in acknowledged) for i in range(1, 11)]
    drill = Drill(lab=None, kind="site-loss", number=1, target=None, old_leader="east-pg1", timeout=90,  # type: ignore[arg-type]
                  on_event=lambda _e: None, log=lambda _t: None, clients=None, fault_at=5.0)  # type: ignore[arg-type]
    drill.attempts, drill.present = attempts, present
    kind.old, kind.new, kind.old_ids = "east", "west", old_ids
    kind.decided_at, kind.promoted_at, kind.failback_s = 5.0, 7.0, 20.0
    result = DrillResult("site-loss", 1, "now", None, "east-pg1", "west-pg1", True,
                         tally(attempts, present, 5.0))
    kind.judge(drill, result)
    return result


def test_site_loss_passes_when_exactly_the_writes_the_standby_missed_are_lost() -> None:
    kind = SiteLoss()
    kind.killed = True
    # Writes 1..10 acknowledged; the standby had 1..5 at the kill, the old primary 1..6 (7 failed).
    result = _judged(kind, present={1, 2, 3, 4, 5, 8, 9, 10}, old_ids={1, 2, 3, 4, 5, 6},
                     acknowledged=[1, 2, 3, 4, 5, 6, 8, 9, 10])
    figures = result.part
    assert isinstance(figures, SiteLossFigures)
    assert figures.lost == [6] and figures.predicted == [6] and figures.ok and result.ok
    assert result.tally.lost == []
    assert figures.promotion_s == 2.0 and figures.detection_s == 0.0 and figures.client_switch_s == 1.1


def test_site_loss_fails_on_a_write_lost_that_the_lag_does_not_explain() -> None:
    kind = SiteLoss()
    kind.killed = True
    result = _judged(kind, present={1, 2, 3, 5, 8}, old_ids={1, 2, 3, 4, 5}, acknowledged=[1, 2, 3, 4, 5, 8, 9])
    figures = result.part
    assert isinstance(figures, SiteLossFigures)
    assert figures.lost == [4, 9] and figures.predicted == [4] and not figures.ok
    assert result.tally.lost == [9] and not result.ok


def test_a_planned_site_switch_may_lose_nothing() -> None:
    kind = SiteLoss(planned=True)
    result = _judged(kind, present={1, 2, 3}, old_ids=None, acknowledged=[1, 2, 3, 4])
    figures = result.part
    assert isinstance(figures, SiteLossFigures) and figures.lost == [4] and not figures.ok
    assert result.tally.lost == [4]


def test_site_loss_needs_two_sites(tmp_path: Path) -> None:
    lab = Lab.from_file(write_topology(tmp_path, name="one"))
    with pytest.raises(InputError, match="two-site lab"):
        SiteLoss().check(lab)


def test_a_planned_switch_waits_for_all_but_the_demoted_primary_shutdown_tail() -> None:
    segment = operations.WAL_SEGMENT
    assert operations.received_all(0x9061E10, 0x9061E10)
    assert operations.received_all(0x9061E10, 0x9061E10 + 160)  # the shutdown checkpoint alone
    assert operations.received_all(0x9061E10, 0xA0000A0)  # a switch, then the checkpoint in the next segment
    assert not operations.received_all(0x9061E10, 0x9061E10 + 4096)  # data still on its way
    assert not operations.received_all(0x9061E10, 0xA000000 + 8192)
    assert not operations.received_all(0x9061E10 - segment, 0xA0000A0)  # two segments away
