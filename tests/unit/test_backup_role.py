"""The backup: section, its validation, and what the pgbackrest role renders from it (both
providers render the same files; the VM path is checked here, without VMs)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pglab import paths, render
from pglab.catalog import default_yaml, parse
from pglab.components import pgbackrest
from pglab.lab import Lab
from pglab.providers.vagrant import VagrantProvider
from pglab.topology import TopologyError
from pglab.vm import box
from tests.conftest import write_topology


def _with_roles(text: str, node: str, roles: str) -> str:
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(f"  - name: {node}"))
    lines[at + 2] = f"    roles: [{roles}]"
    return "\n".join(lines) + "\n"


def test_init_writes_backups_on_with_the_repository_on_the_dcs_node() -> None:
    topo = parse(default_yaml())
    assert topo.backup.enabled and topo.backup.tool == "pgbackrest"
    assert [n.name for n in topo.with_role("backup")] == ["dcs"]
    assert pgbackrest.enabled(topo)


def test_a_lab_without_the_section_has_no_backups() -> None:
    text = default_yaml().split("backup:")[0] + "nodes:" + default_yaml().split("\nnodes:")[1]
    topo = parse(text)
    assert not topo.backup.enabled and not pgbackrest.enabled(topo)


def test_enabled_false_turns_backups_off() -> None:
    topo = parse(default_yaml().replace("  enabled: true", "  enabled: false"))
    assert not pgbackrest.enabled(topo)
    assert render.lab_variables(topo, VagrantProvider(topo, Path("/nonexistent")))["pgbackrest_enabled"] is False


@pytest.mark.parametrize(("node", "roles", "words"), [
    ("dcs", "dcs", "no node has the role backup"),
    ("pg1", "postgres, backup", "must not sit on a data node"),
    ("haproxy", "haproxy, backup", "only one node may hold the role backup"),
])
def test_bad_repository_placement_is_refused_naming_the_fix(node: str, roles: str, words: str) -> None:
    text = default_yaml() if node == "haproxy" else _with_roles(default_yaml(), "dcs", "dcs")
    with pytest.raises(TopologyError, match=words):
        parse(_with_roles(text, node, roles))


def test_init_writes_backups_on_for_pg_auto_failover_with_the_repository_on_the_monitor() -> None:
    topo = parse(default_yaml(stack="pg_auto_failover"))
    assert pgbackrest.enabled(topo)
    assert [n.name for n in topo.with_role("backup")] == ["monitor"]
    provider = VagrantProvider(parse(default_yaml(stack="pg_auto_failover", provider="vagrant")), Path("/nonexistent"))
    assert provider.units(topo.node("monitor")) == ["pgautofailover", "pgbackrest"]
    assert provider.units(topo.node("pg1")) == ["pgautofailover", "pgbackrest", "pgbouncer"]


def test_box_and_units_carry_pgbackrest() -> None:
    assert "pgbackrest" in box.LAB_PACKAGES
    topo = parse(default_yaml(provider="vagrant"))
    provider = VagrantProvider(topo, Path("/nonexistent"))
    assert provider.units(topo.node("dcs")) == ["etcd", "pgbackrest"]
    assert provider.units(topo.node("pg1")) == ["patroni", "pgbackrest", "pgbouncer"]
    assert provider.units(topo.node("haproxy")) == ["haproxy"]


def _render_role_files(lab: Lab, tmp_path: Path) -> dict[str, str]:
    """Render pgbackrest.conf and the stack's PostgreSQL settings (patroni.yml, or pg_auto_failover's
    postgresql-pglab.conf) for the repository node and pg1 with Ansible itself,
    from a copy of the lab's own inventory with the roles' defaults beneath it (nothing runs on
    the nodes)."""
    inventory = tmp_path / "inventory"
    shutil.copytree(lab.render().inventory, inventory)
    defaults: dict[str, object] = {}
    for role in ("pglab", "postgresql", "patroni", "pg_auto_failover", "pgbackrest"):
        defaults.update(yaml.safe_load((paths.roles_dir() / role / "defaults" / "main.yml").read_text()))
    # Loaded before the lab's own files of the same group, so the lab's values win, as over defaults.
    (inventory / "group_vars" / "all" / "00-role-defaults.yml").write_text(yaml.safe_dump(defaults))
    out = tmp_path / "out"
    out.mkdir()
    templates = paths.roles_dir()
    # The TLS server's service, with the variables the role's own task gives pglab's service tasks.
    role_tasks = yaml.safe_load((templates / "pgbackrest" / "tasks" / "main.yml").read_text())
    server = next(t for t in role_tasks if t.get("ansible.builtin.import_role", {}).get("tasks_from") == "service")
    playbook = tmp_path / "render.yml"
    playbook.write_text(yaml.safe_dump([
        {"hosts": "pglab_postgres", "gather_facts": False,
         "tasks": [{"ansible.builtin.set_fact": {"pgbackrest_pg_path": "{{ postgresql_data_dir }}",
                                                 "pgbackrest_pg_socket_path": "{{ postgresql_socket_dir }}",
                                                 "pgbackrest_client_command": "{{ pgbackrest_command }}",
                                                 # As roles/pgbackrest/tasks/config.yml sets it.
                                                 "pgbackrest_client_command_in_data_dir":
                                                     "{{ pgbackrest_binary }} --config=\"$(pwd)/"
                                                     "{{ pgbackrest_config_file | relpath(postgresql_data_dir) }}\""
                                                     " --stanza={{ pgbackrest_stanza }}"}}]},
        {"hosts": "pglab_backup:pg1", "gather_facts": False,
         "tasks": [
             {"ansible.builtin.template": {"src": f"{templates}/pgbackrest/templates/pgbackrest.conf.j2",
                                           "dest": f"{out}/{{{{ inventory_hostname }}}}-pgbackrest.conf"}},
             {"ansible.builtin.template": {"src": f"{templates}/patroni/templates/patroni.yml.j2",
                                           "dest": f"{out}/{{{{ inventory_hostname }}}}-patroni.yml"},
              "when": "inventory_hostname == 'pg1' and pglab_stack == 'patroni'"},
             {"ansible.builtin.template": {
                 "src": f"{templates}/pg_auto_failover/templates/postgresql-pglab.conf.j2",
                 "dest": f"{out}/{{{{ inventory_hostname }}}}-postgresql-pglab.conf"},
              "when": "inventory_hostname == 'pg1' and pglab_stack == 'pg_auto_failover'"},
             {"ansible.builtin.template": {"src": f"{templates}/pglab/templates/systemd.service.j2",
                                           "dest": f"{out}/{{{{ inventory_hostname }}}}-pgbackrest.service"},
              "vars": server["vars"], "when": "pglab_service_manager == 'systemd'"},
         ]},
    ]))
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), str(playbook),
         "-e", "ansible_connection=local", "-e", f"ansible_python_interpreter={sys.executable}"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    return {p.name: p.read_text() for p in out.iterdir()}


def test_the_vm_path_renders_tls_server_and_client_configuration(tmp_path: Path) -> None:
    (tmp_path / "lab").mkdir()
    lab = Lab.from_file(write_topology(tmp_path / "lab", name="btest", provider="vagrant"))
    files = _render_role_files(lab, tmp_path)
    repo, data, patroni = files["dcs-pgbackrest.conf"], files["pg1-pgbackrest.conf"], files["pg1-patroni.yml"]
    # The repository node: the repository, and each data node reached over TLS with the lab CA.
    assert "repo1-path=/var/lib/pgbackrest" in repo and "repo1-retention-full=2" in repo
    assert "pg3-host=192.168.11.122" in repo and "pg1-host-type=tls" in repo
    assert "tls-server-auth=pg1=btest" in repo and "tls-server-auth=pg3=btest" in repo
    assert "tls-server-address=192.168.11.100" in repo and "tls-server-port=8432" in repo
    # A data node: the repository over TLS; only the repository node may call its server.
    assert "repo1-host=192.168.11.100" in data and "repo1-host-type=tls" in data
    assert "repo1-host-ca-file=/etc/pgbackrest/tls/ca.crt" in data
    assert "tls-server-auth=dcs=btest" in data and "repo1-path" not in data
    # archive_command waits seconds, not minutes, when the repository is away (async push).
    assert "archive-async=y" in data and "[global:archive-push]\narchive-timeout=5" in data
    # A standby starting while the repository is away reads its own pg_wal after seconds: 15 on
    # emulated guests (the test lab's driver), 5 elsewhere.
    assert "[global:archive-get]\narchive-async=n\nio-timeout=" in data
    assert "archive-async" not in repo
    # Locks outlive a reboot's empty /run: the service user could not create /run/pgbackrest again,
    # and every archive_command failed after a VM came back.
    for conf in (repo, data):
        assert "lock-path=/var/spool/pgbackrest/lock" in conf and "/run/pgbackrest" not in conf
    # On VMs the server is a systemd unit, as the service user, with the password file for its
    # local connection to PostgreSQL.
    for unit in (files["dcs-pgbackrest.service"], files["pg1-pgbackrest.service"]):
        assert "ExecStart=/usr/bin/pgbackrest --config=/etc/pgbackrest/pgbackrest.conf server" in unit
        assert "User=postgres" in unit and 'Environment="PGPASSFILE=/etc/pgbackrest/pgpass"' in unit
    # Patroni archives through pgBackRest and creates replicas from it, then from the primary.
    config = yaml.safe_load(patroni)
    assert config["postgresql"]["parameters"]["archive_mode"] == "on"
    assert config["postgresql"]["parameters"]["archive_command"].endswith("archive-push %p")
    assert config["postgresql"]["create_replica_methods"] == ["pgbackrest", "basebackup"]
    # ... and a replica made from a backup catches up from the archive (Patroni drops pgBackRest's own).
    assert config["postgresql"]["recovery_conf"]["restore_command"].endswith('archive-get %f "%p"')


def test_pg_auto_failover_data_nodes_archive_to_the_repository_on_the_monitor(tmp_path: Path) -> None:
    (tmp_path / "lab").mkdir()
    lab = Lab.from_file(write_topology(tmp_path / "lab", name="atest", provider="vagrant", stack="pg_auto_failover"))
    files = _render_role_files(lab, tmp_path)
    repo, data, settings = (files["monitor-pgbackrest.conf"], files["pg1-pgbackrest.conf"],
                            files["pg1-postgresql-pglab.conf"])
    assert "pg2-host=192.168.11.153" in repo and "pg2-port=5432" in repo and "pg3-host" not in repo
    assert "repo1-host=192.168.11.151" in data and "archive-async=y" in data
    assert "archive_mode = 'on'" in settings
    # Relative to the data directory (/var/lib/postgresql/15/main), where PostgreSQL runs it: this
    # file is copied from the primary by pg_rewind and pg_basebackup.
    assert ("archive_command = '/usr/bin/pgbackrest --config=\"$(pwd)/../../../../../etc/pgbackrest/pgbackrest.conf\" "
            "--stanza=atest archive-push %p'") in settings


def test_render_makes_the_lab_ca_and_node_certificates(tmp_path: Path) -> None:
    lab = Lab.from_file(write_topology(tmp_path, name="ctest"))
    lab.render()
    tls = paths.LabLayout.at(lab.provider.lab_dir).tls
    assert {p.name for p in tls.glob("*.crt")} >= {"ca.crt", "dcs.crt", "pg1.crt", "pglab.crt"}
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in tls.glob("*.key"))
