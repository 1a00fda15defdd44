"""`pglab drill postgres-kill`: only the leader's postmaster killed (SIGKILL), its stack left
running. The stack restarts it in place or fails over: the drill says which, and how fast."""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from pglab import sql
from pglab.drills import targets
from pglab.drills.kind import Done, Drill, DrillKind, Option
from pglab.drills.result import DrillResult
from pglab.errors import InputError, PglabError
from pglab.lab import Lab

POLL = 0.3  # seconds between two looks at the cluster


@dataclass(frozen=True)
class KillFigures:
    outcome: str  # "restarted in place", "failed over", or "neither"
    back_after_s: float | None  # seconds after the kill when a primary took writes again

    @property
    def ok(self) -> bool:
        return self.outcome != "neither"

    def as_json(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "back_after_s": self.back_after_s}

    def headline(self) -> str:
        return f", {self.outcome}" + (f" after {self.back_after_s:.1f} s" if self.back_after_s is not None else "")


def postmaster(lab: Lab, node: str) -> tuple[int, datetime.datetime]:
    """The postmaster's pid (the first line of its postmaster.pid) and its start time."""
    [(pid_file, started)] = sql.query(lab.address(node), lab.topology.ports.postgres, lab.superuser_password(),
                                      "SELECT pg_read_file('postmaster.pid'), pg_postmaster_start_time()",
                                      tls=lab.libpq_tls())
    return int(pid_file.split()[0]), started


@dataclass
class PostgresKill(DrillKind):
    name = "postgres-kill"
    summary = "only the leader's postmaster killed; its stack restarts it or fails over"
    options = (Option("node", "The node whose postmaster dies: a name, or leader, sync-standby, replica "
                              "(default: the leader).", metavar="NODE|ROLE"),)
    node: str | None = None
    lab: Lab | None = field(default=None, init=False, repr=False)
    outcome: str = field(default="neither", init=False)
    back_at: float | None = field(default=None, init=False)

    def check(self, lab: Lab) -> None:
        targets.check(lab, self.node)
        why = lab.provider.cannot("postgres-kill")
        if why:
            raise InputError(f"drill postgres-kill: {why}")
        self.lab = lab

    def target(self, leader: str | None) -> str | None:
        assert self.lab is not None  # check(lab) runs first
        return targets.resolve(self.lab, self.node, leader)

    def inject(self, drill: Drill) -> Done:
        if drill.target is None:
            raise PglabError("the cluster has no leader; name a node with --node")
        lab, node = drill.lab, drill.target
        pid, started = postmaster(lab, node)
        killed_at = time.monotonic()
        lab.provider.kill_process(lab.node(node), pid)
        stack = lab.stack()
        deadline = killed_at + drill.timeout
        while time.monotonic() < deadline:
            leader = stack.leader()
            if leader not in (None, node) and node == drill.old_leader:
                self.outcome = "failed over"
                break
            if leader is not None and _restarted(lab, node, started):
                self.outcome = "restarted in place"
                break
            time.sleep(POLL)
        else:
            return Done(f"killed {node}'s postmaster (pid {pid}): neither restarted nor failed over within "
                        f"{drill.timeout:g} s", "postgres-kill: no answer")
        self.back_at = time.monotonic()
        drill.mark(self.outcome, at=self.back_at)
        return Done(f"killed {node}'s postmaster (pid {pid}): {self.outcome} after {self.back_at - killed_at:.1f} s"
                    + (f" ({leader} leads)" if self.outcome == "failed over" else ""), self.outcome)

    def judge(self, drill: Drill, result: DrillResult) -> None:
        back = None if self.back_at is None else round(self.back_at - drill.fault_at, 2)
        result.part = KillFigures(self.outcome, back)


def _restarted(lab: Lab, node: str, before: datetime.datetime) -> bool:
    """Whether the node's PostgreSQL answers again, started after ``before``."""
    try:
        _, started = postmaster(lab, node)
    except (OSError, psycopg.Error, ValueError):
        return False
    return started > before
