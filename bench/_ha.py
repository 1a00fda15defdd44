"""The harness shared by bench/switchover.py and bench/failover.py: `pglab drill` on a lab of its own.

One lab (``benchha``, the default topology of ``--stack``, own loopback range) is brought up in a
temporary directory and reused by every run; it is always destroyed. Each run is one
:func:`pglab.drills.frame.run` of the kind (write probe through the lab's write endpoint: HAProxy, or the
pg_auto_failover formation's multi-host URI; the fault, recovery, the node restored, the table
read back from the new primary); the figures are the drill's.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import psycopg
from _common import BenchFailure, TimeLimit, log, parse_args, time_limit, write_topology

from pglab.drills import frame, kinds
from pglab.drills.result import DrillResult
from pglab.drills.summary import summary
from pglab.lab import Lab, PglabError
from pglab.stacks.base import StackError

LAB_NAME = "benchha"
DEFAULT_LOOPBACK = "127.0.32.0/24"  # not a user's lab (127.0.11.x), the tests (127.0.21-22.x) nor bench/up.py
UP_LIMIT = 300.0  # seconds: a longer up() is a failure
HEALTH_TIMEOUT = 180.0


def bring_up(lab: Lab) -> float:
    started = time.monotonic()
    try:
        with time_limit(UP_LIMIT):
            lab.up(timeout=HEALTH_TIMEOUT)
    except TimeLimit:
        raise BenchFailure(f"lab {LAB_NAME} not healthy after {UP_LIMIT:.0f} s") from None
    except PglabError as exc:
        raise BenchFailure(f"`up` failed: {exc}") from None
    return time.monotonic() - started


def report(kind: str, loopback: str, results: list[DrillResult], as_json: bool,
           stack: str = "patroni") -> None:
    rows = summary(results)
    if as_json:
        print(json.dumps({"lab": LAB_NAME, "stack": stack, "loopback": loopback, "kind": kind, "summary": rows,
                          "runs": [r.as_json() for r in results]}, indent=2))
        return
    print(f"{'run':>3}  {'leader':<12}  {'unavailable (s)':>15}  {'failed':>6}  {'acked':>6}  {'lost':>4}  "
          f"{'failed+committed':>16}")
    for r in results:
        t = r.tally
        print(f"{r.run:>3}  {f'{r.old_leader} -> {r.new_leader}':<12}  {t.unavailable:>15.2f}  {t.failed:>6}  "
              f"{t.acknowledged:>6}  {len(t.lost):>4}  {len(t.failed_committed):>16}"
              + (f"  {r.problem}" if r.problem else ""))
    for row in rows:
        u = row["unavailable_s"]
        print(f"{kind} ({stack}) over {row['drills']} run(s): write unavailability min {u['min']:.2f}  "
              f"median {u['median']:.2f}  max {u['max']:.2f} s; acknowledged writes lost: {row['lost']}; "
              f"failed but committed: {row['failed_committed']}")


def main(kind: str, doc: str, argv: list[str] | None = None) -> int:
    args = parse_args(doc, "drills on the same lab, one after another", DEFAULT_LOOPBACK, argv)
    results: list[DrillResult] = []
    with tempfile.TemporaryDirectory(prefix=f"pglab-bench-{kind}-") as tmp:
        lab = Lab.from_file(write_topology(Path(tmp), LAB_NAME, args.loopback, args.stack))
        missing = lab.missing_prerequisites()
        if missing:
            log("this benchmark needs a lab without package installs, but these are missing: "
                + "; ".join(missing) + ". Install them first (as root: `pglab prepare`), then run it again.")
            return 1
        try:
            log(f"lab {LAB_NAME} ({args.stack}) on {args.loopback}: up ...")
            log(f"lab {LAB_NAME}: healthy after {bring_up(lab):.1f} s")
            for number in range(1, args.runs + 1):
                result = frame.run(lab, kinds.make(kind), number, log=log)
                log(f"run {number}: {result.old_leader} -> {result.new_leader}, unavailable "
                    f"{result.tally.unavailable:.2f} s, {len(result.tally.lost)} lost")
                results.append(result)
                if not result.recovered:
                    raise BenchFailure(f"run {number}: {result.problem}")
        except (BenchFailure, PglabError, StackError, psycopg.Error) as exc:
            log(f"FAILED ({type(exc).__name__}): {exc}")
            if results:
                report(kind, args.loopback, results, args.json, args.stack)
            return 1
        finally:
            log(f"lab {LAB_NAME}: destroy")
            lab.destroy()
    report(kind, args.loopback, results, args.json, args.stack)
    return 0
