"""Check 8, sites (a two-site lab only; after every other check, so the in-site switchover and
failovers above have happened): the standby site's leader streams from the primary site through
its write endpoint, its lag is small on an idle lab, a row written on the primary site appears
there within 5 s, and the standby site refuses writes; its nodes run their services."""

from __future__ import annotations

import psycopg
import pytest

from pglab import sql, waiting
from pglab.lab import Lab
from pglab.sites import SiteLag

SITES = True
IDLE_LAG_LIMIT = 1024 * 1024
ROW_TIMEOUT = 5.0
TABLE = "pglab_verify_sites"


@pytest.fixture(scope="module")
def standby(whole_lab: Lab) -> str:
    roles = {name: whole_lab.site_role(name) for name in whole_lab.topology.sites}
    standbys = [name for name, role in roles.items() if role == "standby"]
    assert list(roles.values()).count("primary") == 1 and len(standbys) == 1, (
        f"expected one primary and one standby site, found: {', '.join(f'{n} {r}' for n, r in roles.items())}")
    return standbys[0]


def _lag(whole_lab: Lab, standby: str) -> SiteLag | None:
    view = next(v for v in whole_lab.status().sites if v.name == standby)
    return view.lag


def test_standby_leader_streams_from_the_primary_site(whole_lab: Lab, standby: str) -> None:
    site = whole_lab.site(standby)
    source = site.stack().standby_source() or {}
    primary = whole_lab.site(whole_lab.primary_site())
    router, port = primary.writes_conninfo("direct")["host"], primary.writes_conninfo("direct")["port"]
    assert (source.get("host"), source.get("port")) == (router, port), (
        f"site {standby} follows {source.get('host')}:{source.get('port')}, not the primary site's write "
        f"endpoint {router}:{port}")
    lag = _lag(whole_lab, standby)
    assert lag is not None and lag.streaming, (
        f"site {standby}'s standby leader has no walsender on its slot {source.get('primary_slot_name')} "
        "on the primary site's leader")


def test_standby_lag_is_small_when_idle(whole_lab: Lab, standby: str) -> None:
    seen: list[SiteLag | None] = []

    def caught_up() -> tuple[bool, str]:
        seen[:] = [_lag(whole_lab, standby)]
        lag = seen[0]
        return (lag is not None and lag.received_bytes is not None and lag.received_bytes < IDLE_LAG_LIMIT,
                f"lag {lag}")

    done, detail, _ = waiting.poll(caught_up, 10, 0.5)
    assert done, f"site {standby} is not within {IDLE_LAG_LIMIT} bytes of the primary site: {detail}"


def test_a_row_written_on_the_primary_site_reaches_the_standby_site(whole_lab: Lab, standby: str) -> None:
    primary = whole_lab.site(whole_lab.primary_site())
    with sql.session(**primary.writes_conninfo("direct")) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())")
        row = conn.execute(f"INSERT INTO {TABLE} DEFAULT VALUES RETURNING id").fetchone()
    assert row is not None
    site = whole_lab.site(standby)
    password = whole_lab.superuser_password()
    missing = []
    for node in site.topology.with_role("postgres"):
        def arrived(node_name: str = node.name) -> tuple[bool, str]:
            try:
                found = sql.query(site.address(node_name), site.topology.ports.postgres, password,
                                  f"SELECT count(*) FROM {TABLE} WHERE id = %s", (row[0],), tls=site.libpq_tls())
            except psycopg.Error as exc:
                return False, sql.first_line(exc)
            return bool(found[0][0]), "not there yet"
        done, detail, _ = waiting.poll(arrived, ROW_TIMEOUT, 0.1)
        if not done:
            missing.append(f"{node.name} ({detail})")
    with sql.session(**primary.writes_conninfo("direct")) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    assert not missing, f"row {row[0]} written on the primary site did not reach {', '.join(missing)} " \
                        f"within {ROW_TIMEOUT:.0f} s"


def test_standby_site_refuses_writes(whole_lab: Lab, standby: str) -> None:
    site = whole_lab.site(standby)
    password = whole_lab.superuser_password()
    accepted = []
    for node in site.topology.with_role("postgres"):
        writable, server = sql.writable(site.address(node.name), site.topology.ports.postgres, password,
                                        site.libpq_tls())
        if writable:
            accepted.append(f"{node.name} ({server})")
    assert not accepted, f"members of the standby site {standby} accept writes: {', '.join(accepted)}"


def test_standby_site_nodes_run_their_services(whole_lab: Lab, standby: str) -> None:
    site = whole_lab.site(standby)
    down = [f"{node.name} {name} {state}" for node in site.topology.nodes
            for name, state in whole_lab.provider.services(node).items() if state != "RUNNING"]
    assert not down, f"services of the standby site {standby} are not running: {', '.join(down)}"
