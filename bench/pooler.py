"""PgBouncer's worth and its cost: transactions a second of clients that open a new TLS connection
for every transaction, through the pooled write endpoint and through the direct one, and the
seconds the pooler adds to `up`.

(a) ``--clients`` (64) pgbench clients, ``pgbench -C``: a new connection (``verify-full`` TLS,
SCRAM) for every transaction, one short transaction each (``--sql``, default ``SELECT 1``, so the
connection is what is measured, not a commit's flush), for ``--seconds`` (20) through HAProxy
5000 (the leader's PgBouncer) and 5002 (the leader's PostgreSQL), alternating, ``--runs`` times
each. It prints transactions a second, pgbench's average connection time, the CPU of pgbench
(the clients' TLS and SCRAM), of the leader's PgBouncer and of the leader's node, and how busy
the machine was; then the ratio (goal: pooled at least 2x direct) and, below the goal, why, from
those figures.

(b) The pooler's cost on `up`: a fresh lab (``benchpooler``, the default Patroni topology) without
the pooler, then one with it, seconds to healthy each (``--skip-up-cost`` skips the first and does
not time the second). The lab with the pooler serves (a).

Prints figures, asserts nothing, always destroys its labs.

    .venv/bin/python bench/pooler.py [--seconds 20] [--clients 64] [--runs 3] [--skip-up-cost]
                                     [--loopback 127.0.32.0/24] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg
from _common import BenchFailure, TimeLimit, log, parse_args, time_limit, write_topology
from up import Timed, phase_text, timed_up

from pglab.errors import PglabError
from pglab.lab import Lab
from pglab.providers.local import LocalProvider

LAB_NAME = "benchpooler"
DEFAULT_LOOPBACK = "127.0.32.0/24"  # the drill benches' range: one of them at a time
HEALTH_TIMEOUT = 180.0
GOAL = 2.0  # pooled transactions a second over direct
PATHS = ("pooler", "direct")


@dataclass
class Throughput:
    """One pgbench run through one path."""

    via: str
    run: int
    tps: float
    transactions: int
    connection_ms: float  # pgbench's average connection time
    latency_ms: float  # pgbench's average latency, reconnection included
    client_cores: float  # pgbench's own CPU (TLS handshakes, SCRAM proofs), cores
    pooler_cores: float | None  # the leader's PgBouncer, cores (it is single-threaded: at most 1)
    leader_cores: float | None  # the leader's node (its cgroup: PostgreSQL, PgBouncer, Patroni), cores
    machine_busy: float  # share of all the machine's cores busy
    load_average: float  # the 1-minute load average when the run ended


# CPU figures ------------------------------------------------------------------------------------
def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of every core since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _process_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    after_name = stat.rsplit(")", 1)[1].split()
    return (int(after_name[11]) + int(after_name[12])) / os.sysconf("SC_CLK_TCK")


def _cgroup_seconds(lab: Lab, node_name: str) -> float | None:
    """CPU seconds of the node's cgroup (exited backends included); None without cgroups."""
    provider = lab.provider
    cgroup = provider.cgroup(lab.topology.node(node_name)) if isinstance(provider, LocalProvider) else None
    if cgroup is None or not cgroup.exists():
        return None
    stat = dict(line.split() for line in (cgroup.path / "cpu.stat").read_text().splitlines())
    return int(stat["usage_usec"]) / 1e6


def _pgbouncer_pid(lab: Lab, node_name: str) -> int | None:
    provider = lab.provider
    if not isinstance(provider, LocalProvider):
        return None
    for pid in provider.node_pids(lab.topology.node(node_name)):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "pgbouncer":
                return pid
        except OSError:
            continue
    return None


# pgbench ----------------------------------------------------------------------------------------
def pgbench_path(lab: Lab) -> str:
    return f"/usr/lib/postgresql/{lab.topology.postgres.version}/bin/pgbench"


