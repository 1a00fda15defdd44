"""Failure rehearsals, measured: what the clients of the write endpoint see while a fault happens.

One drill: wait for a healthy cluster, start the clients (:class:`~pglab.drills.crowd.Crowd`: ``clients``
writers of a workload, each a :class:`~pglab.drills.probe.WriteProbe` on its own connection through the
lab's write endpoint, readers, background load), let writes succeed for a moment, trigger the fault
(on the leader, or a chosen node), wait until writes have succeeded again for a while, restore the
node, wait for a healthy cluster, stop the clients and read the workload's state back from the new
primary: how long writes were unavailable, which acknowledged writes are missing, which failed
writes committed nonetheless, and what the checkers (:mod:`pglab.drills.invariants`) found: two primaries
at once, a changed total, appends lost, doubled or out of order.

Written only against :class:`~pglab.lab.Lab`, its provider and its stack (through
:mod:`pglab.operations`), so it rehearses every stack and provider alike.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import resource
import signal
import statistics
import subprocess
import sys
import time
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from pglab import operations
from pglab.drills import background_load, figures, freshness, invariants, probe, workloads
from pglab.drills.crowd import Crowd, CrowdSpec
from pglab.errors import InputError, PglabError
from pglab.lab import EventSink, Lab, ignore_event
from pglab.stacks.base import StackError

if typing.TYPE_CHECKING:
    from pglab.drills.restore_drill import RestoreFigures

KINDS = ("switchover", "failover", "crash", "hang", "partition", "restart", "certs", "certs-ca", "restore")
CERT_ROTATIONS = {"certs": False, "certs-ca": True}  # drill kind -> whether the CA is rotated too
NODE_FAULTS = ("crash", "hang", "partition")  # the faults that hit one node, then restore it
WARMUP = 2.0  # seconds of acknowledged writes before the fault
HOLD = 3.0  # seconds of acknowledged writes that count as recovered
RECOVER_TIMEOUT = 120.0  # seconds for writes to come back after the fault's operation returned


@dataclass
class Marker:
    at: float  # seconds after the fault began
    what: str


@dataclass
class DrillResult:
    kind: str
    run: int
    started: str  # wall clock, ISO 8601
    node: str | None  # the node the fault hit (None: the cluster's leader, by the stack)
    old_leader: str | None
    new_leader: str | None
    recovered: bool
    tally: probe.Tally
    markers: list[Marker] = field(default_factory=list)
    operations: list[str] = field(default_factory=list)  # each operation's summary, in order
    problem: str | None = None  # why the drill failed, if it did
    # The probe's attempts, seconds after the fault: (started, ended, ok); for the timeline.
    attempts: list[tuple[float, float, bool]] = field(default_factory=list)
    # A partition's other side: a client on the cut-off node's machine (see BesideFigures).
    beside: BesideFigures | None = None
    beside_attempts: list[tuple[float, float, bool]] = field(default_factory=list)
    clients: ClientFigures | None = None
    # What ran, even when the drill ended before its clients' figures could be gathered.
    workload: str = "insert"
    spec: CrowdSpec = field(default_factory=CrowdSpec)
    # A restore drill's own figures: the target, writes lost and extra, the restore's phases.
    restored: RestoreFigures | None = None

    @property
    def anomalies(self) -> list[invariants.Anomaly]:
        return self.clients.anomalies if self.clients else []

    @property
    def ok(self) -> bool:
        return (self.recovered and not self.tally.lost and not self.anomalies and self.problem is None
                and not (self.restored and self.restored.extra))

    def as_json(self) -> dict[str, Any]:
        t = self.tally
        return {
            "kind": self.kind, "run": self.run, "started": self.started, "node": self.node,
            "old_leader": self.old_leader, "new_leader": self.new_leader, "recovered": self.recovered,
            "ok": self.ok, "problem": self.problem,
            "unavailable_s": round(t.unavailable, 3), "attempts": t.attempts, "acknowledged": t.acknowledged,
            "failed": t.failed, "lost": len(t.lost), "lost_ids": t.lost[:100],
            "failed_committed": len(t.failed_committed), "failed_committed_ids": t.failed_committed[:100],
            "errors": dict(list(t.errors.items())[:10]),
            "markers": [{"at": round(m.at, 3), "what": m.what} for m in self.markers],
            "operations": self.operations, "timeline": png_name(self), "workload": self.workload,
            "clients": self.spec.clients, "readers": self.spec.readers, "load_tps": self.spec.load_tps,
            "cut_off_side": None if self.beside is None else self.beside.as_json(),
            **(self.clients.as_json() if self.clients else {}),
            **(self.restored.as_json() if self.restored else {}),
        }


@dataclass
class ClientFigures:
    """What many clients add to a drill: the workload and its checks, figures per client and for
    the drill, replica staleness, the lag at the fault, what the probe cost."""

    workload: str
    spec: CrowdSpec
    checks: dict[str, int]  # check -> anomalies found (0: the rule held)
    anomalies: list[invariants.Anomaly]
    primaries: list[str]  # the servers that acknowledged writes, in the order they began to
    discarded: dict[str, int]  # acknowledged writes missing from the new primary, per server that took them
    per_client: list[dict[str, Any]]
    throughput: dict[str, float | None]
    conflicts: int
    replication: str  # sync or async: what the primary's pg_stat_replication said before the fault
    lag_at_fault: dict[str, Any]
    staleness: dict[str, Any] | None  # read-your-writes through the read endpoint
    reads: dict[str, int]  # endpoint -> successful reads (the bank's sums)
    load: dict[str, Any] | None
    cpu: dict[str, float]  # this process's CPU seconds during the drill, and the share of one core

    def as_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload, "clients": self.spec.clients, "readers": self.spec.readers,
            "load_tps": self.spec.load_tps, "replication": self.replication, "checks": self.checks,
            "anomalies": [a.as_json() for a in self.anomalies[:20]], "primaries": self.primaries,
            "discarded": self.discarded, "conflicts": self.conflicts, "throughput": self.throughput,
            "per_client": self.per_client, "staleness": self.staleness, "reads": self.reads,
            "lag_at_fault": self.lag_at_fault, "load": self.load, "cpu": self.cpu,
        }


@dataclass
class BesideFigures:
    """What a client on the cut-off node's own machine saw: writes its (old) leader accepted after
    the partition began, when it last did, and whether that overlapped the new primary's writes."""

    acknowledged_after_fault: int
    last_ok_s: float | None  # seconds after the fault, None: not one write accepted after it
    lost: int  # of those, missing from the new primary (rewound away when the node rejoined)
    overlap_s: float  # seconds during which both sides acknowledged writes (two primaries); 0 is right

    def as_json(self) -> dict[str, Any]:
        return {"acknowledged_after_fault": self.acknowledged_after_fault,
                "last_ok_s": None if self.last_ok_s is None else round(self.last_ok_s, 3),
                "lost": self.lost, "two_primaries_s": round(self.overlap_s, 3)}


