"""The pooler as a lab gets it: the ``pooler:`` section, PgBouncer's configuration (TLS on both
sides, its own node's PostgreSQL over TCP), its userlist readable by the service user alone,
and HAProxy's pooled and direct listeners."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pglab import catalog, paths, stacks, write_clock
from pglab.components import pooler
from pglab.drills import probe
from pglab.lab import Lab
from pglab.providers import local
from pglab.stacks.base import StackSite
from tests.conftest import pooler_off, write_topology
from tests.unit.test_tls_roles import DefaultVmConfigs


def _pooled_yaml(**kwargs: str) -> str:
    text = catalog.default_yaml(**kwargs)  # type: ignore[arg-type]
    assert "\n  default_pool_size: 20 " in text
    return text.replace("\n  default_pool_size: 20 ", "\n  default_pool_size: 7 ")


def _without_the_section(text: str) -> str:
    lines = text.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("pooler:")))
    end = next(i for i in range(start + 1, len(lines)) if not lines[i].startswith("  "))
    return "\n".join(lines[:start] + lines[end:]) + "\n"


@pytest.mark.parametrize("stack", ["patroni", "pg_auto_failover"])
def test_a_lab_without_the_section_gets_the_pooler_and_enabled_false_turns_it_off(stack: str) -> None:
    bare = catalog.parse(_without_the_section(catalog.default_yaml(stack=stack)))  # type: ignore[arg-type]
    assert pooler.settings(bare) == pooler.PoolerSettings() and pooler.enabled(bare)
    assert not pooler.enabled(catalog.parse(pooler_off(catalog.default_yaml(stack=stack))))  # type: ignore[arg-type]
    pooled = catalog.parse(_pooled_yaml(stack=stack))
    assert pooler.enabled(pooled) and pooler.settings(pooled).default_pool_size == 7
    assert pooled.ports.pooler == 6432
    assert not pooler.enabled(catalog.parse(_pooled_yaml(stack=stack).replace("tls: true", "tls: false")))


def test_pg_auto_failover_s_write_endpoint_stays_the_direct_multi_host_uri() -> None:
    topo = catalog.parse(catalog.default_yaml(stack="pg_auto_failover", loopback="127.0.41.0/24"))
    assert pooler.enabled(topo)  # PgBouncer runs on its data nodes, beside the direct URI
    addresses = {n.name: str(topo.loopback_address(n)) for n in topo.nodes}
    client = stacks.spec("pg_auto_failover").client().from_site(StackSite(topo, addresses, {}))
    write = client.client_endpoints()["write"]
    assert (write.port, write.target_session_attrs) == (5432, "read-write") and "write_direct" not in (
        client.client_endpoints())


def test_the_pooled_patroni_lab_routes_5000_and_5001_through_the_poolers_and_5002_5003_direct() -> None:
    topo = catalog.parse(_pooled_yaml())
    routes = [(r.name, r.port, r.server_port, r.pooler_port) for r in stacks.spec("patroni").routes(topo)]
    assert routes == [("primary", 5000, 6432, 6432), ("replicas", 5001, 6432, 6432),
                      ("primary_direct", 5002, 5432, None), ("replicas_direct", 5003, 5432, None)]
    plain = catalog.parse(pooler_off(catalog.default_yaml()))
    assert [(r.name, r.server_port) for r in stacks.spec("patroni").routes(plain)] == [
        ("primary", 5432), ("replicas", 5432)]


def test_every_data_node_runs_pgbouncer_and_reloads_it_for_new_certificates() -> None:
    topo = catalog.parse(_pooled_yaml())
    plan = [(r.node.name, r.service, r.tasks_from, r.signal) for r in stacks.tls_rotation(topo)
            if r.service == pooler.SERVICE]
    assert plan == [(name, "pgbouncer", "reload", "HUP") for name in ("pg1", "pg2", "pg3")]
    assert [s.node.name for s in stacks.tls_services(topo) if s.service == pooler.SERVICE] == ["pg1", "pg2", "pg3"]


def test_the_userlist_is_written_0600() -> None:
    tasks = yaml.safe_load((paths.roles_dir() / "pgbouncer" / "tasks" / "config.yml").read_text())
    files = {f["name"]: f["mode"] for f in tasks[0]["pglab_files"]["files"]}
    assert files["{{ pgbouncer_userlist_file | basename }}"] == "0600"


def test_pgbouncer_ini_and_haproxy_cfg_of_a_pooled_vm_lab(default_vm_configs: DefaultVmConfigs) -> None:
    configs = default_vm_configs(tls=True)  # the default lab: the pooler on
    ini = configs["pgbouncer"]["pg1"]
    for line in ("* = host=192.168.11.120 port=5432", "listen_addr = 192.168.11.120", "listen_port = 6432",
                 "auth_type = scram-sha-256", "pool_mode = transaction", "client_tls_sslmode = require",
                 "server_tls_sslmode = verify-full", "unix_socket_dir ="):
        assert line in ini.splitlines(), line
    cfg = configs["haproxy"]["haproxy"]
    assert "listen primary_direct\n    bind 192.168.11.101:5002" in cfg
    assert "server pg1 192.168.11.120:6432 check port 8008" in cfg
    assert "tcp-check connect port 6432\n" in cfg


def test_before_up_the_local_provider_names_the_direct_and_the_pooler_ports_another_process_holds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "_listening", lambda host, port: True)  # everything is taken
    path = write_topology(tmp_path, name="busyports")
    pooled_text = path.read_text()
    path.write_text(pooler_off(pooled_text))
    plain = Lab.from_file(path).provider
    assert isinstance(plain, local.LocalProvider)
    assert not any(f":{port} " in line for line in plain.busy_ports() for port in (5002, 5003, 6432))
    path.write_text(pooled_text)
    busy = Lab.from_file(path).provider.busy_ports()  # type: ignore[attr-defined]
    haproxy = [line for line in busy if "(haproxy, " in line]
    assert [line.split(":")[1].split()[0] for line in haproxy] == ["5000", "5001", "7000", "5002", "5003"]
    assert [line.split()[1] for line in busy if ":6432 " in line] == ["(pg1,", "(pg2,", "(pg3,"]


def test_a_session_whose_startup_options_did_not_arrive_bounds_each_attempt_itself() -> None:
    # Direct: libpq's options set the session's statement_timeout; nothing to add but the isolation.
    assert probe.opening_sql(None, 1000, 1000) is None
    assert probe.opening_sql("REPEATABLE READ", 1000, 1000) == "BEGIN ISOLATION LEVEL REPEATABLE READ"
    # Through PgBouncer the session has none: SET LOCAL in each attempt's transaction.
    assert probe.opening_sql(None, 1000, 0) == "BEGIN; SET LOCAL statement_timeout = 1000"
    assert probe.opening_sql("REPEATABLE READ", 1000, 0) == (
        "BEGIN ISOLATION LEVEL REPEATABLE READ; SET LOCAL statement_timeout = 1000")
    assert write_clock.bounded_write_sql(1.0) == f"SET LOCAL statement_timeout = 1000; {write_clock.WRITE_SQL}"
