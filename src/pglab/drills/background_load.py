"""Background write load (``--load TPS``), so replicas have something to lag behind, and the lag
itself at the moment of the fault.

The load is :class:`pglab.drills.probe.WriteProbe` threads, each transaction inserting four 2 kB rows of
random text (WAL that does not compress away) into ``pglab_load``, paced to at most TPS
transactions a second in all (each commit waits for its flush, so a busy disk gives fewer: the
JSON line says how many); their failures during the fault are expected and only counted.
"""

from __future__ import annotations

import math
from typing import Any

import psycopg

from pglab import sql
from pglab.drills import probe
from pglab.sql import first_line

TABLE = "pglab_load"
PER_THREAD = 50  # transactions a second one thread paces: a commit waits for its WAL flush
ROWS = 4  # rows of 2 kB per transaction


def prepare(conn: psycopg.Connection) -> None:
    conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigint, pad text)")
    conn.execute(f"TRUNCATE {TABLE}")


def insert_padding(conn: psycopg.Connection, id_: int) -> None:
    # ROWS rows of 64 random md5 digests: 2 kB each
    conn.execute(f"INSERT INTO {TABLE} (id, pad) SELECT %s, string_agg(md5(random()::text), '') "
                 f"FROM generate_series(1, 64 * {ROWS}) g GROUP BY mod(g, {ROWS})", (id_,))


def writers(conninfo: dict[str, Any], tps: float) -> list[probe.WriteProbe]:
    """Threads that together write about ``tps`` transactions a second (not started)."""
    threads = max(1, math.ceil(tps / PER_THREAD))
    interval = threads / tps
    return [probe.WriteProbe(conninfo, interval=interval, start=i + 1, step=threads, client=-100 - i,
                             operation=insert_padding) for i in range(threads)]


LAG_SQL = """
SELECT application_name, state, sync_state,
       pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn)::bigint,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint,
       extract(epoch FROM replay_lag)::float8
FROM pg_stat_replication ORDER BY application_name
"""


def lag(conninfo: dict[str, Any]) -> dict[str, Any]:
    """Each replica's lag behind the primary, as the primary sees it: bytes not yet flushed and
    not yet replayed, and the replay lag in seconds. An error is recorded, never raised: the
    fault comes next whatever this says."""
    try:
        with sql.session(**conninfo) as conn:
            rows = conn.execute(LAG_SQL).fetchall()
    except psycopg.Error as exc:
        return {"error": first_line(exc)}
    return {name: {"state": state, "sync_state": sync, "flush_bytes": flush, "replay_bytes": replay,
                   "replay_lag_s": None if seconds is None else round(seconds, 3)}
            for name, state, sync, flush, replay, seconds in rows}
