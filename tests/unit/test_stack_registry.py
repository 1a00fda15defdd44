"""A stack registered by one line plugs into `init`, the topology, `render`, the CLI's choices,
verify's check selection, HAProxy's routes and certificate rotation without an edit to pglab's
modules, playbooks or templates: this module is such a stack (a small fake)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from click.testing import CliRunner

from pglab import catalog, paths, stacks, topology
from pglab.checks.selection import serves
from pglab.cli import main
from pglab.components.base import HealthCheck, Rotation, Route
from pglab.providers import PROVIDERS
from pglab.stacks import DefaultNode, Stack, StackSpec
from pglab.topology import Ports, Strict, Topology

NAME = "fakestack"


class FakeSettings(Strict):
    knob: int = 7


class FakeSpec(StackSpec):
    name = NAME
    roles = ("postgres", "witness")
    settings = FakeSettings
    default_nodes = (
        DefaultNode("witness", "192.168.11.90", "witness", "breaks ties"),
        DefaultNode("pg1", "192.168.11.91", "postgres"),
        DefaultNode("pg2", "192.168.11.92", "postgres"),
    )
    comments: ClassVar[Mapping[str, str]] = {"fakestack.knob": "how far to turn it"}
    checks = ("test_01_services_fakestack",)

    def client(self) -> type[Stack]:
        return Stack  # never asked of a live cluster here

    def service(self, role: str, topology: Topology) -> str:
        return {"postgres": "fakekeeper", "witness": "fakewitness"}[role]

    def role_ports(self, ports: Ports) -> dict[str, list[int]]:
        return {"postgres": [ports.postgres], "witness": [ports.monitor]}

    def inventory_vars(self, topology: Topology) -> dict[str, Any]:
        return {"fakestack_knob": topology.section(NAME, FakeSettings).knob}

    def routes(self, topology: Topology) -> list[Route]:
        return [Route("writes", 6000, topology.ports.postgres, HealthCheck("GET", "/leader", 9000, tls=False),
                      "Writes: the keeper that leads.")]

    def tls_rotation(self, topology: Topology) -> list[Rotation]:
        return ([Rotation(node, "Restart the witness", "fakewitness", "restart", "fakewitness", one_at_a_time=True)
                 for node in topology.with_role("witness")]
                + [Rotation(node, "Reload the keeper", "fakekeeper", "reload", "fakekeeper")
                   for node in topology.with_role("postgres")])


SPEC = FakeSpec()


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(stacks.STACKS, NAME, __name__)  # the one registry line


def test_the_cli_offers_a_registered_stack(registered: None) -> None:
    result = CliRunner().invoke(main, ["init", "--help"])
    assert result.exit_code == 0 and NAME in result.output


def test_init_and_render_take_a_registered_stack(registered: None, tmp_path: Path) -> None:
    path = tmp_path / "pglab.yml"
    runner = CliRunner()
    result = runner.invoke(main, ["init", "-f", str(path), "--stack", NAME])
    assert result.exit_code == 0, result.output
    text = path.read_text()
    assert f"stack: {NAME}" in text and "knob: 7" in text and "how far to turn it" in text
    assert "roles: [witness]" in text and "dcs:" not in text
    assert catalog.load(path).section(NAME, FakeSettings).knob == 7

    result = runner.invoke(main, ["render", "-f", str(path)])
    assert result.exit_code == 0, result.output
    inventory = tmp_path / ".pglab" / "pglab" / "inventory"
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())
    assert hosts["all"]["children"]["pglab_witness"]["hosts"] == {"witness": None}
    variables = yaml.safe_load((inventory / "group_vars" / "all" / "pglab.yml").read_text())
    assert variables["pglab_stack"] == NAME and variables["fakestack_knob"] == 7


def test_the_topology_knows_the_registered_stack_s_roles_and_section(registered: None) -> None:
    with pytest.raises(topology.TopologyError, match=f"role witness belongs to stack {NAME}; remove it"):
        catalog.parse("nodes:\n- {name: a, address: 192.168.11.5, roles: [postgres, dcs, witness]}\n")
    with pytest.raises(topology.TopologyError, match=f"the {NAME} section applies to stack {NAME}"):
        catalog.parse(f"{NAME}: {{knob: 1}}\nnodes:\n- {{name: a, address: 192.168.11.5, roles: [postgres, dcs]}}\n")


def test_an_unregistered_stack_is_refused_by_name() -> None:
    with pytest.raises(topology.TopologyError, match="'fakestack' is not supported; use one of 'patroni' or"):
        catalog.parse(f"stack: {NAME}\nnodes:\n- {{name: a, address: 192.168.11.5, roles: [postgres]}}\n")


def _render_fake_lab(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "pglab.yml"
    runner = CliRunner()
    assert runner.invoke(main, ["init", "-f", str(path), "--stack", NAME]).exit_code == 0
    result = runner.invoke(main, ["render", "-f", str(path)])
    assert result.exit_code == 0, result.output
    variables = tmp_path / ".pglab" / "pglab" / "inventory" / "group_vars" / "all" / "pglab.yml"
    return dict(yaml.safe_load(variables.read_text()))


def test_verify_keeps_the_registered_stack_s_checks_and_leaves_out_the_others(registered: None) -> None:
    fake = catalog.parse(catalog.default_yaml(stack=NAME))
    assert serves(fake, "test_01_services_fakestack")
    assert serves(fake, "test_02_replication")  # claimed by nobody: every lab's
    assert not serves(fake, "test_01_services_pg_auto_failover") and not serves(fake, "test_03_routing")
    assert not serves(fake, "test_08_backups")  # the pgBackRest component's: this lab runs no repository
    assert serves(fake, "test_01_tls", tls_only=True) == fake.tls
    patroni = catalog.parse(catalog.default_yaml())
    assert not serves(patroni, "test_01_services_fakestack") and serves(patroni, "test_08_backups")


def test_haproxy_routes_and_certificate_rotation_come_from_the_registered_stack(
        registered: None, tmp_path: Path) -> None:
    variables = _render_fake_lab(tmp_path)
    assert [(r["name"], r["port"], r["check"]) for r in variables["haproxy_listeners"]] == [
        ("writes", 6000, {"method": "GET", "path": "/leader", "port": 9000, "tls": False, "expect_status": 200})]
    rotation = variables["pglab_tls_rotation"]
    assert [(r["role"], r["tasks_from"], r["one_at_a_time"]) for r in rotation["witness"]] == [
        ("fakewitness", "restart", True)]
    assert [r["service"] for r in rotation["pg1"]] == ["fakekeeper", "pgbouncer"]
    assert set(rotation) == {"witness", "pg1", "pg2"}  # no pgBackRest: the fake lab keeps no repository


def test_the_rotation_plan_of_a_patroni_lab_puts_its_dcs_one_at_a_time_and_its_components_after() -> None:
    lab = catalog.parse(catalog.default_yaml())
    plan = [(r.node.name, r.service, r.one_at_a_time, r.own_copy) for r in stacks.tls_rotation(lab)]
    assert plan == [("dcs", "etcd", True, False),
                    ("pg1", "patroni", False, False), ("pg2", "patroni", False, False),
                    ("pg3", "patroni", False, False),
                    ("haproxy", "haproxy", False, False),
                    ("dcs", "pgbackrest", False, True), ("pg1", "pgbackrest", False, True),
                    ("pg2", "pgbackrest", False, True), ("pg3", "pgbackrest", False, True),
                    ("pg1", "pgbouncer", False, False), ("pg2", "pgbouncer", False, False),
                    ("pg3", "pgbouncer", False, False)]


def _code(path: Path) -> str:
    """The file without its comments (YAML and Jinja's ``#`` lines)."""
    return "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))


def test_no_playbook_template_or_module_outside_stacks_and_providers_names_a_stack() -> None:
    """What a new stack, provider or DCS would otherwise have to edit: the router's template and
    the rotation playbook carry no stack's name or health path, and no module outside stacks/ and
    providers/ compares anything with a stack's, a provider's or a DCS's name."""
    names = [*stacks.STACKS, *PROVIDERS, "etcd", "consul"]
    for path in (paths.roles_dir() / "haproxy" / "templates" / "haproxy.cfg.j2", paths.playbook("certs.yml")):
        code = _code(path).lower()
        for word in [*stacks.STACKS, "etcd", "consul", "/primary", "/replica"]:
            assert word not in code, f"{path} names {word}"
    comparison = re.compile(r"(==|!=|\bin)\s*\(?\s*['\"](" + "|".join(map(re.escape, names)) + r")['\"]")
    package = Path(stacks.__file__).resolve().parents[1]
    for module in package.rglob("*.py"):
        if module.parent.name in ("stacks", "providers"):
            continue
        found = comparison.search(module.read_text())
        assert found is None, f"{module.relative_to(package)} branches on {found.group(0) if found else ''}"