def check_kind(lab: Lab, kind: str, node: str | None) -> None:
    if kind not in KINDS:
        raise InputError(f"unknown drill {kind!r}; choose one of: {', '.join(KINDS)}")
    if node is not None:
        if kind not in NODE_FAULTS:  # a restore restores the whole cluster
            raise InputError(f"--node applies to {', '.join(NODE_FAULTS)}; a {kind} always acts on the leader")
        lab.node(node)  # an InputError naming the lab's nodes


def run(lab: Lab, kind: str, number: int = 1, node: str | None = None, timeout: float = 90.0,
        on_event: EventSink = ignore_event, log: Callable[[str], None] = lambda _: None,
        workload: str = "insert", spec: CrowdSpec | None = None) -> DrillResult:
    """One drill of ``kind``; never raises for what the fault did, only reports it."""
    check_kind(lab, kind, node)
    if kind == "restore":
        from pglab.drills import restore_drill

        return restore_drill.run(lab, number, timeout, on_event)
    spec = spec or CrowdSpec()
    work = workloads.get(workload, spec.clients)
    health = lab.wait_healthy(timeout * 2, on_event)
    old_leader = health.leader
    target = node or old_leader
    conninfo = lab.writes_conninfo()
    with psycopg.connect(autocommit=True, **conninfo) as conn:
        probe.prepare_table_on(conn)  # the probe beside a cut-off node writes there, whatever the workload
        work.prepare(conn)
        if spec.load_tps:
            background_load.prepare(conn)
    crowd = Crowd.gather(work, spec, conninfo, lab.reads_conninfo())
    beside = _spawn_beside(lab, target) if kind == "partition" and target else None
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    markers: list[Marker] = []
    summaries: list[str] = []
    problem: str | None = None
    recovered = False
    lag: dict[str, Any] = {}
    cpu_before, wall_before = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    crowd.start()
    fault_at, fault_wall = time.monotonic(), time.time()
    try:
        if not crowd.wait_succeeding(time.monotonic(), WARMUP, 60):
            raise PglabError(f"writes through {conninfo['host']}:{conninfo['port']} did not succeed before the {kind}: "
                             f"{crowd.last_error()}")
        lag = background_load.lag(conninfo)
        fault_at, fault_wall = time.monotonic(), time.time()
        markers.append(Marker(0.0, f"{kind} {target or ''}".strip()))
        log(f"drill {kind} #{number}: {kind} of {target} (leader {old_leader}) ...")
        try:
            outcome = _fault(lab, kind, target, timeout, on_event)
            summaries.append(outcome.summary)
            markers.append(Marker(time.monotonic() - fault_at, _returned_text(kind, outcome.details)))
            log(outcome.summary)
        except (PglabError, StackError, OSError) as exc:
            problem = f"the {kind} did not complete: {exc}"
        recovered = crowd.wait_succeeding(fault_at, HOLD, RECOVER_TIMEOUT)
        if not recovered:
            problem = problem or (f"writes did not succeed for {HOLD:g} s within {RECOVER_TIMEOUT:g} s; "
                                  f"last error: {crowd.last_error()}")
        if kind in NODE_FAULTS and target is not None:
            markers.append(Marker(time.monotonic() - fault_at, f"start {target}"))
            try:
                restored = operations.start_node(lab, target, timeout=timeout * 2, on_event=on_event)
                summaries.append(restored.summary)
                log(restored.summary)
            except (PglabError, StackError, OSError) as exc:
                problem = problem or f"{target} did not come back: {exc}"
                recovered = False
            if not crowd.wait_succeeding(time.monotonic(), HOLD, RECOVER_TIMEOUT):
                problem = problem or f"writes failed after {target} came back: {crowd.last_error()}"
                recovered = False
    finally:
        crowd.stop()
        cpu_after, wall_after = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        beside_attempts = _stop_beside(beside)
    attempts = crowd.writes()
    try:
        after = lab.wait_healthy(timeout * 2, on_event)
        markers.append(Marker(time.monotonic() - fault_at, "healthy"))
        with psycopg.connect(autocommit=True, **conninfo) as conn:
            written = work.read_back(conn)
            beside_present = probe.read_ids_on(conn) if beside is not None else set()
    except (PglabError, StackError, OSError, psycopg.Error) as exc:
        return DrillResult(kind, number, started, target, old_leader, None, False,
                           probe.tally(attempts, set(a.id for a in attempts if a.ok), fault_at), markers,
                           summaries, problem or f"the cluster did not become healthy again: {exc}",
                           _relative(attempts, fault_at), workload=workload, spec=spec)
    tally = probe.tally(attempts, written.present, fault_at)
    resumed = _writes_resumed(attempts, fault_at, tally)
    if resumed is not None:
        markers.append(Marker(resumed, "writes resumed"))
    markers.sort(key=lambda m: m.at)
    if crowd.crashed:
        problem = problem or f"a client died: {crowd.crashed}"
    result = DrillResult(kind, number, started, target, old_leader, after.leader, recovered, tally, markers,
                         summaries, problem, _relative(attempts, fault_at), workload=workload, spec=spec)
    # The probe beside a cut-off node kept wall-clock times: put them on the drill's clock.
    beside_mono = [dataclasses.replace(a, started=a.started - fault_wall + fault_at,
                                       ended=a.ended - fault_wall + fault_at) for a in beside_attempts]
    result.clients = _client_figures(work, spec, crowd, attempts, written, beside_mono, beside_present, fault_at,
                                     resumed, lag, (cpu_before, cpu_after, wall_after - wall_before))
    if beside is not None:
        _judge_beside(result, beside_attempts, fault_wall, beside_present, resumed)
    return result


