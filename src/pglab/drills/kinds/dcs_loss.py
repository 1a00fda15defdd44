"""`pglab drill dcs-loss`: every member of the store where the stack keeps the cluster's state (a
DCS, a monitor: the stack says which, :meth:`~pglab.stacks.base.StackSpec.state_store`) stopped
for --for seconds (by default twice the leader's lease), then started again. The drill watches
the leader's own PostgreSQL meanwhile: did it keep accepting writes, or was it demoted, and when?"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from pglab import sql, stacks
from pglab.drills.kind import Done, Drill, DrillKind, Option
from pglab.drills.result import DrillResult
from pglab.errors import InputError
from pglab.lab import Lab

POLL = 0.5  # seconds between two looks at the leader
DEFAULT_FOR = 30.0  # seconds, for a stack whose leader has no lease


@dataclass(frozen=True)
class StoreLossFigures:
    store: str
    for_s: float
    leader_kept_writes: bool
    demoted_after_s: float | None  # seconds after the store was lost when the leader stopped taking writes

    @property
    def ok(self) -> bool:
        return True  # a demotion is the stack's answer, measured

    def as_json(self) -> dict[str, Any]:
        return {"store": self.store, "for_s": self.for_s, "leader_kept_writes": self.leader_kept_writes,
                "demoted_after_s": self.demoted_after_s}

    def headline(self) -> str:
        if self.leader_kept_writes:
            return ", leader kept writing"
        return f", leader demoted after {self.demoted_after_s:.1f} s"


@dataclass
class DcsLoss(DrillKind):
    name = "dcs-loss"
    summary = "every member of the stack's state store (DCS, monitor) stopped for a while"
    options = (Option("duration", "Seconds the store stays lost (default: twice the leader's lease, e.g. "
                                  "Patroni's ttl; else 30).", type=float, metavar="SECONDS", low=1, high=3600,
                      flag="--for"),)
    duration: float | None = None
    store: str = field(default="", init=False)
    demoted_at: float | None = field(default=None, init=False)
    stopped: list[tuple[str, str]] = field(default_factory=list, init=False)

    def check(self, lab: Lab) -> None:
        spec = stacks.spec(lab.topology.stack)
        self.store, members = spec.state_store(lab.topology)
        if not members:
            raise InputError(f"drill dcs-loss: stack {lab.topology.stack} keeps no state outside its data nodes")
        why = lab.provider.cannot("dcs-loss")
        if why:
            raise InputError(f"drill dcs-loss: {why}")
        if self.duration is None:
            lease = spec.leader_lease(lab.topology)
            self.duration = 2 * lease if lease else DEFAULT_FOR

    def inject(self, drill: Drill) -> Done:
        assert self.duration is not None  # check() sets it
        lab = drill.lab
        _, members = stacks.spec(lab.topology.stack).state_store(lab.topology)
        for node, service in members:
            self.stopped.append((node.name, service))
            lab.provider.stop_service(node, service)
        lost_at = time.monotonic()
        drill.mark(f"{self.store} lost", at=lost_at)
        while time.monotonic() < lost_at + self.duration:
            if self.demoted_at is None and drill.old_leader and not _takes_writes(lab, drill.old_leader):
                self.demoted_at = time.monotonic()
                drill.mark(f"{drill.old_leader} stopped taking writes", at=self.demoted_at)
            time.sleep(POLL)
        self._start_again(drill)
        verdict = ("the leader kept taking writes" if self.demoted_at is None
                   else f"the leader stopped taking writes after {self.demoted_at - lost_at:.1f} s")
        return Done(f"stopped {self.store} ({', '.join(f'{n.name} {s}' for n, s in members)}) for "
                    f"{self.duration:g} s: {verdict}; started again", f"{self.store} back")

    def recover(self, drill: Drill) -> str | None:
        if not self.stopped:
            return None
        self._start_again(drill)
        return f"started {self.store} again"

    def _start_again(self, drill: Drill) -> None:
        while self.stopped:
            name, service = self.stopped[-1]
            drill.lab.provider.start_service(drill.lab.node(name), service)
            self.stopped.pop()

    def judge(self, drill: Drill, result: DrillResult) -> None:
        assert self.duration is not None
        demoted = None if self.demoted_at is None else round(self.demoted_at - drill.fault_at, 2)
        result.part = StoreLossFigures(self.store, self.duration, self.demoted_at is None, demoted)


def _takes_writes(lab: Lab, node: str) -> bool:
    """Whether the node's own PostgreSQL answers as a primary."""
    try:
        in_recovery, _ = sql.server_state(lab.address(node), lab.topology.ports.postgres, lab.superuser_password(),
                                          lab.libpq_tls())
    except (OSError, psycopg.Error):
        return False
    return not in_recovery
