"""Each site of a two-site lab as `pglab status` shows it, and the lag between the sites, measured
on the primary site's leader, where the standby site's leader streams through its permanent slot."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import psycopg

from pglab import sql
from pglab.stacks.base import Member

SiteRole = Literal["primary", "standby", "unknown"]


@dataclass(frozen=True)
class SiteLag:
    """How far the standby site's leader is behind the primary site's, from the primary's
    pg_stat_replication: WAL it has not received (flushed) yet and not replayed yet, in bytes,
    and the replay delay in seconds (0 on an idle lab, whose standby has replayed everything)."""

    received_bytes: int | None
    replayed_bytes: int | None
    seconds: float | None
    # Whether the standby leader streams at all (a walsender on its slot).
    streaming: bool


@dataclass(frozen=True)
class SiteView:
    name: str
    role: SiteRole
    cluster: str
    healthy: bool
    leader: str | None
    members: list[Member]
    problems: list[str]
    # The standby site's lag behind the primary site; None for the primary site.
    lag: SiteLag | None = None
    # Where the standby site's leader streams from (host:port), None for the primary site.
    source: str | None = None


def site_role(standby_source: Mapping[str, Any] | None, answered: bool) -> SiteRole:
    """A site's role from its cluster's standby source (its stack's :meth:`standby_source`)."""
    if not answered:
        return "unknown"
    return "standby" if standby_source else "primary"


_LAG = """
SELECT s.active,
       pg_wal_lsn_diff(pg_current_wal_lsn(), r.flush_lsn)::bigint,
       pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn)::bigint,
       extract(epoch FROM r.replay_lag)::float8
FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid
WHERE s.slot_name = %s
"""


def lag_between_sites(conninfo: Mapping[str, Any], slot: str) -> SiteLag | None:
    """The standby site's lag, read on the primary site's leader (``conninfo``: psycopg keywords
    of its direct write endpoint) from the slot the standby streams through; None when the
    leader does not answer or has no such slot."""
    try:
        with sql.session(**conninfo) as conn:
            row = conn.execute(_LAG, (slot,)).fetchone()
    except psycopg.Error:
        return None
    if row is None:
        return None
    active, received, replayed, seconds = row
    if received is None:
        return SiteLag(None, None, None, streaming=False)
    # replay_lag is NULL once an idle standby has replayed everything: no delay then.
    if seconds is None and replayed == 0:
        seconds = 0.0
    return SiteLag(int(received), int(replayed), None if seconds is None else round(float(seconds), 3),
                   streaming=bool(active))

