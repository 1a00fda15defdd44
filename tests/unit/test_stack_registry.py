"""A stack registered by one line plugs into `init`, the topology, `render` and the CLI's
choices without an edit to pglab's modules: this module is such a stack (a small fake)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from click.testing import CliRunner

from pglab import catalog, stacks, topology
from pglab.cli import main
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
