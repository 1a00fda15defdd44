"""`pglab drill restore`: a point-in-time restore rehearsed under the write probe, exact to the write.

The probe writes one row at a time through the write endpoint; each row records the server's clock
when its transaction began (``pglab_probe.at``, ``now()``). Two consecutive acknowledged writes A
and B of the probe are picked while it writes on, and the target is B's server time less one
microsecond: A committed before B's transaction began (the probe waited for A's answer), so A's
commit is at or before the target and B's commit after it, whatever the client's clock says. The
probe writes a little longer, pauses, and the cluster is restored to the target
(:func:`pglab.backups.restore.restore`); then every write acknowledged up to A must be there (``lost``
counts those missing) and no write from B on (``extra`` counts those present), and the probe
writes again, numbering from :data:`NEW_IDS`, until writes have succeeded for a while.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field

from pglab import sql
from pglab.backups import restore
from pglab.backups.restore_target import Target, stamp
from pglab.drills import probe
from pglab.drills.kind import Done, Drill, DrillKind
from pglab.drills.result import DrillResult
from pglab.errors import PglabError

AFTER = 1.0  # seconds of writes after the target, which the restore must discard
NEW_IDS = 10_000_000  # the probe after the restore numbers its writes from here


@dataclass(frozen=True)
class RestoreFigures:
    """A restore drill's own figures (its JSON line's ``extra``, ``restore_s`` ...)."""

    target: str
    last_before: int  # A: the last write at or before the target
    first_after: int  # B: the first write after it
    lost: list[int]  # acknowledged up to A, missing after the restore
    extra: list[int]  # attempted from B on (acknowledged or not), present after the restore
    restore_s: float  # first stop to healthy
    phases: dict[str, float]
    discarded: int  # writes after the target the restore discarded, as it should

    @property
    def ok(self) -> bool:
        return not self.extra

    def as_json(self) -> dict[str, object]:
        return {"target": self.target, "last_before": self.last_before, "first_after": self.first_after,
                "extra": len(self.extra), "extra_ids": self.extra[:100], "restore_s": self.restore_s,
                "phases": self.phases, "discarded_after_target": self.discarded}

    def headline(self) -> str:
        return f", extra {len(self.extra)}, restore {self.restore_s:.1f} s"


def judge(attempts: list[probe.Attempt], present: set[int], last_before: int,
          first_after: int) -> tuple[list[int], list[int]]:
    """(lost, extra) of a restore to a moment between writes ``last_before`` and ``first_after``
    of one client (ids grow with time): acknowledged writes up to ``last_before`` missing, and
    writes from ``first_after`` on (a failed one may have committed) present."""
    lost = sorted(a.id for a in attempts if a.ok and a.id <= last_before and a.id not in present)
    extra = sorted(a.id for a in attempts if a.id >= first_after and a.id in present)
    return lost, extra


def pick_pair(attempts: list[probe.Attempt]) -> tuple[probe.Attempt, probe.Attempt] | None:
    """The last two consecutive attempts, both acknowledged, of one client: the target goes
    between them."""
    for before, after in zip(reversed(attempts[:-1]), reversed(attempts[1:]), strict=True):
        if before.ok and after.ok and after.started >= before.ended:
            return before, after
    return None


@dataclass
class Restore(DrillKind):
    name = "restore"
    summary = "a restore to between two writes: none lost, none kept after"
    takes_clients = False  # one insert probe: its ids order its writes in time
    keeps_every_write = False  # the writes after the target are discarded on purpose, and judged here
    # What the steps learn (not options): the target, the ids of A and B, the restore's outcome.
    moment: datetime.datetime | None = field(default=None, init=False)
    pair: tuple[int, int] = field(default=(0, 0), init=False)
    restored: restore.RestoreResult | None = field(default=None, init=False)

    def target(self, leader: str | None) -> str | None:
        return None  # the whole cluster

    def prepare(self, drill: Drill) -> None:
        pair = pick_pair(drill.clients.writes())
        if pair is None:
            raise PglabError("the probe had no two consecutive acknowledged writes to put the target between")
        a, b = pair
        with sql.session(**drill.lab.writes_conninfo()) as conn:
            rows = conn.execute(f"SELECT id, at FROM {probe.TABLE} WHERE id IN (%s, %s)", (a.id, b.id))
            times: dict[int, datetime.datetime] = dict(rows)
        self.moment = times[b.id] - datetime.timedelta(microseconds=1)
        self.pair = (a.id, b.id)
        time.sleep(AFTER)
        drill.clients.pause()
        drill.mark(f"target {stamp(self.moment)[11:23]}", at=b.started)

    def inject(self, drill: Drill) -> Done:
        assert self.moment is not None  # set by prepare
        self.restored = restore.restore(drill.lab, Target(self.moment), timeout=drill.timeout * 2,
                                        on_event=drill.on_event)
        drill.clients.resume(first_id=NEW_IDS)
        return Done(self.restored.summary, "restored")

    def judge(self, drill: Drill, result: DrillResult) -> None:
        before = [x for x in drill.attempts if x.id < NEW_IDS]
        resumed = next((x.ended for x in drill.attempts if x.id >= NEW_IDS and x.ok), None)
        if resumed is not None:
            drill.mark("writes resumed", at=resumed)
        if self.restored is None:
            result.tally = probe.tally(before, set(), drill.fault_at)
            result.tally.unavailable, result.tally.lost = 0.0, []
            return
        assert self.moment is not None  # restored only after prepare set it
        a, b = self.pair
        lost, extra = judge(before, drill.present, a, b)
        result.tally = probe.tally([x for x in before if x.id <= a], drill.present, drill.fault_at)
        result.tally.unavailable = self.restored.restore_s
        result.tally.lost = lost
        discarded = sum(1 for x in before if x.id >= b and x.ok and x.id not in drill.present)
        result.part = RestoreFigures(stamp(self.moment), a, b, lost, extra,
                                     self.restored.restore_s, {p.name: p.seconds for p in self.restored.phases},
                                     discarded)
