"""`pglab drill memory`: one node's PostgreSQL (its postmaster and every child, not the stack's
agent beside it) limited in memory, and one backend grown (a large in-memory sort) until the
kernel's OOM killer ends it; what does the postmaster do (reinitialize every backend, or go), and
what does the HA stack do about it?"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from pglab import sql
from pglab.drills.kind import Drill, Option
from pglab.drills.node_limit import NODE_OPTION, NodeLimit
from pglab.drills.result import DrillResult
from pglab.errors import PglabError
from pglab.topology import Node

ROWS_PER_MB = 60_000  # rows of the sort below that need well over a megabyte of a backend's memory
GROW_TIMEOUT_S = 120
# The postmaster's identity and its current generation of children: a crash-restart cycle changes the
# checkpointer but keeps the start time; a new postmaster changes both.
POSTMASTER_SQL = ("SELECT pg_postmaster_start_time()::text, "
                  "(SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer')")


@dataclass
class Memory(NodeLimit):
    name = "memory"
    summary = "a node's PostgreSQL limited in memory, one backend grown until the OOM killer ends it"
    options = (NODE_OPTION,
               Option("limit", "Megabytes the node's PostgreSQL may use together.", type=int, default=256,
                      metavar="MB", low=32, high=1024 * 1024))
    limit: int = 256
    oom_kills: int = field(default=0, init=False, repr=False)
    before: tuple[str, int | None] | None = field(default=None, init=False, repr=False)
    backend: str = field(default="", init=False, repr=False)
    killed_at: float | None = field(default=None, init=False, repr=False)

    def apply(self, drill: Drill, node: Node) -> str:
        self.before = _postmaster(drill, node)
        return drill.lab.provider.limit_postgres_memory(node, self.limit)

    def hold(self, drill: Drill, node: Node) -> None:
        """Grow one backend until it ends: killed (its connection lost), refused, or done."""
        rows = self.limit * ROWS_PER_MB
        started = time.monotonic()
        try:
            with sql.session(**{**_conninfo(drill, node), "connect_timeout": 10}) as conn:
                conn.execute(f"SET statement_timeout = '{GROW_TIMEOUT_S}s'")
                conn.execute("SET work_mem = '2000MB'")
                drill.mark("backend grows")
                conn.execute(f"SELECT count(*) FROM (SELECT md5(g::text) AS h FROM generate_series(1, {rows}) AS g "
                             "ORDER BY 1) AS sorted")
            self.backend = f"finished its sort in {time.monotonic() - started:.1f} s: the limit was never reached"
        except psycopg.OperationalError as exc:
            self.killed_at = time.monotonic()
            drill.mark("backend ended")
            self.backend = f"ended after {self.killed_at - started:.1f} s: {str(exc).strip().splitlines()[0][:160]}"
        except psycopg.Error as exc:
            self.backend = f"refused after {time.monotonic() - started:.1f} s: {str(exc).strip().splitlines()[0][:160]}"
        self.oom_kills = drill.lab.provider.oom_kills(node)  # read before the limit's group goes
        drill.log(f"the growing backend {self.backend}")

    def figures(self, drill: Drill, result: DrillResult) -> dict[str, Any]:
        node = drill.lab.node(drill.target) if drill.target else None
        after = _postmaster(drill, node) if node is not None else None
        if self.before is None or after is None:
            postmaster = "unknown"
        elif after[0] != self.before[0]:
            postmaster = "restarted (a new postmaster)"
        elif after[1] != self.before[1]:
            postmaster = "stayed up and reinitialized every backend (crash recovery)"
        else:
            postmaster = "stayed up, its other backends untouched"
        return {"limit_mb": self.limit, "backend": self.backend,
                "oom_kills": self.oom_kills,
                "postmaster": postmaster,
                "failover": bool(result.new_leader and result.new_leader != result.old_leader)}


def _conninfo(drill: Drill, node: Node) -> dict[str, Any]:
    return {"host": drill.lab.address(node.name), "port": drill.lab.topology.ports.postgres, "dbname": "postgres",
            **drill.lab.connect_kwargs()}


def _postmaster(drill: Drill, node: Node) -> tuple[str, int | None] | None:
    try:
        with sql.session(**{**_conninfo(drill, node), "connect_timeout": 5}) as conn:
            row = conn.execute(POSTMASTER_SQL).fetchone()
    except psycopg.Error:
        return None
    if row is None:
        raise PglabError(f"{node.name}'s PostgreSQL did not say who it is")
    return str(row[0]), row[1]
