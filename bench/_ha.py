"""The harness shared by bench/switchover.py and bench/failover.py.

One lab (``benchha``, the default topology of ``--stack``, own loopback range) is brought up in
a temporary directory and reused by every run; it is always destroyed. A run: wait until the
cluster is healthy, empty ``bench_writes``, start the :class:`~_writer.Writer` through the lab's
writes endpoint (HAProxy's 5000 for Patroni, the multi-host URI with target_session_attrs=read-write
for pg_auto_failover), let writes succeed for WARMUP seconds, perform the scenario's operation(s),
keep writing until writes have succeeded for HOLD seconds after the last operation returned, stop
the writer, wait until the cluster is healthy and read the table back through the same endpoint to
count acknowledged writes lost.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from _common import BenchFailure, TimeLimit, log, parse_args, time_limit, write_topology
from _writer import WriteFigures, Writer, figures, prepare_table, read_ids

from pglab.lab import Lab, PglabError, Waiting
from pglab.operations import OpResult
from pglab.stacks.base import StackError

LAB_NAME = "benchha"
DEFAULT_LOOPBACK = "127.0.32.0/24"  # not a user's lab (127.0.11.x), the tests (127.0.21-22.x) nor bench/up.py
UP_LIMIT = 300.0  # seconds: a longer up() is a failure
HEALTH_TIMEOUT = 180.0  # up()'s and each run's wait for a healthy cluster
WARMUP = 3.0  # seconds of acknowledged writes before the operation
HOLD = 3.0  # seconds of acknowledged writes after the last operation returned
RESUME_TIMEOUT = 60.0  # ... which must happen within this many seconds

Log = Callable[[str], None]
# perform(lab, leader before the run, on_event, log) -> the operations' results, in order
Perform = Callable[[Lab, str, Callable[[Any], None], Log], list[OpResult]]


@dataclass(frozen=True)
class Scenario:
    name: str  # switchover | failover
    what: str  # the operation in words, for messages
    perform: Perform


@dataclass
class Run:
    number: int
    old_leader: str
    new_leader: str | None
    ops: list[OpResult]
    writes: WriteFigures
    seconds: float  # the whole run, writer start to writer stop

    def as_json(self) -> dict[str, Any]:
        return {
            "run": self.number, "old_leader": self.old_leader, "new_leader": self.new_leader,
            "seconds": round(self.seconds, 2), "writes": self.writes.as_json(),
            "operations": [{"action": op.action, "seconds": round(op.seconds, 2), "summary": op.summary,
                            "details": op.details} for op in self.ops],
        }


def bring_up(lab: Lab) -> float:
    """``lab.up()`` under a hard limit of UP_LIMIT seconds; returns its seconds."""
    started = time.monotonic()
    try:
        with time_limit(UP_LIMIT):
            lab.up(timeout=HEALTH_TIMEOUT)
    except TimeLimit:
        raise BenchFailure(f"lab {LAB_NAME} not healthy after {UP_LIMIT:.0f} s") from None
    except PglabError as exc:
        raise BenchFailure(f"`up` failed: {exc}") from None
    return time.monotonic() - started


def event_logger(log: Log, prefix: str) -> Callable[[Any], None]:
    """Log an operation's Waiting events when what it waits for changes, not every poll."""
    last = [""]

    def on_event(event: Any) -> None:
        if isinstance(event, Waiting) and event.detail != last[0]:
            last[0] = event.detail
            log(f"{prefix}: {event.elapsed:5.1f} s  {event.detail}")

    return on_event


def one_run(lab: Lab, number: int, scenario: Scenario, log: Log) -> Run:
    if not lab.routes_writes():
        raise BenchFailure(f"lab {LAB_NAME} has no writes endpoint that follows the leader (HAProxy, multi-host URI)")
    host, port = lab.writes_endpoint()
    password = lab.secrets()["patroni_superuser_password"]
    leader = lab.wait_healthy(HEALTH_TIMEOUT).leader
    if leader is None:
        raise BenchFailure(f"run {number}: the cluster reports no leader")
    prepare_table(host, port, password)
    writer = Writer(host, port, password)
    started = time.monotonic()
    writer.start()
    try:
        if not writer.wait_succeeding(started, WARMUP, RESUME_TIMEOUT):
            raise BenchFailure(f"run {number}: writes through {host}:{port} did not succeed for {WARMUP:.0f} s "
                               f"before the {scenario.what}; last error: {writer.last_error()}"
                               + _writer_state(writer))
        log(f"run {number}: {len(writer.acks)} writes acknowledged; {scenario.what} (leader {leader}) ...")
        op_started = time.monotonic()
        ops = scenario.perform(lab, leader, event_logger(log, f"run {number}"), log)
        op_done = time.monotonic()
        if not writer.wait_succeeding(op_done, HOLD, RESUME_TIMEOUT):
            raise BenchFailure(f"run {number}: writes did not succeed for {HOLD:.0f} s within {RESUME_TIMEOUT:.0f} s "
                               f"after the {scenario.what}; last error: {writer.last_error()}"
                               + _writer_state(writer))
    finally:
        writer.stop()
    seconds = (writer.ended_at or time.monotonic()) - started
    health = lab.wait_healthy(HEALTH_TIMEOUT)
    present = read_ids(host, port, password)
    writes = figures(writer, present, op_started)
    run = Run(number, leader, health.leader, ops, writes, seconds)
    log(f"run {number}: {leader} -> {health.leader}; longest gap {writes.longest_gap:.2f} s, "
        f"first failure -> ack {_opt(writes.first_failure_to_ack, 2)} s, {writes.failed} failed, "
        f"{writes.acknowledged} acknowledged, {len(writes.lost)} lost")
    for error, count in list(writes.errors.items())[:3]:
        log(f"run {number}:   {count:>4} x {error}")
    return run


