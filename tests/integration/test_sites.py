"""A real two-site lab (two clusters of three data nodes, each with its own etcd, HAProxy and
repository) on the test range: `up` builds both, the second site a standby cluster streaming from
the first through its write endpoint over TLS; status (table and --json) shows both sites with
their leaders and the lag between them; the sites' verify checks pass; the standby site refuses
writes; a second `up` changes nothing; the lab is destroyed at the end even when a test fails.

Both sites share the second test range (127.0.NN+1.x, beside the session lab): the second site's
nodes sit 40 host numbers above the first's, as `pglab init --sites 2` writes them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pglab import catalog, verify, waiting
from pglab.lab import Lab, UpResult
from tests.conftest import SECOND_LOOPBACK, lab_up
from tests.integration.drilling import run_drill


@pytest.fixture(scope="module")
def two_sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, UpResult]]:
    path = tmp_path_factory.mktemp("sites") / "pglab.yml"
    path.write_text(catalog.default_yaml(name="itest-sites", loopback=SECOND_LOOPBACK, sites=2))
    with lab_up(path, "the two-site test", timeout=240) as up:
        yield up


@pytest.fixture(scope="module")
def lab(two_sites: tuple[Lab, UpResult]) -> Lab:
    return two_sites[0]


def test_up_builds_a_primary_site_and_its_standby_cluster(two_sites: tuple[Lab, UpResult]) -> None:
    lab, result = two_sites
    assert result.health.healthy, result.health.problems
    assert {m.name for m in result.health.members} == {"east-pg1", "east-pg2", "east-pg3"}
    assert lab.primary_site() == "east"
    assert lab.site_role("east") == "primary" and lab.site_role("west") == "standby"
    source = lab.site("west").stack().standby_source()
    assert source is not None and source["port"] == lab.topology.ports.haproxy_primary_direct
    assert source["host"] == lab.address("east-haproxy") and source["primary_slot_name"] == "site_west"


def test_status_json_shows_both_sites_their_leaders_and_the_lag(lab: Lab) -> None:
    out = subprocess.run([sys.executable, "-m", "pglab.cli", "status", "--json", "-f", str(lab.topology_file)],
                         check=True, capture_output=True, text=True).stdout
    status = json.loads(out)
    assert status["healthy"] is True, status["problems"]
    sites = {s["name"]: s for s in status["sites"]}
    assert (sites["east"]["role"], sites["west"]["role"]) == ("primary", "standby")
    assert sites["east"]["cluster"] == "itest-sites-east" and sites["west"]["cluster"] == "itest-sites-west"
    assert sites["east"]["leader"].startswith("east-") and sites["west"]["leader"].startswith("west-")
    lag = sites["west"]["lag"]
    assert lag["streaming"] is True and 0 <= lag["received_bytes"] < 1024 * 1024
    assert sites["east"]["lag"] is None
    # The standby site's members: its leader a standby leader, streaming from the primary site.
    west = {m["name"]: m for m in sites["west"]["members"]}
    assert west[sites["west"]["leader"]]["state"] in ("streaming", "running")
    table = subprocess.run([sys.executable, "-m", "pglab.cli", "status", "-f", str(lab.topology_file)],
                           check=True, capture_output=True, text=True, env={**os.environ, "COLUMNS": "80"}).stdout
    assert "Sites" in table and "Standby leader" in table and "standby" in table


def test_the_sites_checks_pass(lab: Lab, tmp_path: Path) -> None:
    report = verify.run_verify(lab.topology_file, tmp_path / "junit.xml", keyword="test_08_sites", keep_going=True)
    assert report.passed, [(r.name, r.message) for r in report.failures]
    assert {r.check for r in report.results} == {"sites"}


def test_standby_site_leader_refuses_a_write(lab: Lab) -> None:
    west = lab.site("west")
    leader = west.stack().health().leader
    assert leader is not None
    conn = psycopg.connect(host=west.address(leader), port=west.topology.ports.postgres, dbname="postgres",
                           autocommit=True, **west.connect_kwargs())
    with conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("CREATE TABLE refused (id int)")


def _cli(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pglab.cli", *args, "-f", str(lab.topology_file)],
                          capture_output=True, text=True, timeout=600)


def test_promote_is_refused_while_the_primary_site_takes_writes(lab: Lab) -> None:
    refused = _cli(lab, "site", "promote", "west")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "still takes writes" in refused.stdout + refused.stderr and "--force" in refused.stdout + refused.stderr
    assert lab.site_role("west") == "standby" and lab.site_role("east") == "primary"


def _write_row(site: Lab) -> int:
    with psycopg.connect(autocommit=True, **site.writes_conninfo("direct")) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS site_switch (id bigserial PRIMARY KEY)")
        row = conn.execute("INSERT INTO site_switch DEFAULT VALUES RETURNING id").fetchone()
    assert row is not None
    return int(row[0])


def _rows(site: Lab) -> set[int]:
    with psycopg.connect(autocommit=True, **site.writes_conninfo("direct")) as conn:
        return {r[0] for r in conn.execute("SELECT id FROM site_switch").fetchall()}


def test_a_planned_switch_loses_nothing_and_the_old_site_follows(lab: Lab) -> None:
    # One direction: the planned drill below switches back.
    old, new = "east", "west"
    written = _write_row(lab.site(old))
    demoted = _cli(lab, "site", "demote", old, "--follow", new, "--json")
    assert demoted.returncode == 0, demoted.stdout + demoted.stderr
    assert json.loads(demoted.stdout)["details"]["planned"] is True
    promoted = _cli(lab, "site", "promote", new, "--json")
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert lab.primary_site() == new and lab.site_role(old) == "standby"
    assert written in _rows(lab.site(new))
    # The old site streams from the new primary site, and both commands have nothing left to do.
    def streaming() -> tuple[bool, str]:
        view = {v.name: v for v in lab.status().sites}[old]
        return bool(view.lag and view.lag.streaming), str(view)

    done, detail, _ = waiting.poll(streaming, 60, 1)
    assert done, detail
    again = _cli(lab, "site", "promote", new)
    assert again.returncode == 0 and "nothing changed" in again.stdout
    again = _cli(lab, "site", "demote", old, "--follow", new)
    assert again.returncode == 0 and "nothing changed" in again.stdout


def test_drill_site_loss_planned_loses_nothing(lab: Lab, tmp_path: Path) -> None:
    output = run_drill(lab, tmp_path, "site-loss", "--planned", "--via", "direct")
    drilled = output["drills"][0]
    assert drilled["ok"], drilled["problem"]
    assert drilled["site_lost"] == 0 and drilled["lost"] == 0
    assert lab.primary_site() == "east" and lab.site_role("west") == "standby"


def test_drill_site_loss_loses_what_the_lag_predicted_and_fails_back(lab: Lab, tmp_path: Path) -> None:
    # Through the pooled endpoint users get by default, after the planned switch above changed
    # both sites' leaders (PgBouncer's pools keep what they saw at their first login).
    output = run_drill(lab, tmp_path, "site-loss")
    drilled = output["drills"][0]
    print({k: v for k, v in drilled.items() if k in ("site_lost", "predicted_lost", "lag_at_kill_bytes",
                                                      "detection_s", "promotion_s", "client_switch_s",
                                                      "failback_s", "rewound", "unavailable_s")})
    assert drilled["site_lost"] == drilled["predicted_lost"]
    assert drilled["lost_site"] == "east" and drilled["new_primary"] == "west"
    assert drilled["ok"], drilled["problem"]
    assert drilled["failback_s"] is not None
    assert lab.primary_site() == "west" and lab.site_role("east") == "standby"
    east = {v.name: v for v in lab.status().sites}["east"]
    assert east.lag is not None and east.lag.streaming, east
    # The lost site's router is back too, for the next switch.
    router = lab.site("east").client_endpoints()["write"]
    with socket.create_connection((router.hosts[0], router.port), timeout=5):
        pass


def test_a_second_up_after_the_drills_changes_nothing(lab: Lab) -> None:
    # Last: `up` converges to the roles the drills left, and never moves the primary role.
    again = lab.up(timeout=120)
    assert again.changed == 0, again
    assert again.parameters_changed == {} and again.settings_changed == {}
    assert lab.primary_site() == "west" and lab.site_role("east") == "standby"