def _figure(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    if found is None:
        raise BenchFailure(f"pgbench printed no {pattern!r}:\n{text[-2000:]}")
    return float(found.group(1))


def pgbench(lab: Lab, via: str, run: int, clients: int, seconds: float, script: Path) -> Throughput:
    """``pgbench -C`` through the write endpoint of ``via``, with the CPU it and the leader used."""
    conninfo = lab.writes_conninfo(via)
    leader = lab.stack().leader()
    if leader is None:
        raise BenchFailure("no leader before the run")
    env = {**os.environ, "PGPASSWORD": str(conninfo["password"]), "PGSSLMODE": "verify-full",
           "PGSSLROOTCERT": str(lab.ca_file), "PGCONNECT_TIMEOUT": "10", "PGAPPNAME": "pglab-bench-pooler"}
    argv = [pgbench_path(lab), "-n", "-C", "-c", str(clients), "-j", str(min(clients, 4)), "-T", f"{seconds:g}",
            "-f", str(script), "-h", str(conninfo["host"]), "-p", str(conninfo["port"]), "-U", str(conninfo["user"]),
            str(conninfo["dbname"])]
    pooler_pid = _pgbouncer_pid(lab, leader)
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    before_machine, before_pooler = _machine_jiffies(), _process_seconds(pooler_pid) if pooler_pid else None
    before_leader, started = _cgroup_seconds(lab, leader), time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 120,
                          stdin=subprocess.DEVNULL)
    wall = time.monotonic() - started
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    after_machine, after_leader = _machine_jiffies(), _cgroup_seconds(lab, leader)
    if done.returncode != 0:
        raise BenchFailure(f"pgbench via {via} exited {done.returncode}:\n{(done.stderr or done.stdout)[-2000:]}")
    client_s = ((after_children.ru_utime - before_children.ru_utime)
                + (after_children.ru_stime - before_children.ru_stime))
    busy, total = (a - b for a, b in zip(after_machine, before_machine, strict=True))
    return Throughput(
        via=via, run=run,
        tps=_figure(r"tps = ([\d.]+)", done.stdout),
        transactions=int(_figure(r"number of transactions actually processed: (\d+)", done.stdout)),
        connection_ms=_figure(r"average connection time = ([\d.]+) ms", done.stdout),
        latency_ms=_figure(r"latency average = ([\d.]+) ms", done.stdout),
        client_cores=client_s / wall,
        pooler_cores=None if before_pooler is None or pooler_pid is None
        else (_process_seconds(pooler_pid) - before_pooler) / wall,
        leader_cores=None if before_leader is None or after_leader is None else (after_leader - before_leader) / wall,
        machine_busy=busy / total if total else 0.0,
        load_average=os.getloadavg()[0],
    )


def median(rows: list[Throughput], via: str, field: str) -> float | None:
    values = [getattr(r, field) for r in rows if r.via == via and getattr(r, field) is not None]
    return statistics.median(values) if values else None


