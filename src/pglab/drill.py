"""Failure rehearsals, measured: what a client of the write endpoint sees while a fault happens.

One drill: wait for a healthy cluster, start a :class:`~pglab.probe.WriteProbe` through the lab's
write endpoint, let writes succeed for a moment, trigger the fault (on the leader, or a chosen
node), wait until writes have succeeded again for a while, restore the node, wait for a healthy
cluster, stop the probe and read its table back from the new primary: how long writes were
unavailable, which acknowledged writes are missing, which failed writes committed nonetheless.

Written only against :class:`~pglab.lab.Lab`, its provider and its stack (through
:mod:`pglab.operations`), so it rehearses every stack and provider alike.
"""

from __future__ import annotations

import datetime
import json
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

from pglab import operations, probe
from pglab.errors import InputError, PglabError
from pglab.lab import EventSink, Lab, ignore_event
from pglab.stacks.base import StackError

KINDS = ("switchover", "failover", "crash", "hang", "partition", "restart", "certs", "certs-ca")
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

    @property
    def ok(self) -> bool:
        return self.recovered and not self.tally.lost and self.problem is None

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
            "operations": self.operations,
            "cut_off_side": None if self.beside is None else self.beside.as_json(),
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
        if kind not in NODE_FAULTS:
            raise InputError(f"--node applies to {', '.join(NODE_FAULTS)}; a {kind} always acts on the leader")
        lab.node(node)  # an InputError naming the lab's nodes


def run(lab: Lab, kind: str, number: int = 1, node: str | None = None, timeout: float = 90.0,
        on_event: EventSink = ignore_event, log: Callable[[str], None] = lambda _: None) -> DrillResult:
    """One drill of ``kind``; never raises for what the fault did, only reports it."""
    check_kind(lab, kind, node)
    health = lab.wait_healthy(timeout * 2, on_event)
    old_leader = health.leader
    target = node or old_leader
    conninfo = lab.writes_conninfo()
    probe.prepare_table(conninfo)
    writer = probe.WriteProbe(conninfo)
    beside = _spawn_beside(lab, target) if kind == "partition" and target else None
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    markers: list[Marker] = []
    summaries: list[str] = []
    problem: str | None = None
    recovered = False
    writer.start()
    fault_at, fault_wall = time.monotonic(), time.time()
    try:
        if not writer.wait_succeeding(time.monotonic(), WARMUP, 60):
            raise PglabError(f"writes through {conninfo['host']}:{conninfo['port']} did not succeed before the {kind}: "
                             f"{writer.last_error()}")
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
        recovered = writer.wait_succeeding(fault_at, HOLD, RECOVER_TIMEOUT)
        if not recovered:
            problem = problem or (f"writes did not succeed for {HOLD:g} s within {RECOVER_TIMEOUT:g} s; "
                                  f"last error: {writer.last_error()}")
        if kind in NODE_FAULTS and target is not None:
            markers.append(Marker(time.monotonic() - fault_at, f"start {target}"))
            try:
                restored = operations.start_node(lab, target, timeout=timeout * 2, on_event=on_event)
                summaries.append(restored.summary)
                log(restored.summary)
            except (PglabError, StackError, OSError) as exc:
                problem = problem or f"{target} did not come back: {exc}"
                recovered = False
            if not writer.wait_succeeding(time.monotonic(), HOLD, RECOVER_TIMEOUT):
                problem = problem or f"writes failed after {target} came back: {writer.last_error()}"
                recovered = False
    finally:
        writer.stop()
        beside_attempts = _stop_beside(beside)
    attempts = writer.snapshot()
    try:
        after = lab.wait_healthy(timeout * 2, on_event)
        markers.append(Marker(time.monotonic() - fault_at, "healthy"))
        present = probe.read_ids(conninfo)
    except (PglabError, StackError, OSError) as exc:
        return DrillResult(kind, number, started, target, old_leader, None, False,
                           probe.tally(attempts, set(a.id for a in attempts if a.ok), fault_at), markers,
                           summaries, problem or f"the cluster did not become healthy again: {exc}",
                           _relative(attempts, fault_at))
    tally = probe.tally(attempts, present, fault_at)
    resumed = _writes_resumed(attempts, fault_at, tally)
    if resumed is not None:
        markers.append(Marker(resumed, "writes resumed"))
    markers.sort(key=lambda m: m.at)
    if writer.crashed:
        problem = problem or f"the write probe died: {writer.crashed}"
    result = DrillResult(kind, number, started, target, old_leader, after.leader, recovered, tally, markers,
                         summaries, problem, _relative(attempts, fault_at))
    if beside is not None:
        _judge_beside(result, beside_attempts, fault_wall, present, resumed)
    return result


def _spawn_beside(lab: Lab, target: str) -> Any:
    """A probe on the target's own machine, writing to its PostgreSQL directly (None if the
    provider cannot place one there)."""
    conninfo = {"host": lab.address(target), "port": lab.topology.ports.postgres, "dbname": "postgres",
                **lab.connect_kwargs()}
    return lab.provider.spawn_beside(lab.node(target), [sys.executable, "-m", "pglab.probe"],
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
        from pglab import rotation

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
    return [(a.started - fault_at, a.ended - fault_at, a.ok) for a in attempts]


# Summaries --------------------------------------------------------------------------------------
def spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def summary(results: list[DrillResult]) -> list[dict[str, Any]]:
    """One row per kind: unavailability spread, writes lost and failed-but-committed, leaders."""
    rows = []
    for kind in dict.fromkeys(r.kind for r in results):
        mine = [r for r in results if r.kind == kind]
        unavailable = spread([r.tally.unavailable for r in mine])
        rows.append({
            "kind": kind, "drills": len(mine), "recovered": sum(r.recovered for r in mine),
            "unavailable_s": None if unavailable is None else {k: round(v, 2) for k, v in unavailable.items()},
            "lost": sum(len(r.tally.lost) for r in mine),
            "failed_committed": sum(len(r.tally.failed_committed) for r in mine),
            "leaders": [f"{r.old_leader} -> {r.new_leader}" for r in mine],
            "ok": all(r.ok for r in mine),
        })
    return rows


def write_json_line(result: DrillResult, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "drills.jsonl"
    with path.open("a") as f:
        f.write(json.dumps(result.as_json()) + "\n")
    return path


def png_name(result: DrillResult) -> str:
    stamp = result.started.replace(":", "").replace("-", "").replace("+0000", "Z")
    return f"{result.kind}-{stamp}-{result.run}.png"
