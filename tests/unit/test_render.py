"""Rendering: inventory, lab variables, secrets (0600, reused) and the packaged data."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from pglab import paths, render
from pglab.catalog import secret_variables
from pglab.lab import Lab
from tests.conftest import loopback_address, write_topology


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return Lab.from_file(write_topology(tmp_path, name="rtest"))


def test_inventory_maps_nodes_to_loopback_and_groups(lab: Lab) -> None:
    rendered = lab.render()
    hosts = yaml.safe_load((rendered.inventory / "hosts.yml").read_text())["all"]
    assert hosts["hosts"]["pg1"]["pglab_address"] == loopback_address(120)
    assert hosts["hosts"]["dcs"]["ansible_connection"] == "local"
    assert set(hosts["children"]["pglab_postgres"]["hosts"]) == {"pg1", "pg2", "pg3"}
    assert set(hosts["children"]["pglab_dcs"]["hosts"]) == {"dcs"}
    assert set(hosts["children"]["pglab_haproxy"]["hosts"]) == {"haproxy"}


def test_lab_variables_carry_topology_and_provider(lab: Lab) -> None:
    variables = render.lab_variables(lab.topology, lab.provider)
    assert variables["patroni_scope"] == "rtest"  # init names the cluster after the lab
    assert variables["pglab_service_manager"] == "supervisor"
    assert variables["pglab_hba_networks"] == ["127.0.0.0/8"]
    assert [(r["name"], r["port"], r["check"]["path"]) for r in variables["haproxy_listeners"]] == [
        ("primary", 5000, "/primary"), ("replicas", 5001, "/replica"),
        ("primary_direct", 5002, "/primary"), ("replicas_direct", 5003, "/replica")]
    assert variables["patroni_postgresql_parameters"] == {"max_connections": 100}
    assert "pglab_node_root" in variables and "inventory_hostname" in variables["pglab_node_root"]


def test_secrets_are_generated_once_private_and_reused(lab: Lab) -> None:
    first = lab.render()
    secrets_1 = yaml.safe_load(first.secrets_file.read_text())
    assert first.secrets_file.stat().st_mode & 0o777 == 0o600
    assert first.pgpass.stat().st_mode & 0o777 == 0o600
    assert len(set(secrets_1.values())) == len(secrets_1) == len(secret_variables())
    second = lab.render()
    assert yaml.safe_load(second.secrets_file.read_text()) == secrets_1
    assert secrets_1["postgresql_superuser_password"] in second.pgpass.read_text()


def test_other_labs_get_other_secrets(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = Lab.from_file(write_topology(tmp_path / "a"))
    b = Lab.from_file(write_topology(tmp_path / "b"))
    a.render()
    b.render()
    assert a.secrets() != b.secrets()


def test_rendering_twice_changes_nothing_on_disk(lab: Lab) -> None:
    lab.render()
    files = {p: p.stat().st_mtime_ns for p in lab.dir.rglob("*") if p.is_file() and p.name != "pgpass"}
    lab.render()
    assert {p: p.stat().st_mtime_ns for p in files} == files


def test_the_local_provider_gets_no_vagrantfile(lab: Lab) -> None:
    rendered = lab.render()
    assert rendered.provider_files == []
    assert not (lab.dir / "Vagrantfile").exists()


def test_the_vagrant_provider_renders_a_vagrantfile_naming_every_node(tmp_path: Path) -> None:
    lab = Lab.from_file(write_topology(tmp_path, name="vtest", provider="vagrant"))
    files = lab.provider.rendered_files()
    assert list(files) == [lab.dir / "Vagrantfile"]
    for node in lab.topology.nodes:
        assert node.name in files[lab.dir / "Vagrantfile"] and str(node.address) in files[lab.dir / "Vagrantfile"]


def test_wheel_carries_roles_playbooks_and_templates(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(root)], check=True)
    wheel = next(tmp_path.glob("pglab-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("pglab/_data/playbooks/site.yml", "pglab/_data/roles/patroni/tasks/main.yml",
                   "pglab/_data/roles/pglab/tasks/service.yml", "pglab/_data/Vagrantfile.j2",
                   "pglab/_data/playbooks/prepare.yml"):
        assert needed in names, needed


def test_data_dir_found_from_source_checkout() -> None:
    assert (paths.roles_dir() / "patroni").is_dir()
    assert paths.playbook("site.yml").exists()