def why_below_goal(rows: list[Throughput]) -> list[str]:
    """What the runs measured that explains a ratio below the goal, one sentence each."""
    cores = os.cpu_count() or 1
    reasons = []
    pooled_ms, direct_ms = median(rows, "pooler", "connection_ms"), median(rows, "direct", "connection_ms")
    reasons.append(
        "HAProxy relays TCP and terminates no TLS, so every new connection pays a full TLS handshake and a "
        "SCRAM exchange on both paths (with PgBouncer instead of PostgreSQL on the pooled one); the pooler "
        "saves only the backend's fork and start: average connection time "
        f"{direct_ms:.1f} ms direct against {pooled_ms:.1f} ms pooled.")
    # CPU per new connection (one transaction each): what the leader's node spends to let a client in.
    per_connection = {via: 1000 * (median(rows, via, "leader_cores") or 0.0) / (median(rows, via, "tps") or 1.0)
                      for via in PATHS}
    pooler_cores = median(rows, "pooler", "pooler_cores")
    if median(rows, "direct", "leader_cores") is not None:
        pooler_part = ("" if pooler_cores is None else
                       f" ({1000 * pooler_cores / (median(rows, 'pooler', 'tps') or 1.0):.1f} ms of it PgBouncer's)")
        reasons.append(
            f"the leader's node spent {per_connection['pooler']:.1f} ms of CPU per new connection on the pooled path"
            f"{pooler_part} against {per_connection['direct']:.1f} ms on the direct one: the pooler saves "
            f"{per_connection['direct'] - per_connection['pooler']:.1f} ms a connection, and the TLS handshake and "
            "SCRAM exchange it still pays are the rest.")
    if pooler_cores is not None and pooler_cores > 0:
        # One PgBouncer process takes every new client of the pooled path on one core; the direct
        # path's backends are processes of their own, spread over every core.
        pooler_ms = 1000 * pooler_cores / (median(rows, "pooler", "tps") or 1.0)
        reasons.append(f"PgBouncer is single-threaded: at {pooler_ms:.1f} ms of its CPU per new connection it "
                       f"cannot let in more than about {1000 / pooler_ms:.0f} clients a second, however many "
                       f"cores are free (it used {100 * pooler_cores:.0f} % of one), while the direct path's "
                       f"backends share all {cores} cores.")
    busy = [median(rows, via, "machine_busy") or 0.0 for via in PATHS]
    client = [median(rows, via, "client_cores") or 0.0 for via in PATHS]
    if min(busy) >= 0.85:
        reasons.append(
            f"the machine's {cores} cores were {100 * busy[0]:.0f} % (pooled) and {100 * busy[1]:.0f} % (direct) "
            f"busy, and pgbench itself (the clients' TLS handshakes and SCRAM proofs) used {client[0]:.2f} and "
            f"{client[1]:.2f} cores: clients and servers share the same CPU, which bounds both paths.")
    load = max(r.load_average for r in rows)
    if load > cores:
        reasons.append(f"the load average reached {load:.1f} on {cores} cores: other work shared the machine.")
    return reasons


# Labs -------------------------------------------------------------------------------------------
def bring_up(directory: Path, loopback: str, pooler: bool, timed: bool) -> tuple[Lab, Timed | None]:
    """A fresh lab with or without the pooler, up and healthy, and its time to healthy."""
    lab = Lab.from_file(write_topology(directory, LAB_NAME, loopback, pooler=pooler))
    what = f"lab {LAB_NAME} {'with' if pooler else 'without'} the pooler"
    log(f"{what} on {loopback}: up ...")
    try:
        if timed:
            took: Timed | None = timed_up(lab, what)
        else:
            with time_limit(300):
                lab.up(timeout=HEALTH_TIMEOUT)
            took = None
    except BaseException:
        lab.destroy()
        raise
    log(f"{what}: healthy" + (f" after {took.seconds:.1f} s ({phase_text(took.phases)})" if took else ""))
    return lab, took


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of each pgbench run (default 20)")
    parser.add_argument("--clients", type=int, default=64, help="concurrent pgbench clients (default 64)")
    parser.add_argument("--sql", default="SELECT 1", help="each transaction's SQL (default SELECT 1)")
    parser.add_argument("--skip-up-cost", action="store_true",
                        help="no lab without the pooler, no timing of `up`: only the transactions a second")


