"""The hosts provider's decisions that need no server: its topology section and rules, how it
connects, what it refuses before changing anything (on recorded answers of its probe), what it
records and what `destroy` removes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from pglab import ansible, cli, providers, ui
from pglab.catalog import default_yaml, parse
from pglab.errors import InputError
from pglab.lab import Lab, NodePlan, UpCheck
from pglab.providers import host_checks, hosts
from pglab.topology import Node, Topology, TopologyError

LAB = """\
name: srv
provider: hosts
network: {subnet: 10.70.0.0/24}
backup: {enabled: true}
hosts:
  user: admin
  key_file: KEY
  per_node:
    pg2: {user: root, become: false, port: 2222}
nodes:
  - {name: dcs, address: 10.70.0.11, roles: [dcs, haproxy, backup]}
  - {name: pg1, address: 10.70.0.12, roles: [postgres]}
  - {name: pg2, address: 10.70.0.13, roles: [postgres]}
"""
DEBIAN = ("os debian 12 Debian GNU/Linux 12 (bookworm)\nsystemd yes\npython yes\nsudo yes\n"
          "ss LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:((\"sshd\",pid=61,fd=3))\nunit 61 ssh.service\n")


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "id_test"
    path.write_text("not really a key\n")
    return path


@pytest.fixture
def topology(key: Path) -> Topology:
    return parse(LAB.replace("KEY", str(key)))


class Servers:
    """Fake SSH: each node answers the probe with its own facts, and every command is recorded."""

    def __init__(self, probe: dict[str, str] | None = None, exit_code: int = 0) -> None:
        self.probe = probe or {}
        self.exit_code = exit_code
        self.commands: list[tuple[str, str]] = []
        self.packages = {"dcs": ["openssh-server", "sudo"], "pg1": ["openssh-server", "sudo"],
                         "pg2": ["openssh-server", "sudo"]}

    def __call__(self, provider: hosts.HostsProvider) -> Callable[..., subprocess.CompletedProcess[str]]:
        def ssh(node: Node, command: str, timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
            name = node.name
            self.commands.append((name, command))
            if self.exit_code:
                return subprocess.CompletedProcess([], self.exit_code, "", "ssh: connect to host: Connection refused")
            if command.startswith('S=""'):
                out = self.probe.get(name, DEBIAN)
            elif "dpkg-query" in command:
                out = "".join(f"{p} installed\n" for p in self.packages[name])
                if "for p in" in command:  # the claim: no marker, no lab path there before
                    out = ("path /etc/haproxy\nempty /var/lib/pgbackrest\n"
                           + "".join(f"{p}\n" for p in self.packages[name]))
            else:
                out = ""
            return subprocess.CompletedProcess([], 0, out, "")
        return ssh


def provider_with(topology: Topology, tmp_path: Path, servers: Servers,
                  monkeypatch: pytest.MonkeyPatch) -> hosts.HostsProvider:
    provider = hosts.HostsProvider(topology, tmp_path / ".pglab" / "srv")
    monkeypatch.setattr(provider, "_ssh", servers(provider))
    return provider


# The topology ------------------------------------------------------------------------------------
def test_hosts_is_a_registered_provider_whose_init_section_parses() -> None:
    assert providers.provider_class("hosts") is hosts.HostsProvider
    text = default_yaml(provider="hosts")
    assert "\nhosts:" in text and "key_file:" in text and "become: true" in text
    assert parse(text).provider == "hosts"


def test_each_node_gets_the_section_s_access_or_its_own(topology: Topology, key: Path) -> None:
    provider = hosts.HostsProvider(topology, Path("/nonexistent"))
    assert provider.access(topology.node("pg1")) == hosts.Access("admin", key, 22, True)
    assert provider.access(topology.node("pg2")) == hosts.Access("root", key, 2222, False)
    variables = provider.connection_vars(topology.node("pg2"))
    assert (variables["ansible_host"], variables["ansible_port"], variables["ansible_user"]) == ("10.70.0.13", 2222,
                                                                                                  "root")
    assert variables["ansible_become"] is False and variables["ansible_ssh_private_key_file"] == str(key)
    assert "known_hosts" in variables["ansible_ssh_common_args"]


def test_the_default_key_is_under_the_home_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    topo = parse(LAB.replace("  key_file: KEY\n", ""))
    assert hosts.HostsProvider(topo, Path("/x")).access(topo.node("pg1")).key_file == Path(
        "/home/someone/.ssh/id_ed25519")


@pytest.mark.parametrize(("edit", "line", "field", "words"), [
    (("pg2: {user", "pg9: {user"), 9, "hosts.per_node.pg9", "no node is named 'pg9'; use one of: dcs, pg1, pg2"),
    (("key_file: KEY", "key_file: keys/id"), 7, "hosts.key_file", "relative path"),
    (("user: admin", "user: Admin!"), 6, "hosts.user", "is not a user name"),
    (("user: root, become: false", "user: ops, become: false"), 9, "hosts.per_node.pg2",
     "connects as ops without sudo (become: false), but pglab needs root"),
    (("port: 2222", "port: 70000"), 9, "hosts.per_node.pg2.port", "at most 65535"),
])
def test_a_bad_hosts_section_is_refused_with_file_line_field_and_fix(edit: tuple[str, str], line: int, field: str,
                                                                    words: str) -> None:
    with pytest.raises(TopologyError) as caught:
        parse(LAB.replace(*edit).replace("KEY", "/keys/id"), "lab.yml")
    message = str(caught.value)
    assert message.startswith(f"lab.yml, line {line}, field {field}: "), message
    assert words in message


# Before anything is changed ----------------------------------------------------------------------
def test_a_debian_12_server_with_free_ports_passes(topology: Topology, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    servers = Servers()
    assert provider_with(topology, tmp_path, servers, monkeypatch).preflight() == []
    assert sorted(name for name, _ in servers.commands) == ["dcs", "pg1", "pg2"]  # one probe each


def test_an_unreachable_server_is_refused_naming_it_and_the_fix(topology: Topology, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    problems = provider_with(topology, tmp_path, Servers(exit_code=255), monkeypatch).preflight()
    assert len(problems) == 3
    assert problems[1].startswith("pg1 (10.70.0.12) did not answer SSH as admin on port 22 within 10 s: ")
    assert "Connection refused" in problems[1] and "authorized_keys" in problems[1]


def test_a_missing_key_file_is_refused_before_any_connection(topology: Topology, tmp_path: Path, key: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    key.unlink()
    servers = Servers()
    problems = provider_with(topology, tmp_path, servers, monkeypatch).preflight()
    assert servers.commands == [] and len(problems) == 3
    assert f"the SSH key {key} for dcs (10.70.0.11) is not a file" in problems[0]


@pytest.mark.parametrize(("answer", "words"), [
    (DEBIAN.replace("os debian 12 Debian GNU/Linux 12 (bookworm)", "os ubuntu 22.04 Ubuntu 22.04.3 LTS"),
     "pg1 (10.70.0.12) runs Ubuntu 22.04.3 LTS, not Debian 12"),
    (DEBIAN.replace("os debian 12 Debian GNU/Linux 12 (bookworm)", "os debian 11 Debian GNU/Linux 11"),
     "runs Debian GNU/Linux 11, not Debian 12"),
    (DEBIAN.replace("sudo yes", "sudo no"), "sudo on pg1 (10.70.0.12) refuses admin or asks for a password"),
    (DEBIAN.replace("systemd yes", "systemd no"), "pg1 (10.70.0.12) does not run systemd"),
    (DEBIAN.replace("python yes", "python no"), "has no python3"),
    (DEBIAN + "marker other\n", "belongs to the pglab lab 'other'"),
    (DEBIAN + "cluster /etc/postgresql/15/main\n", "holds a PostgreSQL cluster that this lab did not make at "
                                                  "/etc/postgresql/15/main"),
    (DEBIAN + 'ss LISTEN 0 244 127.0.0.1:5432 0.0.0.0:* users:(("postgres",pid=90,fd=6))\n'
              "unit 90 postgresql@15-main.service\n",
     "on pg1 (10.70.0.12) ports the lab needs are held: 5432 (postgres) by postgresql@15-main.service"),
    (DEBIAN + 'ss LISTEN 0 5 *:8008 *:* users:(("nc",pid=91,fd=3))\nunit 91 -\n',
     "8008 (postgres) by nc"),
    (DEBIAN + "ss missing\n", "`ss` is missing"),
    (DEBIAN + "ss LISTEN 0 4096 10.70.0.12:5432 0.0.0.0:* uid:107 ino:2231 sk:1\n",
     "5432 (postgres) by an unseen process of uid 107"),
])
def test_an_unfit_server_is_refused_naming_it_and_the_fix(topology: Topology, tmp_path: Path, answer: str,
                                                          words: str, monkeypatch: pytest.MonkeyPatch) -> None:
    problems = provider_with(topology, tmp_path, Servers({"pg1": answer}), monkeypatch).preflight()
    assert len(problems) == 1 and words in problems[0], problems


def test_the_lab_s_own_units_may_hold_its_ports_and_data(topology: Topology, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    ours = (DEBIAN + "marker srv\ncluster /var/lib/postgresql/15/main\n"
            'ss LISTEN 0 244 10.70.0.12:5432 0.0.0.0:* users:(("postgres",pid=90,fd=6))\nunit 90 patroni.service\n')
    assert provider_with(topology, tmp_path, Servers({"pg1": ours}), monkeypatch).preflight() == []
    # Root in a container may not see other users' processes: on the lab's own server, a listener
    # ss cannot name is the lab's.
    unseen = ours + "ss LISTEN 0 4096 10.70.0.12:8008 0.0.0.0:* uid:107 ino:2231 sk:1\n"
    assert provider_with(topology, tmp_path, Servers({"pg1": unseen}), monkeypatch).preflight() == []
    strange = ours.replace("unit 90 patroni.service", "unit 90 postgresql@15-main.service")
    problems = provider_with(topology, tmp_path, Servers({"pg1": strange}), monkeypatch).preflight()
    assert len(problems) == 1 and "5432 (postgres) by postgresql@15-main.service" in problems[0]


def test_up_refuses_an_unfit_server_with_exit_2_before_changing_anything(
        topology: Topology, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab = Lab(topology, tmp_path / "pglab.yml")
    servers = Servers({"dcs": DEBIAN.replace("os debian 12", "os debian 11")}, )
    monkeypatch.setattr(lab.provider, "_ssh", servers(lab.provider))  # type: ignore[arg-type]
    with pytest.raises(InputError, match=r"^dcs \(10.70.0.11\) runs Debian GNU/Linux 12 \(bookworm\), not Debian 12"):
        lab.up()
    assert all(command.startswith('S=""') for _, command in servers.commands)  # only the probes ran
    assert not lab.dir.exists()


def test_the_probe_is_a_shell_script_that_runs(tmp_path: Path) -> None:
    script = host_checks.probe_script(["/nonexistent/15/main"], ["/nonexistent/etc/15/main"])
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    facts = host_checks.parse(done.stdout)
    assert facts.os_id != "unknown" and facts.clusters == [] and facts.marker is None


def test_a_closed_ssh_port_is_refused_by_the_cli_with_exit_2(tmp_path: Path, key: Path) -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    text = (LAB.replace("KEY", str(key)).replace("10.70.0.", "127.0.70.").replace("  user: admin\n", "  port: 1\n")
            .replace("pg2: {user: root, become: false, port: 2222}", "pg2: {port: 1}"))
    (tmp_path / "pglab.yml").write_text(text.replace("subnet: 127.0.70.0/24", "subnet: 127.0.70.0/24, "
                                                     "loopback: 127.0.71.0/24"))
    result = CliRunner().invoke(cli.main, ["up", "-f", str(tmp_path / "pglab.yml")])
    assert result.exit_code == 2, result.output
    assert "dcs (127.0.70.11) did not answer SSH as debian on port 1" in result.output
    assert not (tmp_path / ".pglab" / "srv" / "hosts").exists()


# Claiming, recording, releasing ------------------------------------------------------------------
def test_create_records_what_each_server_had_then_marks_it(topology: Topology, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    servers = Servers()
    provider = provider_with(topology, tmp_path, servers, monkeypatch)
    provider.create()
    record = json.loads((provider.lab_dir / "hosts" / "pg1.json").read_text())
    assert record == {"address": "10.70.0.12", "paths_before": ["/etc/haproxy"],
                      "empty_before": ["/var/lib/pgbackrest"], "packages_before": ["openssh-server", "sudo"],
                      "installed": []}
    assert any("/etc/pglab/lab" in c and "srv" in c for n, c in servers.commands if n == "pg1")
    assert provider.is_created()
    servers.packages["pg1"] += ["postgresql-15", "libpq5"]
    provider.deployed()
    assert provider.installed_by_lab() == {"dcs": [], "pg1": ["libpq5", "postgresql-15"], "pg2": []}


def test_destroy_asks_naming_the_servers_and_removes_what_pglab_made(topology: Topology, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    servers = Servers()
    provider = provider_with(topology, tmp_path, servers, monkeypatch)
    assert provider.destroy_warning() is None  # nothing claimed yet
    provider.create()
    servers.packages["pg1"] += ["postgresql-15"]
    provider.deployed()
    warning = provider.destroy_warning()
    assert warning == ("This removes lab srv's services, data and what pglab made there, and the 1 package(s) "
                       "pglab installed from the servers dcs (10.70.0.11), pg1 (10.70.0.12), pg2 (10.70.0.13)")
    servers.commands.clear()
    provider.destroy()
    pg1 = " ".join(c for n, c in servers.commands if n == "pg1")
    assert "systemctl disable --now patroni pgbackrest pgbouncer" in pg1
    assert "/etc/systemd/system/patroni.service" in pg1 and "/var/lib/postgresql/15" in pg1
    assert "apt-get purge -y -q postgresql-15" in pg1
    removed = pg1.split("rm -rf", 1)[1].split(";")[0]
    assert "/etc/haproxy" not in removed  # it was there before the lab, with content
    assert "/var/lib/pgbackrest" not in removed and "find /var/lib/pgbackrest -mindepth 1 -delete" in pg1
    assert "apt-get purge" not in " ".join(c for n, c in servers.commands if n == "dcs")
    assert not provider.is_created()


def test_destroy_keeps_the_packages_when_asked(topology: Topology, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    servers = Servers()
    provider = provider_with(topology, tmp_path, servers, monkeypatch)
    provider.create()
    servers.packages["pg1"] += ["postgresql-15"]
    provider.deployed()
    provider.keep_packages = True
    assert "package" not in (provider.destroy_warning() or "")
    provider.destroy()
    assert not any("apt-get purge" in c for _, c in servers.commands)


def test_the_cli_destroy_needs_yes_without_a_terminal(topology: Topology, tmp_path: Path, key: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    lab_file = tmp_path / "pglab.yml"
    lab_file.write_text(LAB.replace("KEY", str(key)))
    record = tmp_path / ".pglab" / "srv" / "hosts" / "pg1.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"address": "10.70.0.12", "paths_before": [], "packages_before": [],
                                  "installed": []}))
    result = CliRunner().invoke(cli.main, ["destroy", "-f", str(lab_file)])
    assert result.exit_code == 2, result.output
    assert "servers pg1 (10.70.0.12). Confirm with --yes" in " ".join(result.output.split())
    assert record.exists()


def test_a_changed_task_says_which_packages_and_files_it_touches() -> None:
    apt = ansible.task_change("pg1", "Install the missing packages", {
        "changed": True, "stdout": "Reading package lists...\nInst libpq5 (15.8-0+deb12u1 Debian:12)\n"
                                   "Inst postgresql-15 (15.8-0+deb12u1 Debian:12)\nConf libpq5 (15.8)\n"})
    assert apt.packages == ("libpq5", "postgresql-15") and apt.files == ()
    files = ansible.task_change("pg1", "Write the Patroni configuration", {
        "changed": True, "changed_files": ["patroni.yml"], "invocation": {"module_args": {"directory": "/etc/patroni"}},
        "diff": [{"before_header": "/etc/x.conf", "after_header": "/etc/x.conf"}]})
    assert files.files == ("/etc/x.conf", "/etc/patroni/patroni.yml")


def test_up_check_is_for_machines_that_exist_and_says_what_would_change(tmp_path: Path) -> None:
    local = Lab(parse(default_yaml()), tmp_path / "pglab.yml")
    with pytest.raises(InputError, match="needs machines that exist before `up`"):
        local.check_up()
    plan = UpCheck(4.2, [NodePlan("dcs", [], [], []),
                         NodePlan("pg1", ["postgresql-15"], ["Install the missing packages", "Write"],
                                  ["/etc/patroni/patroni.yml"], "Enable and start patroni: Could not find")],
                   "/x/stdout")
    text = ui.up_check_text(plan)
    assert "dcs: nothing would change" in text
    assert "pg1: 2 task(s) would change something\n  would install 1 package(s): postgresql-15" in text
    assert "would write: /etc/patroni/patroni.yml" in text and "check mode stopped at Enable and start patroni" in text
    assert text.endswith("Nothing was changed (4.2 s). Full Ansible output: /x/stdout")
