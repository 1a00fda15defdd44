"""PgBouncer on every data node of the session lab (the default topology has it): HAProxy's 5000 /
5001 go through the poolers over TLS (verify-full), plaintext is refused, 5002 / 5003 stay direct,
and a switchover through the pooler leaves no client on the demoted primary. That a second `up`
changes nothing and that verify's pooler checks pass on this lab, test_lab.py and test_verify.py
prove on the same lab."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from pglab import sql, write_clock
from pglab.components import pooler
from pglab.drills import probe
from pglab.lab import Lab
from pglab.waiting import wait_until
from tests.integration.drilling import run_drill


@pytest.fixture(scope="module", autouse=True)
def healthy(lab: Lab) -> None:
    lab.wait_healthy(90)  # a module before this one may have just ended a fault


def _server(lab: Lab, host: str, port: int) -> tuple[bool, str]:
    with sql.session(host=host, port=port, dbname="postgres", **lab.connect_kwargs()) as conn:
        row = conn.execute("SELECT pg_is_in_recovery(), host(inet_server_addr())").fetchone()
    assert row is not None
    return bool(row[0]), str(row[1])


def test_the_endpoints_name_the_pooled_and_the_direct_paths(lab: Lab) -> None:
    endpoints = lab.endpoints()
    assert ":5000/" in endpoints["write"] and ":5002/" in endpoints["write_direct"]
    assert ":5001/" in endpoints["read"] and ":5003/" in endpoints["read_direct"]
    assert "sslmode=verify-full" in endpoints["write"]


def test_writes_through_the_pooler_land_on_the_leader_and_reads_on_a_replica(lab: Lab) -> None:
    leader = lab.stack().leader()
    assert leader is not None
    haproxy = lab.address(lab.topology.with_role("haproxy")[0].name)
    ports = lab.topology.ports
    assert _server(lab, haproxy, ports.haproxy_primary) == (False, lab.address(leader))
    assert _server(lab, haproxy, ports.haproxy_primary_direct) == (False, lab.address(leader))
    in_recovery, server = _server(lab, haproxy, ports.haproxy_replicas)
    assert in_recovery and server != lab.address(leader)


def test_the_pooler_refuses_plaintext(lab: Lab) -> None:
    node = lab.topology.with_role("postgres")[0]
    kwargs = {**lab.connect_kwargs(), "sslmode": "disable"}
    kwargs.pop("sslrootcert", None)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(host=lab.address(node.name), port=lab.topology.ports.pooler, dbname="postgres", **kwargs)


def test_the_admin_console_shows_the_pools(lab: Lab) -> None:
    node = lab.topology.with_role("postgres")[0]
    _server(lab, lab.address(node.name), lab.topology.ports.pooler)
    found = pooler.pools(lab.address(node.name), lab.topology.ports.pooler, lab.superuser_password(),
                         lab.ca_file)
    assert any(p.pool_mode == "transaction" for p in found)


def _running(lab: Lab, text: str) -> int:
    """Backends on the leader running a statement that contains ``text`` (seen directly)."""
    with sql.session(**lab.writes_conninfo("direct")) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s "
                           "AND pid <> pg_backend_pid()", (f"%{text}%",)).fetchone()
    return int(row[0]) if row else 0


def test_a_pooled_client_s_statements_stay_bounded_by_its_timeout(lab: Lab) -> None:
    conninfo = lab.writes_conninfo("pooler")
    # PgBouncer drops libpq's startup options: a session through it has no statement_timeout...
    with sql.session(options="-c statement_timeout=1000", **conninfo) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)
    # ... so the probe bounds each attempt's transaction itself: a stuck statement is cancelled by
    # the server after the client's timeout, and frees its pooled server connection.
    marker = "pglab-bound-check"
    seen: list[str] = []

    def stuck(conn: psycopg.Connection, _id: int) -> None:
        seen.append(str((conn.execute("SHOW statement_timeout").fetchone() or ("",))[0]))
        conn.execute(f"SELECT pg_sleep(60) /* {marker} */")

    writer = probe.WriteProbe(conninfo, timeout=1.0, operation=stuck)
    writer.start()
    wait_until(lambda: (_running(lab, marker) > 0, "no stuck statement yet"), 10, "a stuck statement")
    writer.stop()
    assert seen and set(seen) == {"1s"}
    wait_until(lambda: (_running(lab, marker) == 0, f"{_running(lab, marker)} still running"), 10,
               "the server to cancel the stuck statements")
    # The write clock's bound rides in its query string: cancelled there too, through the pooler.
    with sql.session(**conninfo) as conn:
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute(write_clock.bounded_write_sql(0.3).replace(write_clock.WRITE_SQL, "SELECT pg_sleep(5)"))
        # SET LOCAL ended with its transaction: nothing stays on the pooled server connection.
        assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)


def test_userlist_is_the_service_user_s_alone(lab: Lab) -> None:
    node = lab.topology.with_role("postgres")[0]
    userlist = Path(lab.provider.node_root(node)) / "etc/pgbouncer/userlist.txt"
    assert oct(userlist.stat().st_mode & 0o777) == "0o600"


def test_a_pooled_client_reaches_the_new_leader_after_a_switchover(lab: Lab) -> None:
    before = lab.stack().leader()
    lab.stack().switchover()
    haproxy = lab.address(lab.topology.with_role("haproxy")[0].name)
    ports = lab.topology.ports
    wait_until(lambda: (lab.stack().leader() not in (None, before), "the old leader leads"), 60, "a new leader")
    leader = lab.stack().leader()
    assert leader is not None
    # HAProxy's health checks flip each path on their own clock: wait for both before comparing.
    for port, path in ((ports.haproxy_primary, "the pooler"), (ports.haproxy_primary_direct, "the direct path")):
        wait_until(lambda port=port: sql.writable(haproxy, port, lab.superuser_password(), lab.libpq_tls()),
                   30, f"writes through {path}")
    assert _server(lab, haproxy, ports.haproxy_primary) == _server(lab, haproxy, ports.haproxy_primary_direct)


def test_a_switchover_through_the_pooler_leaves_no_client_on_the_demoted_primary(lab: Lab, tmp_path: Path) -> None:
    lab.wait_healthy(60)
    summary = run_drill(lab, tmp_path, "switchover", "--via", "pooler", "--clients", "4")
    [row] = summary["summary"]
    [line] = summary["drills"]
    assert line["via"] == "pooler" and row["setting"].endswith("via pooler")
    assert row["recovered"] == 1 and row["lost"] == 0 and row["stale_primary_errors"] == 0, line["errors"]


def test_a_killed_pooler_on_the_leader_comes_back_and_loses_nothing(lab: Lab, tmp_path: Path) -> None:
    lab.wait_healthy(60)
    summary = run_drill(lab, tmp_path, "pooler-kill", "--down", "2", "--clients", "2")
    [line] = summary["drills"]
    assert line["ok"] and line["via"] == "pooler" and line["lost"] == 0, line["problem"]


def test_certs_rotate_reloads_the_poolers_without_a_restart(lab: Lab) -> None:
    node = lab.topology.with_role("postgres")[0]
    before = lab.provider.services(node)
    done = subprocess.run([sys.executable, "-m", "pglab.cli", "certs", "rotate", "-f", str(lab.topology_file)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _server(lab, lab.address(node.name), lab.topology.ports.pooler)[1] == lab.address(node.name)
    assert lab.provider.services(node).keys() == before.keys()
