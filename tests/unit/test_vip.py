"""Unit tests for the virtual IP that follows the leader (``vip:``): the topology's rules, and the
refusal of a VIP where nodes share one network interface (the local provider)."""

from __future__ import annotations

import dataclasses
import io
import ipaddress
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from rich.console import Console

from pglab import stacks, ui
from pglab.catalog import parse
from pglab.cli import main
from pglab.components import vip
from pglab.errors import InputError
from pglab.lab import Lab
from pglab.providers import podman
from pglab.tls import certs
from pglab.topology import Node, TopologyError
from pglab.vm import box
from tests import recorded, shapes
from tests.conftest import write_topology
from tests.unit import test_tls_roles

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


# keepalived, and the services that listen on the address -----------------------------------------

def vm_lab_with_vip(tmp_path: Path, vip: str = "{address: 192.168.11.200, interface: eth1}") -> Lab:
    path = write_topology(tmp_path, name="viplab", provider="vagrant")
    text = path.read_text()
    path.write_text(text.replace("\nnodes:", f"\nvip: {vip}\nnodes:", 1))
    return Lab.from_file(path)


def test_keepalived_runs_on_every_data_node_of_a_vip_lab_only() -> None:
    topology = parse(lab_text())
    assert [n.name for n in topology.nodes if vip.runs_on(topology, n)] == ["pg1", "pg2"]
    assert vip.COMPONENT.services(topology, topology.node("pg1")) == ["keepalived"]
    assert vip.COMPONENT.services(topology, topology.node("dcs")) == []
    plain = parse(lab_text(vip=""))
    assert not vip.enabled(plain) and vip.listen_addresses(plain) == []
    assert "keepalived" in box.LAB_PACKAGES and "curl" in box.LAB_PACKAGES  # the box and the image carry it


def test_the_router_id_is_the_lab_s_own_and_a_valid_vrrp_id() -> None:
    ids = {vip.router_id(parse(lab_text().replace("name: viplab", f"name: lab{i}"))) for i in range(20)}
    assert all(1 <= i <= 255 for i in ids) and len(ids) > 10
    assert vip.router_id(parse(lab_text())) == vip.router_id(parse(lab_text()))


def test_patroni_s_primary_check_asks_its_own_rest_api_over_tls() -> None:
    check = stacks.spec("patroni").primary_check(parse(lab_text()))
    assert check.startswith("curl ") and "--fail" in check
    assert "--cacert {{ pglab_tls_ca_file }} https://{{ pglab_address }}:8008/primary" in check
    plain = stacks.spec("patroni").primary_check(parse(lab_text().replace("name: viplab", "name: viplab\ntls: false")))
    assert "--cacert" not in plain and plain.endswith("http://{{ pglab_address }}:8008/primary")


def test_a_data_node_s_certificate_names_the_vip_and_the_dcs_node_s_does_not() -> None:
    topology = parse(lab_text())
    _names, pg1 = certs.node_sans(topology, topology.node("pg1"))
    _names, dcs = certs.node_sans(topology, topology.node("dcs"))
    assert ipaddress.IPv4Address("10.100.0.50") in pg1 and ipaddress.IPv4Address("10.100.0.50") not in dcs


