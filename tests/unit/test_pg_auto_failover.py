"""The pg_auto_failover stack without processes: its default lab on both providers, the stack
registry, the client endpoints, and the service names the roles and the vagrant provider share."""

from __future__ import annotations

from pathlib import Path

import yaml

from pglab import paths, render
from pglab.catalog import default_yaml, parse
from pglab.providers.vagrant import VagrantProvider
from pglab.stacks import stack_class
from pglab.stacks.base import ClientEndpoint, StackSite
from pglab.stacks.pgaf import PgAutoFailoverStack

PGAF = "pg_auto_failover"


def _service_name(role: str) -> str:
    tasks = [task for path in sorted((paths.roles_dir() / role / "tasks").glob("*.yml"))
             for task in yaml.safe_load(path.read_text()) or []]
    runs = [t for t in tasks if t.get("ansible.builtin.import_role", {}).get("tasks_from") == "service"]
    assert len(runs) == 1, f"{role} runs one service"
    return str(runs[0]["vars"]["pglab_service_name"])


def test_the_registry_picks_the_client_by_stack() -> None:
    assert stack_class(PGAF) is PgAutoFailoverStack
    assert stack_class("patroni").__name__ == "PatroniStack"


def test_endpoints_are_the_multi_host_uris() -> None:
    topo = parse(default_yaml(stack=PGAF, loopback="127.0.41.0/24"))
    addresses = {n.name: str(topo.loopback_address(n)) for n in topo.nodes}
    stack = PgAutoFailoverStack.from_site(StackSite(topo, addresses, {}))
    endpoints = stack.client_endpoints()
    hosts = "127.0.41.152:5432,127.0.41.153:5432"
    assert endpoints["write"].uri() == f"postgresql://postgres@{hosts}/postgres?target_session_attrs=read-write"
    assert endpoints["read"].uri() == f"postgresql://postgres@{hosts}/postgres?target_session_attrs=standby"
    assert endpoints["write"].host == "127.0.41.152,127.0.41.153"
    assert ClientEndpoint(("h",), 5000).uri("u", "d") == "postgresql://u@h:5000/d"


def test_vagrant_units_are_the_services_the_roles_run(tmp_path: Path) -> None:
    topo = parse(default_yaml(stack=PGAF, provider="vagrant"))
    provider = VagrantProvider(topo, tmp_path)
    # Both carry pgBackRest's TLS server: the monitor node holds the backup repository.
    assert provider.units(topo.node("monitor")) == [_service_name("pg_auto_failover_monitor"), "pgbackrest"]
    assert provider.units(topo.node("pg1")) == [_service_name("pg_auto_failover"), "pgbackrest", "pgbouncer"]


def test_a_vagrant_lab_renders_with_systemd_and_the_formation(tmp_path: Path) -> None:
    topo = parse(default_yaml(stack=PGAF, provider="vagrant"))
    provider = VagrantProvider(topo, tmp_path)
    variables = render.lab_variables(topo, provider)
    assert variables["pglab_service_manager"] == "systemd"
    assert variables["pglab_stack"] == PGAF
    assert variables["pg_auto_failover_monitor_port"] == 5431
    assert variables["pg_auto_failover_formation"] == "default"
    hosts = render.inventory_hosts(topo, provider)["all"]
    assert list(hosts["children"]["pglab_monitor"]["hosts"]) == ["monitor"]
    assert list(hosts["children"]["pglab_postgres"]["hosts"]) == ["pg1", "pg2"]
    (text,) = provider.rendered_files().values()
    assert text.count("config.vm.define") == 3


def test_the_monitor_uri_carries_the_connect_timeout() -> None:
    # pg_autoctl sets PGCONNECT_TIMEOUT=2 itself before each connection, so only a connect_timeout
    # in the URI lets a keeper on a slow VM wait longer for the monitor (libpq prefers the URI's).
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    defaults = yaml.safe_load((paths.roles_dir() / PGAF / "defaults" / "main.yml").read_text())
    variables = {name: trust_as_template(value) if isinstance(value, str) else value
                 for name, value in defaults.items()}
    variables.update(groups={"pglab_monitor": ["monitor"]}, hostvars={"monitor": {"pglab_address": "10.0.0.1"}},
                     inventory_hostname="pg1", pg_auto_failover_tls=True, pg_auto_failover_tls_ca_file="/ca.crt",
                     pg_auto_failover_connect_timeout=20)
    uri = Templar(loader=DataLoader(), variables=variables).template(variables["pg_auto_failover_monitor_uri"])
    assert uri == ("postgres://autoctl_node@10.0.0.1:5431/pg_auto_failover"
                   "?sslmode=verify-full&sslrootcert=/ca.crt&connect_timeout=20")


def test_the_monitor_settings_join_its_health_checks_and_win_over_them() -> None:
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    role = paths.roles_dir() / "pg_auto_failover_monitor"
    variables = yaml.safe_load((role / "defaults" / "main.yml").read_text())
    variables["pg_auto_failover_monitor_parameters"] = {"shared_buffers": "64MB",
                                                        "pgautofailover.health_check_period": 3000}
    source = (role / "templates" / "postgresql-pglab.conf.j2").read_text()
    lines = Templar(loader=DataLoader(), variables=variables).template(trust_as_template(source)).splitlines()
    assert "pgautofailover.health_check_period = '3000'" in lines
    assert "pgautofailover.node_considered_unhealthy_timeout = '5000'" in lines
    assert "shared_buffers = '64MB'" in lines