def print_report(up_cost: dict[str, Timed], rows: list[Throughput], clients: int, seconds: float) -> None:
    if len(up_cost) == 2:
        without, with_ = up_cost["without"], up_cost["with"]
        print(f"up to healthy: without the pooler {without.seconds:.1f} s, with it {with_.seconds:.1f} s "
              f"({with_.seconds - without.seconds:+.1f} s; goal at most +5 s)")
        for what, took in up_cost.items():
            print(f"  {what + ' the pooler':<18} phases (s): {phase_text(took.phases)}")
    if not rows:
        return
    print(f"{clients} clients, a new TLS connection for every transaction, {seconds:g} s a run")
    print(f"{'via':<7} {'run':>3} {'tps':>7} {'conn ms':>8} {'lat ms':>7} {'pgbench':>7} {'pooler':>6} "
          f"{'leader':>6} {'busy':>5} {'load':>5}")
    for r in rows:
        pooler = "-" if r.pooler_cores is None else f"{r.pooler_cores:.2f}"
        leader = "-" if r.leader_cores is None else f"{r.leader_cores:.2f}"
        print(f"{r.via:<7} {r.run:>3} {r.tps:>7.0f} {r.connection_ms:>8.1f} {r.latency_ms:>7.1f} "
              f"{r.client_cores:>7.2f} {pooler:>6} {leader:>6} {100 * r.machine_busy:>4.0f}% {r.load_average:>5.1f}")
    print("(pgbench, pooler, leader: cores used; busy: the machine's cores; load: 1-minute load average)")
    pooled, direct = median(rows, "pooler", "tps") or 0.0, median(rows, "direct", "tps") or 0.0
    ratio = pooled / direct if direct else 0.0
    print(f"median tps: pooler {pooled:.0f}, direct {direct:.0f}: ratio {ratio:.2f} (goal at least {GOAL:g})")
    if ratio < GOAL:
        print("below the goal, because:")
        for reason in why_below_goal(rows):
            print(f"- {reason}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], "pgbench runs through each path, alternating", DEFAULT_LOOPBACK,
                      argv, extra=options)
    if args.stack != "patroni":
        log("bench/pooler.py compares HAProxy's pooled and direct write endpoints, which only the Patroni lab "
            "has (pg_auto_failover's write endpoint stays direct)")
        return 1
    up_cost: dict[str, Timed] = {}  # "without" / "with" the pooler
    rows: list[Throughput] = []
    with tempfile.TemporaryDirectory(prefix="pglab-bench-pooler-") as tmp:
        script = Path(tmp) / "transaction.sql"
        script.write_text(args.sql.rstrip(";") + ";\n")
        missing = Lab.from_file(write_topology(Path(tmp), LAB_NAME, args.loopback, pooler=True)).missing_prerequisites()
        if missing:
            log("bench/pooler.py measures labs without package installs, but these are missing: "
                + "; ".join(missing) + ". Install them first (as root: `pglab prepare`), then run it again.")
            return 1
        try:
            if not args.skip_up_cost:
                plain, without = bring_up(Path(tmp) / "without", args.loopback, False, True)
                log(f"lab {LAB_NAME} without the pooler: destroy")
                plain.destroy()
                if without is not None:
                    up_cost["without"] = without
            lab, with_ = bring_up(Path(tmp) / "with", args.loopback, True, not args.skip_up_cost)
            if with_ is not None:
                up_cost["with"] = with_
            try:
                for run in range(1, args.runs + 1):
                    for via in PATHS:
                        lab.wait_healthy(60)
                        log(f"run {run} via {via}: pgbench -C -c {args.clients} for {args.seconds:g} s ...")
                        rows.append(pgbench(lab, via, run, args.clients, args.seconds, script))
                        log(f"run {run} via {via}: {rows[-1].tps:.0f} tps")
            finally:
                log(f"lab {LAB_NAME} with the pooler: destroy")
                lab.destroy()
        except (BenchFailure, TimeLimit, PglabError, psycopg.Error, subprocess.TimeoutExpired) as exc:
            log(f"FAILED ({type(exc).__name__}): {exc}")
            print_report(up_cost, rows, args.clients, args.seconds)
            return 1
    if args.json:
        pooled, direct = median(rows, "pooler", "tps") or 0.0, median(rows, "direct", "tps") or 0.0
        ratio = pooled / direct if direct else 0.0
        print(json.dumps({"lab": LAB_NAME, "loopback": args.loopback, "clients": args.clients,
                          "seconds": args.seconds, "sql": args.sql,
                          "up": {what: {"seconds": round(t.seconds, 2),
                                        "phases": {k: round(v, 2) for k, v in t.phases.items()}}
                                 for what, t in up_cost.items()},
                          "runs": [asdict(r) for r in rows], "ratio": round(ratio, 2), "goal": GOAL,
                          "why_below_goal": why_below_goal(rows) if ratio < GOAL else []}, indent=2))
        return 0
    print_report(up_cost, rows, args.clients, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
