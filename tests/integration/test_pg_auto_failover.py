"""A real pg_auto_failover lab (monitor, primary, secondary) on the second test range: up ends
healthy with the multi-host URIs, status --json reports them, rows written through the write URI
reach the secondary, a second up changes nothing, a switchover moves the primary (also with a
lowered hot-standby setting pending), a point-in-time restore keeps exactly the rows before its
target, a certificate rotation reaches the monitor and every data node, the network and stack
fault kinds (loss, a killed postmaster, the monitor lost, the secondary's data directory lost and
rebuilt by pglab) leave nothing behind, and destroy leaves no process, port or file. One lab for
all of them: each `up` of this stack costs a minute."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pglab import operations, sql
from pglab.drills import frame, kinds
from pglab.drills.crowd import CrowdSpec
from pglab.lab import Lab, UpResult
from pglab.providers.local import LocalProvider, _environments
from pglab.tls import endpoints
from tests.conftest import SECOND_LOOPBACK, lab_up, loopback_address, write_topology
from tests.integration.drilling import run_drill
from tests.integration.rows import write_rows_and_pick_a_target


@pytest.fixture(scope="module")
def pgaf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, UpResult]]:
    path = write_topology(tmp_path_factory.mktemp("pgaf"), name="itest-pgaf", loopback=SECOND_LOOPBACK,
                          stack="pg_auto_failover")
    with lab_up(path, "the pg_auto_failover test", timeout=180) as up:
        yield up


def _listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def test_up_ends_with_a_primary_a_secondary_and_the_uris(pgaf: tuple[Lab, UpResult]) -> None:
    lab, result = pgaf
    assert result.health.healthy, result.health.problems
    # The topology's max_connections: 100 is what the nodes already run: nothing to report as applied.
    assert result.parameters_changed == {}
    assert sorted((m.current_state, m.assigned_state) for m in result.health.members) == [
        ("primary", "primary"), ("secondary", "secondary")]
    hosts = f"{loopback_address(152, second=True)}:5432,{loopback_address(153, second=True)}:5432"
    tls = f"&sslmode=verify-full&sslrootcert={lab.ca_file}"
    assert result.dsn == f"postgresql://postgres@{hosts}/postgres?target_session_attrs=read-write{tls}"
    assert result.replicas_dsn == f"postgresql://postgres@{hosts}/postgres?target_session_attrs=standby{tls}"


def test_status_json_reports_members_and_endpoints(pgaf: tuple[Lab, UpResult]) -> None:
    lab, result = pgaf
    out = subprocess.run([sys.executable, "-m", "pglab.cli", "status", "--json", "-f", str(lab.topology_file)],
                         check=True, capture_output=True, text=True).stdout
    status = json.loads(out)
    assert status["healthy"] is True
    assert status["endpoints"]["write"] == result.dsn and status["endpoints"]["read"] == result.replicas_dsn
    assert status["endpoints"]["pgpass"] == str(lab.pgpass)
    assert "target_session_attrs=read-write" in status["uri"]
    # Every node runs pgBackRest's TLS server too (the monitor holds the backup repository), and
    # every data node its PgBouncer.
    everywhere = {"pgautofailover": "RUNNING", "pgbackrest": "RUNNING"}
    assert status["services"] == {"monitor": everywhere, **{n: {**everywhere, "pgbouncer": "RUNNING"}
                                                            for n in ("pg1", "pg2")}}


def test_rows_written_through_the_write_uri_reach_the_secondary(pgaf: tuple[Lab, UpResult]) -> None:
    lab, result = pgaf
    env = {**os.environ, "PGPASSFILE": str(lab.pgpass)}
    sql = "DROP TABLE IF EXISTS itest; CREATE TABLE itest AS SELECT generate_series(1, 50) AS i"
    subprocess.run(["psql", result.dsn, "-XAtc", sql], check=True, env=env, capture_output=True)
    secondary = next(m for m in result.health.members if m.current_state == "secondary")
    deadline = time.monotonic() + 10
    while True:
        with psycopg.connect(host=secondary.host, port=5432, dbname="postgres", **lab.connect_kwargs()) as conn:
            found = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 'itest'").fetchone()[0]  # type: ignore[index]
            if found:
                assert conn.execute("SELECT count(*) FROM itest").fetchone()[0] == 50  # type: ignore[index]
                break
        assert time.monotonic() < deadline, f"table itest not on {secondary.name} within 10 s"
        time.sleep(0.2)


def test_second_up_changes_nothing(pgaf: tuple[Lab, UpResult]) -> None:
    lab, _ = pgaf
    result = lab.up(timeout=60)
    assert result.changed == 0
    assert result.parameters_changed == {}
    assert result.health.healthy


def test_switchover_moves_the_primary(pgaf: tuple[Lab, UpResult]) -> None:
    lab, _ = pgaf
    before = lab.stack().leader()
    result = operations.switchover(lab)
    assert result.details["old_leader"] == before
    assert result.details["new_leader"] not in (None, before)
    assert result.details["new_timeline"] > result.details["old_timeline"]
    assert operations.writes_ok(lab)[0]


def test_a_drill_with_clients_keeps_every_append_list_through_a_switchover(pgaf: tuple[Lab, UpResult]) -> None:
    """Three writers through the formation's read-write URI, a reader following them on the
    standby URI: the same drill and checks as on Patroni."""
    lab, _ = pgaf
    result = frame.run(lab, kinds.make("switchover"), workload="append", spec=CrowdSpec(clients=3, readers=1))
    line = result.as_json()
    assert result.ok, (result.problem, line["anomalies"])
    assert line["checks"] == {"lost": 0, "split_brain": 0, "append_duplicate": 0, "append_order": 0}
    assert len(line["primaries"]) == 2 and line["replication"] == "sync"  # a standby in the quorum
    assert line["staleness"]["before"]["followed"] > 0


def test_a_switchover_with_a_lowered_setting_pending_leaves_every_node_running(pgaf: tuple[Lab, UpResult]) -> None:
    # The demoted primary restarts as a standby: with max_connections lowered in its files but not
    # yet applied, PostgreSQL refused to start it ("recovery aborted because of insufficient
    # parameter settings"); the switchover now applies the lowered value first.
    lab, _ = pgaf
    password = lab.superuser_password()
    operations.set_config(lab, {"max_connections": "90"})
    assert all(m.pending_restart for m in lab.stack().members())
    before = lab.stack().leader()
    result = operations.switchover(lab, timeout=120)
    assert result.summary.startswith("applied the pending max_connections 100 -> 90 first"), result.summary
    assert result.details["new_leader"] not in (None, before)
    health = lab.wait_healthy(60)
    assert not any(m.pending_restart for m in health.members)
    running = {n.name: sql.query(lab.address(n.name), lab.topology.ports.postgres, password,
                                 "SHOW max_connections")[0][0] for n in lab.topology.with_role("postgres")}
    assert running == {"pg1": "90", "pg2": "90"}
    assert operations.writes_ok(lab)[0]


def test_restore_to_a_moment_between_two_rows_keeps_exactly_the_rows_before(pgaf: tuple[Lab, UpResult]) -> None:
    # Issue 17 on pg_auto_failover: the monitor forgets the formation's nodes, the restored primary
    # registers again over its data, the secondary is cloned from it; the monitor ends with one
    # primary and one secondary on the new timeline.
    # After the switchovers above: the replay starts from the full backup `up` took on timeline 1
    # and crosses every promotion since, so each primary in turn must have archived its WAL (the
    # settings file pg_rewind copies once named the other node's pgBackRest configuration).
    lab, _ = pgaf
    old_timeline = max(m.timeline or 0 for m in lab.wait_healthy(120).members)
    target = write_rows_and_pick_a_target(lab, rows=4, first_discarded=3)  # after row 2's commit
    done = subprocess.run([sys.executable, "-m", "pglab.cli", "restore", "--to", target.isoformat(), "--yes",
                           "--json", "-f", str(lab.topology_file)], capture_output=True, text=True, timeout=420)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout)
    assert [p["name"] for p in result["phases"]] == [
        "archive", "stop", "forget", "restore", "recover", "leader", "replicas", "healthy"]
    assert result["new_timeline"] > old_timeline
    with sql.session(**lab.writes_conninfo()) as conn:
        assert [r[0] for r in conn.execute("SELECT id FROM restore_rows ORDER BY id")] == [1, 2]
        conn.execute("INSERT INTO restore_rows (id) VALUES (3)")  # writable on the new timeline
    health = lab.wait_healthy(120)
    assert health.healthy and len(health.streaming_replicas) == 1
    assert sorted((m.current_state, m.assigned_state) for m in health.members) == [
        ("primary", "primary"), ("secondary", "secondary")]
    # The secondary follows the new history, with none of the restore's recovery settings.
    [secondary] = health.streaming_replicas
    with psycopg.connect(host=lab.address(secondary.name), port=lab.topology.ports.postgres, dbname="postgres",
                         **lab.connect_kwargs()) as conn:
        assert conn.execute("SELECT pg_is_in_recovery(), current_setting('recovery_target_time')").fetchone() == (
            True, "")


def test_certs_rotate_reloads_the_monitor_and_every_data_node(pgaf: tuple[Lab, UpResult]) -> None:
    lab, _ = pgaf
    result = frame.run(lab, kinds.make("certs"), timeout=180)
    assert result.ok, result.problem
    assert result.tally.lost == []
    assert endpoints.stale(lab) == []


def _ruleset() -> str:
    return subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout


def test_loss_on_the_primary(pgaf: tuple[Lab, UpResult], tmp_path: Path) -> None:
    lab, _ = pgaf
    lab.wait_healthy(120)
    drilled = run_drill(lab, tmp_path, "loss", "--percent", "20", "--for", "6")["drills"][0]
    assert drilled["lost"] == 0 and drilled["commit_ms"]["before"]["commits"] > 0
    assert drilled["fault"]["dropped_packets"] > 0
    assert "pglab_net_" not in _ruleset()


def test_postgres_kill_on_the_primary(pgaf: tuple[Lab, UpResult], tmp_path: Path) -> None:
    lab, _ = pgaf
    lab.wait_healthy(120)
    drilled = run_drill(lab, tmp_path, "postgres-kill")["drills"][0]
    assert drilled["outcome"] in ("restarted in place", "failed over") and drilled["lost"] == 0


def test_the_monitor_lost_leaves_the_primary_writing(pgaf: tuple[Lab, UpResult], tmp_path: Path) -> None:
    lab, _ = pgaf
    lab.wait_healthy(120)
    drilled = run_drill(lab, tmp_path, "dcs-loss", "--for", "15")["drills"][0]
    assert drilled["store"] == "the monitor" and drilled["leader_kept_writes"]
    assert all(state == "RUNNING" for state in lab.provider.services(lab.node("monitor")).values())


def test_pgdata_lost_on_the_secondary_is_rebuilt_by_pglab(pgaf: tuple[Lab, UpResult], tmp_path: Path) -> None:
    # The keeper does not make a lost data directory anew by itself: pglab rebuild drops the node
    # from the monitor and creates it again after the grace.
    lab, _ = pgaf
    lab.wait_healthy(120)
    summary = run_drill(lab, tmp_path, "pgdata-lost", "--grace", "15")
    [drilled] = summary["drills"]
    assert drilled["rebuilt_after_s"] is not None and drilled["lost"] == 0
    assert drilled["node"] != drilled["old_leader"]


def test_destroy_leaves_no_process_port_or_file(pgaf: tuple[Lab, UpResult]) -> None:
    lab, _ = pgaf
    provider = lab.provider
    assert isinstance(provider, LocalProvider)
    lab.destroy()
    marker = f"SUPERVISOR_SERVER_URL=unix://{provider.socket}".encode()
    assert [pid for pid, env in _environments() if marker in env] == []
    busy = [(host, port) for host, port in [(loopback_address(151, second=True), 5431),
                                            (loopback_address(152, second=True), 5432),
                                            (loopback_address(153, second=True), 5432)]
            if _listening(host, port)]
    assert busy == []
    assert not lab.dir.exists() and not provider.run_dir.exists()
    assert not Path(lab.topology_file).parent.joinpath(".pglab").exists()
