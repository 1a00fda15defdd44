"""`pglab drill pgdata-lost`: a replica's data directory removed while its PostgreSQL runs. The
drill measures when the stack notices (the member stops streaming) and when the member streams
again: rebuilt by the stack itself, or, when it has not within --grace seconds, by `pglab rebuild`
(:func:`pglab.operations.rebuild`: Patroni's reinit; on pg_auto_failover the node dropped from the
monitor and created again)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from pglab import operations, sql, stacks
from pglab.drills import targets
from pglab.drills.kind import Done, Drill, DrillKind, Option
from pglab.drills.result import DrillResult
from pglab.errors import InputError, PglabError
from pglab.lab import Lab

POLL = 0.5  # seconds between two looks at the member


@dataclass(frozen=True)
class RebuildFigures:
    noticed_after_s: float | None  # seconds after the removal when the member stopped streaming
    rebuilt_after_s: float | None  # ... when it streamed again
    rebuilt_by: str  # "the stack", or the rebuild pglab asked of it

    @property
    def ok(self) -> bool:
        return self.rebuilt_after_s is not None

    def as_json(self) -> dict[str, Any]:
        return {"noticed_after_s": self.noticed_after_s, "rebuilt_after_s": self.rebuilt_after_s,
                "rebuilt_by": self.rebuilt_by}

    def headline(self) -> str:
        if self.rebuilt_after_s is None:
            return ", not rebuilt"
        return f", rebuilt by {self.rebuilt_by} after {self.rebuilt_after_s:.1f} s"


@dataclass
class PgdataLost(DrillKind):
    name = "pgdata-lost"
    summary = "a replica's data directory removed while it runs; the stack rebuilds it"
    options = (Option("node", "The replica that loses its data: a name, or replica, sync-standby (default: a "
                              "replica).", metavar="NODE|ROLE"),
               Option("grace", "Seconds the stack has to rebuild the member by itself before pglab asks it to.",
                      type=float, default=60.0, metavar="SECONDS", low=0, high=3600))
    node: str | None = None
    grace: float = 60.0
    lab: Lab | None = field(default=None, init=False, repr=False)
    removed_at: float | None = field(default=None, init=False)
    noticed_at: float | None = field(default=None, init=False)
    rebuilt_at: float | None = field(default=None, init=False)
    rebuilt_by: str = field(default="nobody", init=False)

    def check(self, lab: Lab) -> None:
        targets.check(lab, self.node)
        if self.node == "leader":
            raise InputError("drill pgdata-lost: pick a replica; the leader's data is not for losing")
        why = lab.provider.cannot("pgdata-lost") or stacks.spec(lab.topology.stack).cannot_rebuild
        if why:
            raise InputError(f"drill pgdata-lost: {why}")
        self.lab = lab

    def target(self, leader: str | None) -> str | None:
        assert self.lab is not None  # check(lab) runs first
        return targets.resolve(self.lab, self.node or "replica", leader)

    def inject(self, drill: Drill) -> Done:
        lab, node = drill.lab, drill.target
        if node is None or node == drill.old_leader:
            raise PglabError("pgdata-lost needs a replica")
        [(data_dir,)] = sql.query(lab.address(node), lab.topology.ports.postgres, lab.superuser_password(),
                                  "SHOW data_directory", tls=lab.libpq_tls())
        stack = lab.stack()
        lab.provider.remove_directory(lab.node(node), data_dir)
        self.removed_at = time.monotonic()
        asked = self._watch(drill, stack, self.removed_at + self.grace)
        if self.rebuilt_at is None:
            drill.mark(f"pglab rebuild {node}")
            self.rebuilt_by = "pglab rebuild"
            try:
                operations.rebuild(lab, node, timeout=drill.timeout * 2)
            except (PglabError, OSError) as exc:
                self.rebuilt_by = "nobody"
                return Done(f"removed {node}'s data directory; `pglab rebuild {node}` failed: {exc}",
                            "rebuild refused")
            asked = self._watch(drill, stack, time.monotonic() + drill.timeout * 2)
        if self.rebuilt_at is None:
            return Done(f"removed {node}'s data directory ({data_dir}): not rebuilt", "not rebuilt")
        return Done(f"removed {node}'s data directory ({data_dir}): {asked}, rebuilt by {self.rebuilt_by} after "
                    f"{self.rebuilt_at - self.removed_at:.1f} s", f"{node} rebuilt")

    def _watch(self, drill: Drill, stack: stacks.Stack, until: float) -> str:
        """Watch the member until it streams again after it stopped (or ``until``)."""
        node = drill.target
        while time.monotonic() < until:
            member = next((m for m in stack.members() if m.name == node), None)
            streaming = member is not None and member.state == "streaming"
            if not streaming and self.noticed_at is None:
                self.noticed_at = time.monotonic()
                drill.mark(f"{node} not streaming", at=self.noticed_at)
            elif streaming and self.noticed_at is not None and _has_data(drill.lab, str(node)):
                self.rebuilt_at = time.monotonic()
                if self.rebuilt_by == "nobody":
                    self.rebuilt_by = "the stack"
                drill.mark(f"{node} streams again", at=self.rebuilt_at)
                break
            time.sleep(POLL)
        if self.noticed_at is None or self.removed_at is None:
            return "the stack did not notice"
        return f"noticed after {self.noticed_at - self.removed_at:.1f} s"

    def judge(self, drill: Drill, result: DrillResult) -> None:
        start = self.removed_at or drill.fault_at
        result.part = RebuildFigures(None if self.noticed_at is None else round(self.noticed_at - start, 2),
                                     None if self.rebuilt_at is None else round(self.rebuilt_at - start, 2),
                                     self.rebuilt_by)
        if self.rebuilt_at is None:
            result.problem = result.problem or f"{drill.target} was not rebuilt"


def _has_data(lab: Lab, node: str) -> bool:
    """Whether the node's PostgreSQL answers (over a data directory it has again)."""
    try:
        sql.query(lab.address(node), lab.topology.ports.postgres, lab.superuser_password(), "SELECT 1",
                  tls=lab.libpq_tls())
    except (OSError, psycopg.Error):
        return False
    return True
