"""`pglab drill restore`: a point-in-time restore rehearsed under the write probe, exact to the write.

The probe writes one row at a time through the write endpoint; each row records the server's clock
when its transaction began (``pglab_probe.at``, ``now()``). Two consecutive acknowledged writes A
and B of the probe are picked while it writes on, and the target is B's server time less one
microsecond: A committed before B's transaction began (the probe waited for A's answer), so A's
commit is at or before the target and B's commit after it, whatever the client's clock says. The
probe writes a little longer, stops, and the cluster is restored to the target
(:func:`pglab.backups.restore.restore`); then every write acknowledged up to A must be there (``lost``
counts those missing) and no write from B on (``extra`` counts those present), and the probe
writes again until writes have succeeded for a while.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass

import psycopg

from pglab.backups import restore
from pglab.backups.restore_target import Target, stamp
from pglab.drills import probe
from pglab.drills.frame import HOLD, WARMUP, DrillResult, Marker
from pglab.errors import InputError, PglabError
from pglab.lab import EventSink, Lab, ignore_event
from pglab.stacks.base import StackError

AFTER = 1.0  # seconds of writes after the target, which the restore must discard
NEW_IDS = 10_000_000  # the probe after the restore numbers its writes from here


@dataclass(frozen=True)
class RestoreFigures:
    """A restore drill's own figures (its JSON line's ``lost``, ``extra``, ``restore_s`` ...)."""

    target: str
    last_before: int  # A: the last write at or before the target
    first_after: int  # B: the first write after it
    lost: list[int]  # acknowledged up to A, missing after the restore
    extra: list[int]  # attempted from B on (acknowledged or not), present after the restore
    restore_s: float  # first stop to healthy
    phases: dict[str, float]
    discarded: int  # writes after the target the restore discarded, as it should

    def as_json(self) -> dict[str, object]:
        return {"target": self.target, "last_before": self.last_before, "first_after": self.first_after,
                "extra": len(self.extra), "extra_ids": self.extra[:100], "restore_s": self.restore_s,
                "phases": self.phases, "discarded_after_target": self.discarded}


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


def run(lab: Lab, number: int = 1, timeout: float = 90.0, on_event: EventSink = ignore_event) -> DrillResult:
    """One restore drill; never raises for what the restore did, only reports it."""
    health = lab.wait_healthy(timeout * 2, on_event)
    conninfo = lab.writes_conninfo()
    probe.prepare_table(conninfo)
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    writer = probe.WriteProbe(conninfo)
    writer.start()
    markers: list[Marker] = []
    problem: str | None = None
    try:
        if not writer.wait_succeeding(time.monotonic(), WARMUP, 60):
            raise PglabError(f"writes through {conninfo['host']}:{conninfo['port']} did not succeed before the "
                             f"restore drill: {writer.last_error()}")
        pair = pick_pair(writer.snapshot())
        if pair is None:
            raise PglabError("the probe had no two consecutive acknowledged writes to put the target between")
        a, b = pair
        with psycopg.connect(autocommit=True, **conninfo) as conn:
            times = dict(conn.execute(f"SELECT id, at FROM {probe.TABLE} WHERE id IN (%s, %s)", (a.id, b.id)))
        moment = times[b.id] - datetime.timedelta(microseconds=1)
        time.sleep(AFTER)
    finally:
        writer.stop()
    before = writer.snapshot()
    fault_at = time.monotonic()
    markers.append(Marker(b.started - fault_at, f"target {stamp(moment)[11:23]}"))
    markers.append(Marker(0.0, "restore"))
    figures: restore.RestoreResult | None = None
    try:
        figures = restore.restore(lab, Target(moment), timeout=timeout * 2, on_event=on_event)
        markers.append(Marker(time.monotonic() - fault_at, "healthy"))
    except (PglabError, StackError, OSError, psycopg.Error) as exc:
        problem = f"the restore failed: {exc}"
    after = probe.WriteProbe(conninfo, start=NEW_IDS)
    present: set[int] = set()
    recovered = False
    if figures is not None:
        after.start()
        try:
            recovered = after.wait_succeeding(time.monotonic(), HOLD, 60)
            if not recovered:
                problem = f"writes did not succeed after the restore: {after.last_error()}"
        finally:
            after.stop()
        try:
            present = probe.read_ids(conninfo)
        except psycopg.Error as exc:
            problem = problem or f"could not read the probe's table back: {exc}"
            recovered = False
    attempts = before + after.snapshot()
    resumed = next((x.ended - fault_at for x in after.snapshot() if x.ok), None)
    if resumed is not None:
        markers.append(Marker(resumed, "writes resumed"))
    markers.sort(key=lambda m: m.at)
    lost, extra = judge(before, present, a.id, b.id) if figures is not None else ([], [])
    tally = probe.tally([x for x in before if x.id <= a.id], present, fault_at) if figures else probe.tally(
        before, set(), fault_at)
    tally.unavailable = figures.restore_s if figures else 0.0
    tally.lost = lost
    result = DrillResult("restore", number, started, None, health.leader,
                         figures.leader if figures else None, recovered, tally, markers,
                         [figures.summary] if figures else [], problem,
                         [(x.started - fault_at, x.ended - fault_at, x.ok) for x in attempts])
    if figures is not None:
        discarded = sum(1 for x in before if x.id >= b.id and x.ok and x.id not in present)
        result.restored = RestoreFigures(stamp(moment), a.id, b.id, lost, extra, figures.restore_s,
                                         {p.name: p.seconds for p in figures.phases}, discarded)
    return result


def check_options(workload: str, clients: int, readers: int, load_tps: float, node: str | None) -> None:
    """The restore drill runs the single insert probe (its ids order its writes in time)."""
    if workload != "insert" or clients != 1 or readers or load_tps or node:
        raise InputError("drill restore runs one insert probe through the write endpoint and restores the whole "
                         "cluster: drop --workload, --clients, --readers, --load and --node")
