"""Failure rehearsals, measured: what the clients of the write endpoint see while a fault happens.

One frame for every kind of fault (:mod:`pglab.drills.kinds`): wait for a healthy cluster, start the
clients (:class:`~pglab.drills.crowd.Clients`: ``clients`` writers of a workload, each a
:class:`~pglab.drills.probe.WriteProbe` on its own connection through the lab's write endpoint,
readers, background load), let writes succeed for a moment, let the kind prepare, start the clock
and inject the fault, wait until writes have succeeded again for a while, let the kind undo the
fault (always, even when the drill fails or is interrupted), wait for a healthy cluster, stop the
clients and read the workload's state back from the new primary: how long writes were unavailable,
which acknowledged writes are missing, which failed writes committed nonetheless, and what the
checkers (:mod:`pglab.drills.invariants`) found: two primaries at once, a changed total, appends
lost, doubled or out of order. Then the kind judges what is its own.

Written only against :class:`~pglab.lab.Lab`, its provider and its stack, so it rehearses every
stack and provider alike.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import psycopg

from pglab import sql
from pglab.drills import background_load, figures, freshness, invariants, probe, workloads
from pglab.drills.crowd import Clients, CrowdSpec
from pglab.drills.kind import Drill, DrillKind
from pglab.drills.result import BesideFigures, ClientFigures, DrillResult, Measures
from pglab.drills.stack_words import Listener
from pglab.drills.watch import Watch
from pglab.errors import InputError, PglabError
from pglab.lab import EventSink, Lab, ignore_event
from pglab.stacks.base import StackError

WARMUP = 2.0  # seconds of acknowledged writes before the fault
HOLD = 3.0  # seconds of acknowledged writes that count as recovered
RECOVER_TIMEOUT = 120.0  # seconds for writes to come back after the fault's operation returned
FAILED = (PglabError, StackError, OSError, psycopg.Error)  # what a step may fail with: reported, not raised


def check(lab: Lab, kind: DrillKind, workload: str = "insert", spec: CrowdSpec | None = None) -> None:
    """Refuse (InputError, exit 2) a drill this lab cannot run, before anything is touched."""
    if not kind.takes_clients and (workload != "insert" or (spec or CrowdSpec()) != CrowdSpec()):
        raise InputError(f"drill {kind.name} runs one insert probe through the write endpoint: drop --workload, "
                         "--clients, --readers and --load")
    kind.check(lab)


def run(lab: Lab, kind: DrillKind, number: int = 1, timeout: float = 90.0,
        on_event: EventSink = ignore_event, log: Callable[[str], None] = lambda _: None,
        workload: str = "insert", spec: CrowdSpec | None = None, via: str | None = None) -> DrillResult:
    """One drill of ``kind`` (a fresh instance per drill), its clients through ``via`` (the pooler
    or direct; None: the write endpoint's path); never raises for what the fault did, only reports it."""
    spec = spec or CrowdSpec()
    check(lab, kind, workload, spec)
    work = workloads.get(workload, spec.clients)
    health = lab.wait_healthy(timeout * 2, on_event)
    via = lab.client_path(via)
    conninfo = lab.writes_conninfo(via)
    with sql.session(**conninfo) as conn:
        probe.prepare_table_on(conn)  # the probe beside a cut-off node writes there, whatever the workload
        work.prepare(conn)
        if spec.load_tps:
            background_load.prepare(conn)
    clients = Clients(work, spec, conninfo, lab.reads_conninfo(via))
    drill = Drill(lab, kind.name, number, kind.target(health.leader), health.leader, timeout, on_event, log, clients)
    beside = _spawn_beside(lab, drill.target) if kind.watches_target_machine and drill.target else None
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    problem: str | None = None
    recovered = False
    lag: dict[str, Any] = {}
    phases: dict[str, float] = {}
    listener = Listener(lab)
    cpu_before, wall_before = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    clients.start()
    watch = Watch(lab, conninfo).start()
    drill.fault_at, fault_wall = time.monotonic(), time.time()
    try:
        if not clients.wait_succeeding(time.monotonic(), WARMUP, 60):
            raise PglabError(f"writes through {conninfo['host']}:{conninfo['port']} did not succeed before the "
                             f"{kind.name}: {clients.last_error()}")
        lag = background_load.lag(conninfo)
        kind.prepare(drill)
        listener.listen()
        drill.fault_at, fault_wall = time.monotonic(), time.time()
        drill.mark(f"{kind.name} {drill.target or ''}".strip())
        log(f"drill {kind.name} #{number}: {kind.name} of {drill.target or 'the cluster'} (leader {health.leader}) ...")
        recovered, problem = _fault(kind, drill, phases)
    except BaseException:
        watch.stop()  # the drill ends here: so does the watch
        raise
    finally:
        clients.stop()
        cpu_after, wall_after = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        beside_attempts = _stop_beside(beside)
    attempts = clients.writes()
    fault_at = drill.fault_at
    try:
        try:
            after = lab.wait_healthy(timeout * 2, on_event)
        finally:
            watch.stop()
        healthy_at = time.monotonic()
        drill.mark("healthy")
        with sql.session(**conninfo) as conn:
            written = work.read_back(conn)
            beside_present = probe.read_ids_on(conn) if beside is not None else set()
    except FAILED as exc:
        return DrillResult(kind.name, number, started, drill.target, health.leader, None, False,
                           probe.tally(attempts, set(a.id for a in attempts if a.ok), fault_at), drill.markers(),
                           drill.operations, problem or f"the cluster did not become healthy again: {exc}",
                           _relative(attempts, fault_at), workload=workload, spec=spec, via=via,
                           measures=_measures(watch, listener, attempts, fault_at, phases, None,
                                              [None, health.leader]), fault_at_unix=fault_wall)
    tally = probe.tally(attempts, written.present, fault_at)
    resumed = _writes_resumed(fault_at, tally)
    if clients.crashed:
        problem = problem or f"a client died: {clients.crashed}"
    result = DrillResult(kind.name, number, started, drill.target, health.leader, after.leader, recovered, tally,
                         [], drill.operations, problem, _relative(attempts, fault_at), workload=workload, spec=spec,
                         via=via, stale_primary_errors=probe.stale_primary_errors(attempts, tally),
                         measures=_measures(watch, listener, attempts, fault_at, phases, healthy_at,
                                            [after.leader, health.leader]), fault_at_unix=fault_wall)
    # The probe beside a cut-off node kept wall-clock times: put them on the drill's clock.
    beside_mono = [dataclasses.replace(a, started=a.started - fault_wall + fault_at,
                                       ended=a.ended - fault_wall + fault_at) for a in beside_attempts]
    if kind.keeps_every_write:
        result.clients = _client_figures(work, spec, clients, attempts, written, beside_mono, beside_present,
                                         fault_at, resumed, lag, (cpu_before, cpu_after, wall_after - wall_before))
    if beside is not None:
        _judge_beside(result, drill, beside_attempts, fault_wall, beside_present, resumed)
    drill.attempts, drill.present = attempts, written.present
    kind.judge(drill, result)
    resumed_at = _writes_resumed(fault_at, result.tally)
    if resumed_at is not None and not any(what == "writes resumed" for _, what in drill.marks):
        drill.mark("writes resumed", at=fault_at + resumed_at)
    result.markers = drill.markers()
    return result


def _fault(kind: DrillKind, drill: Drill, phases: dict[str, float]) -> tuple[bool, str | None]:
    """Inject the fault, hold until writes succeed, undo the fault (whatever happened), hold again:
    (recovered, the problem if any). ``phases`` gets when (time.monotonic()) the injection
    returned (``injected``), and when the undoing began and ended (``undoing``, ``undone``: only
    when the kind undid something)."""
    problem: str | None = None
    recovered = False
    try:
        try:
            done = kind.inject(drill)
            drill.operations.append(done.summary)
            drill.mark(done.marker)
            drill.log(done.summary)
        except FAILED as exc:
            problem = f"the {kind.name} did not complete: {exc}"
        finally:
            phases["injected"] = time.monotonic()
        recovered = drill.clients.wait_succeeding(drill.fault_at, HOLD, RECOVER_TIMEOUT)
        if not recovered:
            problem = problem or (f"writes did not succeed for {HOLD:g} s within {RECOVER_TIMEOUT:g} s; "
                                  f"last error: {drill.clients.last_error()}")
    finally:
        undoing = time.monotonic()
        try:
            undone = kind.recover(drill)
        except FAILED as exc:
            undone, recovered, problem = None, False, problem or str(exc)
        if undone is not None:
            phases.update(undoing=undoing, undone=time.monotonic())
    if undone is not None:
        drill.operations.append(undone)
        drill.log(undone)
        if not drill.clients.wait_succeeding(time.monotonic(), HOLD, RECOVER_TIMEOUT):
            problem = problem or f"writes failed after the {kind.name} was undone: {drill.clients.last_error()}"
            recovered = False
    elif recovered:
        # Writes after the fault, to measure what a commit costs once it is over.
        drill.clients.wait_succeeding(time.monotonic(), HOLD, RECOVER_TIMEOUT)
    return recovered, problem


def _measures(watch: Watch, listener: Listener, attempts: list[probe.Attempt], fault_at: float,
              phases: dict[str, float], healthy_at: float | None, leaders: list[str | None]) -> Measures:
    """What every drill measures beside the write gap (:class:`~pglab.drills.result.Measures`)."""
    return Measures(figures.commit_latency(attempts, latency_windows(attempts, fault_at, phases)),
                    watch.worst_lag(fault_at), watch.healthy_again(fault_at, healthy_at),
                    None if (said := listener.said(leaders)) is None else said.as_json())


def latency_windows(attempts: list[probe.Attempt], fault_at: float,
                    phases: dict[str, float]) -> dict[str, tuple[float, float]]:
    """Before the fault; during it, until its undoing began (a kind that undoes nothing: until its
    injection returned); after it was undone (or the injection returned), to the end."""
    injected = phases.get("injected", fault_at)
    over, back = (phases["undoing"], phases["undone"]) if "undone" in phases else (injected, injected)
    start = min((a.started for a in attempts), default=fault_at)
    end = max((a.ended for a in attempts), default=back) + 1.0
    return {"before": (start, fault_at), "during": (fault_at, over), "after": (back, end)}


def _client_figures(work: workloads.Workload, spec: CrowdSpec, clients: Clients, attempts: list[probe.Attempt],
                    outcome: workloads.Outcome, beside: list[probe.Attempt], beside_present: set[int],
                    fault_at: float, resumed: float | None, lag: dict[str, Any],
                    cpu: tuple[Any, Any, float]) -> ClientFigures:
    """Run the checkers over every client's history and gather the figures."""
    reads = clients.reads()
    anomalies = (invariants.lost(attempts, outcome.present) + invariants.lost(beside, beside_present)
                 + invariants.split_brain(attempts + beside) + work.check(attempts, outcome, reads))
    acks = sorted((a for a in attempts + beside if a.ok and a.server is not None), key=lambda a: a.ended)
    primaries = list(dict.fromkeys(str(a.server) for a in acks))
    final = acks[-1].server if acks else None
    discarded = invariants.discarded(attempts, outcome.present, final)
    for server, count in invariants.discarded(beside, beside_present, final).items():
        discarded[server] = discarded.get(server, 0) + count
    before, after, seconds = cpu
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    syncs = {v.get("sync_state") for v in lag.values() if isinstance(v, dict)}
    return ClientFigures(
        workload=work.name, spec=spec, checks=invariants.counts(anomalies, work.checks), anomalies=anomalies,
        primaries=primaries, discarded=discarded, per_client=figures.per_client(attempts, fault_at, resumed),
        throughput=figures.throughput(attempts, fault_at, resumed), conflicts=sum(a.conflict for a in attempts),
        replication="sync" if syncs & {"sync", "quorum"} else "async", lag_at_fault=lag,
        staleness=freshness.summary(clients.freshness.snapshot(), fault_at, resumed) if clients.freshness else None,
        reads={where: sum(a.ok for a in done) for where, done in reads.items()},
        load=clients.load_figures(seconds),
        cpu={"seconds": round(used, 2), "wall_s": round(seconds, 2),
             "cores": round(used / seconds, 3) if seconds > 0 else 0.0},
    )


def _spawn_beside(lab: Lab, target: str) -> Any:
    """A probe on the target's own machine, writing to its PostgreSQL directly (None if the
    provider cannot place one there)."""
    conninfo = {"host": lab.address(target), "port": lab.topology.ports.postgres, "dbname": "postgres",
                **lab.connect_kwargs()}
    return lab.provider.spawn_beside(lab.node(target), [sys.executable, "-m", "pglab.drills.probe"],
                                     {probe.PROBE_ENV: json.dumps(conninfo)})


def _stop_beside(process: Any) -> list[probe.Attempt]:
    if process is None:
        return []
    process.send_signal(signal.SIGTERM)
    try:
        out, _ = process.communicate(timeout=30)
        return probe.attempts_from_json(out)
    except (subprocess.TimeoutExpired, ValueError):
        process.kill()
        process.communicate()
        return []


def _judge_beside(result: DrillResult, drill: Drill, attempts: list[probe.Attempt], fault_wall: float,
                  present: set[int], resumed: float | None) -> None:
    """The proof on the other side of a cut: the cut-off leader stopped acknowledging writes before
    the new primary began (no two primaries at once)."""
    after = [a for a in attempts if a.ok and a.ended >= fault_wall]
    last_ok = max((a.ended - fault_wall for a in after), default=None)
    first_new = resumed if resumed is not None else 0.0
    overlap = max(0.0, (last_ok or 0.0) - first_new) if last_ok is not None and resumed is not None else 0.0
    result.beside = BesideFigures(len(after), last_ok, sum(a.id not in present for a in after), overlap)
    result.beside_attempts = [(a.started - fault_wall, a.ended - fault_wall, a.ok) for a in attempts]
    if last_ok is not None:
        drill.mark(f"{result.node}'s last local write", at=drill.fault_at + last_ok)
    if overlap > 0:
        result.problem = result.problem or (f"two primaries: {result.node}, cut off, still acknowledged writes "
                                            f"{overlap:.2f} s after the new primary began")


def _writes_resumed(fault_at: float, tally: probe.Tally) -> float | None:
    """Seconds after the fault when writes were acknowledged again after the longest outage."""
    if tally.unavailable_from is None or not tally.failed:
        return None
    return tally.unavailable_from + tally.unavailable - fault_at


def _relative(attempts: list[probe.Attempt], fault_at: float) -> list[tuple[float, float, bool]]:
    """(started, ended, ok) after the fault; conflicts left out (the server worked)."""
    return [(a.started - fault_at, a.ended - fault_at, a.ok) for a in attempts if not a.conflict]