def _client_figures(work: workloads.Workload, spec: CrowdSpec, crowd: Crowd, attempts: list[probe.Attempt],
                    outcome: workloads.Outcome, beside: list[probe.Attempt], beside_present: set[int],
                    fault_at: float, resumed: float | None, lag: dict[str, Any],
                    cpu: tuple[Any, Any, float]) -> ClientFigures:
    """Run the checkers over every client's history and gather the figures."""
    reads = crowd.reads()
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
        staleness=freshness.summary(crowd.freshness.snapshot(), fault_at, resumed) if crowd.freshness else None,
        reads={where: sum(a.ok for a in done) for where, done in reads.items()},
        load=crowd.load_figures(seconds),
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


def _judge_beside(result: DrillResult, attempts: list[probe.Attempt], fault_wall: float, present: set[int],
                  resumed: float | None) -> None:
    """The partition's proof: the cut-off leader stopped acknowledging writes before the new primary
    began (no two primaries at once)."""
    after = [a for a in attempts if a.ok and a.ended >= fault_wall]
    last_ok = max((a.ended - fault_wall for a in after), default=None)
    first_new = resumed if resumed is not None else 0.0
    overlap = max(0.0, (last_ok or 0.0) - first_new) if last_ok is not None and resumed is not None else 0.0
    result.beside = BesideFigures(len(after), last_ok, sum(a.id not in present for a in after), overlap)
    result.beside_attempts = [(a.started - fault_wall, a.ended - fault_wall, a.ok) for a in attempts]
    if last_ok is not None:
        result.markers.append(Marker(last_ok, f"{result.node}'s last local write"))
        result.markers.sort(key=lambda m: m.at)
    if overlap > 0:
        result.problem = result.problem or (f"two primaries: {result.node}, cut off, still acknowledged writes "
                                            f"{overlap:.2f} s after the new primary began")


