"""Check 2, replication: one leader, every replica streaming to it with little lag, and rows
written through the writes endpoint (HAProxy 5000, or the multi-host URI) visible on every replica within 10 s."""

from __future__ import annotations

import time

from pglab.checks import (
    DATABASE,
    LAG_LIMIT_MB,
    REPLICATION_TIMEOUT,
    ROWS,
    TABLE,
    create_rows,
    describe,
    leader,
    members,
    rows_on,
    walsenders,
)
from pglab.lab import Lab


def test_exactly_one_leader(lab: Lab) -> None:
    leader(lab)


def test_member_leads_or_streams(lab: Lab, postgres_node: str, password: str) -> None:
    by_name = members(lab)
    current = leader(lab)
    if postgres_node == current:
        return
    senders = walsenders(lab, current, password)
    member = by_name[postgres_node]
    name = lab.stack().application_name(postgres_node)
    assert name in senders, (
        f"{postgres_node} is not streaming (state: {member.state or 'unknown'}): it is missing from "
        f"pg_stat_replication on the leader {current}; members: {describe(by_name)}")
    state, lag = senders[name][0]
    assert state == "streaming", f"{postgres_node} is not streaming (state: {state}) from the leader {current}"
    lag_mb = (lag or 0) / 1048576
    assert lag_mb < LAG_LIMIT_MB, (
        f"{postgres_node} replays {lag_mb:.1f} MB behind the leader {current} (limit {LAG_LIMIT_MB} MB)")


def test_rows_written_through_the_writes_endpoint_reach_every_replica(lab: Lab, password: str) -> None:
    current = leader(lab)
    create_rows(lab, password)
    deadline = time.monotonic() + REPLICATION_TIMEOUT
    missing = []
    for node in (n.name for n in lab.topology.with_role("postgres")):
        if node == current:
            continue
        ok, seen = rows_on(lab, node, password, ROWS, max(deadline - time.monotonic(), 0.5))
        if not ok:
            missing.append(f"{node} (saw: {seen})")
    assert not missing, (
        f"{ROWS} rows written to {DATABASE}.{TABLE} through the writes port did not reach "
        f"{', '.join(missing)} within {REPLICATION_TIMEOUT:.0f} s")
