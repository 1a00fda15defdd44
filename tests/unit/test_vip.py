"""Unit tests for the virtual IP that follows the leader (``vip:``): the topology's rules, and the
refusal of a VIP where nodes share one network interface (the local provider)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pglab.catalog import parse
from pglab.cli import main
from pglab.topology import TopologyError

LAB = """\
name: viplab
provider: {provider}
network: {{subnet: 10.100.0.0/24}}
{vip}
nodes:
  - {{name: dcs, address: 10.100.0.11, roles: [dcs, haproxy]}}
  - {{name: pg1, address: 10.100.0.12, roles: [postgres]}}
  - {{name: pg2, address: 10.100.0.13, roles: [postgres]}}
"""


def lab_text(vip: str = "vip: {address: 10.100.0.50}", provider: str = "podman") -> str:
    return LAB.format(provider=provider, vip=vip)


def test_a_lab_without_the_section_has_no_vip() -> None:
    assert parse(lab_text(vip="")).vip is None


def test_a_vip_in_the_subnet_is_taken_with_the_interface_left_to_the_node() -> None:
    vip = parse(lab_text()).vip
    assert vip is not None and str(vip.address) == "10.100.0.50" and vip.interface == ""
    named = parse(lab_text("vip: {address: 10.100.0.50, interface: eth1}")).vip
    assert named is not None and named.interface == "eth1"


@pytest.mark.parametrize(("vip", "field", "words"), [
    pytest.param("vip: {address: 10.101.0.5}", "vip.address", "not a host address of network.subnet",
                 id="outside-the-subnet"),
    pytest.param("vip: {address: 10.100.0.255}", "vip.address", "not a host address", id="broadcast"),
    pytest.param("vip: {address: 10.100.0.12}", "vip.address", "node pg1's address", id="a-node's-address"),
    pytest.param("vip: {address: 10.100.0.50, interface: 'eth0; reboot'}", "vip.interface",
                 "not a network interface name", id="interface-not-a-name"),
    pytest.param("vip: {interface: eth0}", "vip.address", "", id="no-address"),
])
def test_a_bad_vip_is_refused_at_its_field(vip: str, field: str, words: str) -> None:
    with pytest.raises(TopologyError) as refused:
        parse(lab_text(vip))
    assert f"field {field}" in str(refused.value) and words in str(refused.value)


def test_the_local_provider_refuses_a_vip_and_says_why_and_the_fix() -> None:
    with pytest.raises(TopologyError) as refused:
        parse(lab_text(provider="local"))
    message = str(refused.value)
    assert "field vip" in message and "loopback" in message
    assert "Remove the vip section" in message and "provider: podman" in message


def test_pglab_up_of_a_local_lab_with_a_vip_exits_2(tmp_path: Path) -> None:
    lab_file = tmp_path / "pglab.yml"
    lab_file.write_text(lab_text(provider="local"))
    result = CliRunner().invoke(main, ["up", "-f", str(lab_file)])
    assert result.exit_code == 2, result.output
    assert "cannot carry a virtual IP" in result.output and "Traceback" not in result.output
    assert not (tmp_path / ".pglab").exists()