def test_keepalived_conf_patroni_and_pgbouncer_of_a_vm_lab_with_a_vip(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:/usr/bin:/bin")  # no vagrant: render only
    monkeypatch.setattr(test_tls_roles, "ROLES", (*test_tls_roles.ROLES, "pgbouncer", "keepalived"))
    monkeypatch.setattr(test_tls_roles, "TEMPLATES", {"patroni": ("patroni.yml.j2", "pglab_postgres"),
                                                      "pgbouncer": ("pgbouncer.ini.j2", "pglab_postgres"),
                                                      "keepalived": ("keepalived.conf.j2", "pglab_postgres")})
    lab = vm_lab_with_vip(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    configs = test_tls_roles._render_configs(lab, out)
    conf = configs["keepalived"]["pg1"]
    for line in ("state BACKUP", "priority 100", "weight 50", "interface eth1", "advert_int 1",
                 "unicast_src_ip 192.168.11.120", "192.168.11.200/32 dev eth1", "script_user postgres",
                 f"virtual_router_id {vip.router_id(lab.topology)}", "interval 1", "fall 1"):
        assert line in [raw.strip() for raw in conf.splitlines()], line
    peers = conf.split("unicast_peer {")[1].split("}")[0].split()
    assert peers == ["192.168.11.121", "192.168.11.122"]  # every other data node, not itself
    assert set(configs["keepalived"]) == {"pg1", "pg2", "pg3"}
    patroni = yaml.safe_load(configs["patroni"]["pg1"])
    assert patroni["postgresql"]["listen"] == "192.168.11.120,192.168.11.200:5432"
    assert patroni["postgresql"]["connect_address"] == "192.168.11.120:5432"
    assert "listen_addr = 192.168.11.120,192.168.11.200" in configs["pgbouncer"]["pg1"].splitlines()


def test_without_a_vip_patroni_and_pgbouncer_listen_on_the_node_s_address_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:/usr/bin:/bin")
    monkeypatch.setattr(test_tls_roles, "ROLES", (*test_tls_roles.ROLES, "pgbouncer"))
    monkeypatch.setattr(test_tls_roles, "TEMPLATES", {"patroni": ("patroni.yml.j2", "pglab_postgres"),
                                                      "pgbouncer": ("pgbouncer.ini.j2", "pglab_postgres")})
    out = tmp_path / "out"
    out.mkdir()
    configs = test_tls_roles._render_configs(Lab.from_file(write_topology(tmp_path, name="novip",
                                                                          provider="vagrant")), out)
    assert yaml.safe_load(configs["patroni"]["pg1"])["postgresql"]["listen"] == "192.168.11.120:5432"
    assert "listen_addr = 192.168.11.120" in configs["pgbouncer"]["pg1"].splitlines()


def test_podman_gives_containers_raw_sockets_and_binding_an_address_not_held_yet() -> None:
    assert "NET_RAW" in podman.CAPABILITIES and "NET_ADMIN" in podman.CAPABILITIES
    assert "net.ipv4.ip_nonlocal_bind=1" in podman.SYSCTLS


PGAF_LAB = lab_text().replace("nodes:\n", "stack: pg_auto_failover\nnodes:\n").replace(
    "{name: dcs, address: 10.100.0.11, roles: [dcs, haproxy]}",
    "{name: monitor, address: 10.100.0.11, roles: [monitor]}")


def test_a_pg_auto_failover_lab_takes_a_vip_on_its_data_nodes() -> None:
    topology = parse(PGAF_LAB)
    assert topology.vip is not None and str(topology.vip.address) == "10.100.0.50"
    assert [n.name for n in topology.nodes if vip.runs_on(topology, n)] == ["pg1", "pg2"]
    _names, pg1 = certs.node_sans(topology, topology.node("pg1"))
    assert ipaddress.IPv4Address("10.100.0.50") in pg1


def test_pg_auto_failover_s_primary_check_asks_the_node_s_own_postgresql_over_its_socket() -> None:
    check = stacks.spec("pg_auto_failover").primary_check(parse(PGAF_LAB))
    # As the service user on the Unix socket: no password, no TLS, no monitor to wait for.
    assert "/psql -X -qAt -h {{ postgresql_socket_dir }} -p 5432 -d postgres" in check
    assert "SELECT pg_is_in_recovery()" in check and check.endswith("| grep -qx f")
    assert check.startswith("PGCONNECT_TIMEOUT=2 ")  # a hung server fails the check, not keepalived


def test_a_stack_without_a_primary_check_refuses_a_vip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(type(stacks.spec("pg_auto_failover")), "primary_check", lambda self, topology: "")
    with pytest.raises(TopologyError) as refused:
        parse(PGAF_LAB)
    assert "field vip" in str(refused.value) and "stack: patroni" in str(refused.value)


def test_keepalived_and_postgresql_of_a_pg_auto_failover_lab_with_a_vip(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    listen = tmp_path / "listen.j2"
    listen.write_text("{{ pg_auto_failover_listen_addresses | join(',') }}\n")
    monkeypatch.setattr(test_tls_roles, "ROLES", ("pglab", "postgresql", "pg_auto_failover", "keepalived"))
    monkeypatch.setattr(test_tls_roles, "TEMPLATES", {"pg_auto_failover": (str(listen), "pglab_postgres"),
                                                      "keepalived": ("pglab-is-primary.j2", "pglab_postgres")})
    out = tmp_path / "out"
    out.mkdir()
    configs = test_tls_roles._render_configs(podman_lab(tmp_path / "lab", PGAF_LAB), out)
    # pg_autoctl starts PostgreSQL with -h: the node's address and the VIP, on data nodes only.
    assert configs["pg_auto_failover"] == {"pg1": "10.100.0.12,10.100.0.50\n", "pg2": "10.100.0.13,10.100.0.50\n"}
    script = configs["keepalived"]["pg2"]
    assert script.startswith("#!/bin/sh\n")
    assert "/usr/lib/postgresql/15/bin/psql -X -qAt -h /run/postgresql -p 5432 -d postgres" in script
    plain = podman_lab(tmp_path / "plain", PGAF_LAB.replace("vip: {address: 10.100.0.50}\n", ""))
    out2 = tmp_path / "out2"
    out2.mkdir()
    monkeypatch.setattr(test_tls_roles, "TEMPLATES", {"pg_auto_failover": (str(listen), "pglab_postgres")})
    assert test_tls_roles._render_configs(plain, out2)["pg_auto_failover"]["pg1"] == "10.100.0.12\n"


# Where clients reach it: endpoints, --via vip, status -------------------------------------------

def podman_lab(tmp_path: Path, text: str | None = None) -> Lab:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "pglab.yml"
    path.write_text(text or lab_text())
    lab = Lab.from_file(path)
    lab.render()
    return lab


def test_the_endpoints_name_the_vip_direct_and_pooled_and_pgpass_has_both(tmp_path: Path) -> None:
    lab = podman_lab(tmp_path)
    endpoints = lab.endpoints()
    assert endpoints["vip"].startswith("postgresql://postgres@10.100.0.50:5432/postgres?sslmode=verify-full")
    assert endpoints["vip_pooled"].startswith("postgresql://postgres@10.100.0.50:6432/postgres?sslmode=verify-full")
    pgpass = lab.pgpass.read_text()
    assert "10.100.0.50:5432:*:postgres:" in pgpass and "10.100.0.50:6432:*:postgres:" in pgpass


def test_via_vip_writes_at_the_vip_s_pooler_or_its_postgresql_without_the_pooler(tmp_path: Path) -> None:
    lab = podman_lab(tmp_path)
    assert lab.client_path("vip") == "vip"
    conninfo = lab.writes_conninfo("vip")
    assert (conninfo["host"], conninfo["port"]) == ("10.100.0.50", 6432)
    # A session on a node the address left hears nothing: keepalives meet the new holder's reset.
    assert conninfo["keepalives_idle"] == "2" and conninfo["tcp_user_timeout"] == "5000"
    assert "keepalives_idle" not in lab.writes_conninfo("pooler")
    plain = podman_lab(tmp_path / "off", lab_text().replace("\nnodes:", "\npooler: {enabled: false}\nnodes:"))
    conninfo = plain.writes_conninfo("vip")
    assert (conninfo["host"], conninfo["port"]) == ("10.100.0.50", 5432)
    assert plain.endpoints()["vip_pooled"] == ""


def test_a_lab_without_a_vip_has_empty_vip_endpoints_and_refuses_via_vip(tmp_path: Path) -> None:
    lab = podman_lab(tmp_path, lab_text(vip=""))
    assert lab.endpoints()["vip"] == lab.endpoints()["vip_pooled"] == ""
    with pytest.raises(InputError, match="no virtual IP"):
        lab.client_path("vip")
    assert lab.vip_node() is None


def test_vip_node_is_the_data_node_whose_interfaces_hold_the_address(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    lab = podman_lab(tmp_path)
    asked: list[str] = []

    def holds(node: Node, address: str) -> bool:
        asked.append(node.name)
        return node.name == "pg2" and address == "10.100.0.50"

    monkeypatch.setattr(lab.provider, "holds_address", holds)
    assert lab.vip_node() == "pg2" and asked == ["pg1", "pg2"]  # data nodes only


def test_status_shows_the_vip_and_the_node_that_holds_it() -> None:
    status = recorded.status(shapes.recorded("status")[0])
    endpoints = {**status.endpoints, "vip": "postgresql://postgres@10.100.0.50:5432/postgres",
                 "vip_pooled": "postgresql://postgres@10.100.0.50:6432/postgres"}
    text = _printed(dataclasses.replace(status, endpoints=endpoints, vip_node="pg2"))
    assert "psql 'postgresql://postgres@10.100.0.50:6432/postgres'" in text and "virtual IP on pg2" in text
    assert "held by no node" in _printed(dataclasses.replace(status, endpoints=endpoints, vip_node=None))
    assert "virtual IP" not in _printed(status)


def _printed(status: Any) -> str:
    console = Console(width=300, record=True, file=io.StringIO())
    console.print(ui.status_view(status))
    return console.export_text()