def _fault(lab: Lab, kind: str, target: str | None, timeout: float, on_event: EventSink) -> operations.OpResult:
    if kind == "switchover":
        return operations.switchover(lab, timeout=timeout, on_event=on_event)
    if kind == "failover":
        members = lab.stack().health().streaming_replicas
        if not members:
            raise PglabError("no streaming replica to fail over to")
        return operations.failover(lab, members[0].name, timeout=timeout, on_event=on_event)
    if kind == "restart":
        return operations.restart(lab, rolling=True, timeout=timeout * 3, on_event=on_event)
    if kind in CERT_ROTATIONS:
        from pglab.tls import rotation

        return rotation.rotate(lab, new_ca=CERT_ROTATIONS[kind], timeout=timeout, on_event=on_event)
    if target is None:
        raise PglabError("the cluster has no leader to break; name a node with --node")
    mode = typing.cast(operations.StopMode, kind)  # one of NODE_FAULTS here: stop, crash, hang, partition
    return operations.stop_node(lab, target, mode, timeout=timeout, on_event=on_event)


def _returned_text(kind: str, details: dict[str, Any]) -> str:
    if details.get("new_leader") and details.get("old_leader", details.get("node")) != details["new_leader"]:
        return f"leader {details.get('old_leader') or details.get('node')} -> {details['new_leader']}"
    return f"{kind} done"


def _writes_resumed(attempts: list[probe.Attempt], fault_at: float, tally: probe.Tally) -> float | None:
    if tally.unavailable_from is None or not tally.failed:
        return None
    return tally.unavailable_from + tally.unavailable - fault_at


def _relative(attempts: list[probe.Attempt], fault_at: float) -> list[tuple[float, float, bool]]:
    """(started, ended, ok) after the fault; conflicts left out (the server worked)."""
    return [(a.started - fault_at, a.ended - fault_at, a.ok) for a in attempts if not a.conflict]


# Summaries --------------------------------------------------------------------------------------
def spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def setting(line: dict[str, Any]) -> str:
    """A drill's setting in words, from its JSON line: workload, clients, load, replication."""
    clients = line.get("clients", 1)
    words = [line.get("workload", "insert"), f"{clients} client{'s' if clients != 1 else ''}"]
    if line.get("readers"):
        words.append(f"{line['readers']} reader{'s' if line['readers'] != 1 else ''}")
    if line.get("load_tps"):
        words.append(f"load {line['load_tps']:g}/s")
    if line.get("replication"):
        words.append(line["replication"])
    return ", ".join(words)


def summary(results: list[DrillResult]) -> list[dict[str, Any]]:
    """One row per kind and setting (see :func:`summary_of_lines`)."""
    return summary_of_lines([r.as_json() for r in results])


def summary_of_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per kind and setting, from drills' JSON lines: unavailability spread, writes lost
    and failed-but-committed, anomalies per check, leaders."""
    rows = []
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for line in lines:
        groups.setdefault((line["kind"], setting(line)), []).append(line)
    for (kind, words), mine in groups.items():
        unavailable = spread([line["unavailable_s"] for line in mine])
        checks: dict[str, int] = {}
        for line in mine:
            for check, count in (line.get("checks") or {"lost": line["lost"]}).items():
                checks[check] = checks.get(check, 0) + count
        rows.append({
            "kind": kind, "setting": words, "drills": len(mine),
            "recovered": sum(bool(line["recovered"]) for line in mine),
            "unavailable_s": None if unavailable is None else {k: round(v, 2) for k, v in unavailable.items()},
            # every client's: the endpoint's writers and, in a partition, the one beside the cut-off node
            "lost": sum((line.get("checks") or {}).get("lost", line["lost"]) for line in mine),
            "failed_committed": sum(line["failed_committed"] for line in mine),
            "checks": checks, "anomalies": sum(checks.values()),
            "leaders": [f"{line['old_leader']} -> {line['new_leader']}" for line in mine],
            "ok": all(line["ok"] for line in mine),
        })
    return rows


def write_json_line(result: DrillResult, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "drills.jsonl"
    with path.open("a") as f:
        f.write(json.dumps(result.as_json()) + "\n")
    return path


def png_name(result: DrillResult) -> str:
    return timeline_name(result.kind, result.started, result.run)


def timeline_name(kind: str, started: str, run: int) -> str:
    """The PNG timeline's file name of a drill (its JSON line has it as ``timeline``)."""
    stamp = started.replace(":", "").replace("-", "").replace("+0000", "Z")
    return f"{kind}-{stamp}-{run}.png"
