"""Check 8, final: after everything above the lab is healthy with all its members, and the
pglab_verify database is dropped."""

from __future__ import annotations

from pglab import sql
from pglab.checks import DATABASE, describe, drop_rows
from pglab.lab import Lab


def test_lab_is_healthy_with_every_member(lab: Lab) -> None:
    health = lab.stack().health()
    expected = sorted(n.name for n in lab.topology.with_role("postgres"))
    up = sorted(m.name for m in health.members if m.state in ("running", "streaming"))
    assert health.healthy, f"the lab is not healthy: {'; '.join(health.problems)}"
    assert up == expected, (
        f"{len(up)} of {len(expected)} members run ({describe({m.name: m for m in health.members})})")


def test_verify_database_is_dropped(lab: Lab, password: str) -> None:
    drop_rows(lab, password)
    host, port = lab.writes_endpoint()
    left = sql.query(host, port, password, "SELECT count(*) FROM pg_database WHERE datname = %s", (DATABASE,),
                     tls=lab.libpq_tls())[0][0]
    assert not left, f"database {DATABASE} is still there after DROP DATABASE"