def _writer_state(writer: Writer) -> str:
    if writer.crashed:
        return f" (the writer died: {writer.crashed})"
    if writer.hit_limit:
        return f" (the writer stopped at its {writer.limit:.0f} s limit)"
    return ""


def _opt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def op_text(op: OpResult) -> str:
    d = op.details
    extra = [f"{label} {d[key]:.1f}" for key, label in (("promoted_after", "promoted"), ("writes_after", "writes"))
             if isinstance(d.get(key), int | float)]
    if d.get("role"):
        extra.append(f"as {d['role']}")
    return f"{op.action} {op.seconds:.1f}" + (f" ({', '.join(extra)})" if extra else "")


def spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def spread_text(values: list[float]) -> str:
    s = spread(values)
    return "n/a" if s is None else f"min {s['min']:.2f}  median {s['median']:.2f}  max {s['max']:.2f}"


def report(scenario: Scenario, loopback: str, runs: list[Run], as_json: bool, stack: str = "patroni") -> None:
    gaps = [r.writes.longest_gap for r in runs]
    to_ack = [r.writes.first_failure_to_ack for r in runs if r.writes.first_failure_to_ack is not None]
    failed = [r.writes.failed for r in runs]
    lost = sum(len(r.writes.lost) for r in runs)
    if as_json:
        def rounded(values: list[float]) -> dict[str, float] | None:
            s = spread(values)
            return None if s is None else {k: round(v, 3) for k, v in s.items()}

        print(json.dumps({
            "lab": LAB_NAME, "stack": stack, "loopback": loopback, "scenario": scenario.name,
            "runs": [r.as_json() for r in runs],
            "unavailability": {"longest_gap": rounded(gaps), "first_failure_to_ack": rounded(to_ack)},
            "failed_attempts": {"total": sum(failed), "per_run": failed},
            "lost": lost,
        }, indent=2))
        return
    print(f"{'run':>3}  {'leader':<12}  {'gap (s)':>7}  {'fail->ack (s)':>13}  {'failed':>6}  {'acked':>6}  "
          f"{'lost':>4}  operations (s)")
    for r in runs:
        w = r.writes
        print(f"{r.number:>3}  {f'{r.old_leader} -> {r.new_leader}':<12}  {w.longest_gap:>7.2f}  "
              f"{_opt(w.first_failure_to_ack, 2):>13}  {w.failed:>6}  {w.acknowledged:>6}  {len(w.lost):>4}  "
              + "; ".join(op_text(op) for op in r.ops))
    print(f"{scenario.name} ({stack}) over {len(runs)} run(s), write unavailability (s):")
    print(f"  longest gap between acknowledged writes: {spread_text(gaps)}")
    print(f"  first failed write -> next acknowledged:  {spread_text(to_ack)}"
          + (f"  ({len(runs) - len(to_ack)} run(s) without a failed write)" if len(to_ack) < len(runs) else ""))
    print(f"failed attempts: {sum(failed)} in all ({', '.join(map(str, failed))})")
    print(f"acknowledged writes lost: {lost}"
          + "".join(f"\n  run {r.number}: ids {r.writes.lost[:20]}" for r in runs if r.writes.lost))


def main(scenario: Scenario, doc: str, argv: list[str] | None = None) -> int:
    args = parse_args(doc, "runs on the same lab, one after another", DEFAULT_LOOPBACK, argv)

    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix=f"pglab-bench-{scenario.name}-") as tmp:
        lab = Lab.from_file(write_topology(Path(tmp), LAB_NAME, args.loopback, args.stack))
        missing = lab.missing_prerequisites()
        if missing:
            log(f"bench/{scenario.name}.py needs a lab without package installs, but these are missing: "
                + "; ".join(missing) + ". Install them first (as root: `pglab prepare`), then run it again.")
            return 1
        try:
            log(f"lab {LAB_NAME} ({args.stack}) on {args.loopback}: up ...")
            log(f"lab {LAB_NAME}: healthy after {bring_up(lab):.1f} s")
            for number in range(1, args.runs + 1):
                runs.append(one_run(lab, number, scenario, log))
        except (BenchFailure, PglabError, StackError, psycopg.Error) as exc:
            log(f"FAILED ({type(exc).__name__}): {exc}")
            if runs:
                log(f"figures of the {len(runs)} run(s) completed before the failure:")
                report(scenario, args.loopback, runs, args.json, args.stack)
            return 1
        finally:
            log(f"lab {LAB_NAME}: destroy")
            lab.destroy()
    report(scenario, args.loopback, runs, args.json, args.stack)
    return 0
