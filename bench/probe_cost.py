"""What the drill's clients cost this machine: CPU of N writers at full speed, no fault.

Brings up one lab (``benchprobe``, the default topology, its own loopback range) in a temporary
directory and, for each workload, runs the drill's clients (:class:`pglab.drills.crowd.Crowd`: ``--clients``
writers through the write endpoint, ``--readers``) for ``--seconds`` seconds, then prints the
writes acknowledged per second and this process's CPU (user + system, from getrusage) as a share
of one core. The servers' own CPU (PostgreSQL, HAProxy) is not the probe's and is not counted.
The lab is always destroyed.

    .venv/bin/python bench/probe_cost.py --clients 16 --seconds 20 --loopback 127.0.32.0/24
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from _common import TimeLimit, log, time_limit, write_topology

from pglab.drills import probe, workloads
from pglab.drills.crowd import Crowd, CrowdSpec
from pglab.lab import Lab, PglabError

LAB_NAME = "benchprobe"


def measure(lab: Lab, workload: str, spec: CrowdSpec, seconds: float) -> tuple[float, float, int]:
    """(acknowledged writes a second, cores used, conflicts) of the clients over ``seconds``."""
    work = workloads.get(workload, spec.clients)
    conninfo = lab.writes_conninfo()
    with psycopg.connect(autocommit=True, **conninfo) as conn:
        probe.prepare_table_on(conn)
        work.prepare(conn)
    crowd = Crowd.gather(work, spec, conninfo, lab.reads_conninfo())
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    crowd.start()
    time.sleep(seconds)
    crowd.stop()
    after, wall = resource.getrusage(resource.RUSAGE_SELF), time.monotonic() - started
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    writes = crowd.writes()
    return sum(a.ok for a in writes) / wall, used / wall, sum(a.conflict for a in writes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--readers", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--workloads", default="insert,bank,append")
    parser.add_argument("--loopback", default="127.0.32.0/24")
    args = parser.parse_args(argv)
    if not args.loopback.startswith("127."):
        parser.error("--loopback must be a 127.x.y.z range")
    rows = []
    with tempfile.TemporaryDirectory(prefix="pglab-bench-probe-") as tmp:
        lab = Lab.from_file(write_topology(Path(tmp), LAB_NAME, args.loopback))
        try:
            log(f"lab {LAB_NAME} on {args.loopback}: up ...")
            with time_limit(300):
                lab.up(timeout=180)
            for workload in args.workloads.split(","):
                rate, cores, conflicts = measure(lab, workload, CrowdSpec(args.clients, args.readers), args.seconds)
                rows.append((workload, rate, cores, conflicts))
                log(f"{workload}: {rate:.0f} writes/s, {cores:.2f} cores")
        except (TimeLimit, PglabError, psycopg.Error) as exc:
            log(f"FAILED ({type(exc).__name__}): {exc}")
            return 1
        finally:
            log(f"lab {LAB_NAME}: destroy")
            lab.destroy()
    print(f"{args.clients} clients, {args.readers} readers, {args.seconds:g} s each, no fault")
    print(f"{'workload':<8} {'acked/s':>8} {'cores':>6} {'conflicts':>9}")
    for workload, rate, cores, conflicts in rows:
        print(f"{workload:<8} {rate:>8.0f} {cores:>6.2f} {conflicts:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
