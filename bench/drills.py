"""Drills with many clients on a lab of their own: what each kind of fault costs, what the checks
find, and what asynchronous replication loses under load next to synchronous replication.

Brings up one lab (``benchdrills``, the default topology of ``--stack`` with ``--set`` applied, on
its own loopback range) in a temporary directory, runs ``pglab drill KIND`` for each ``--kinds``
``--runs`` times with ``--clients`` writers of ``--workload``, ``--readers`` and ``--load`` TPS of
background writes, prints one row per drill and a summary per kind, and always destroys the lab.

    .venv/bin/python bench/drills.py --kinds crash,hang --clients 16 --workload bank --readers 4 --load 400
    .venv/bin/python bench/drills.py --kinds crash,hang --load 400 --set patroni.synchronous_mode=true
    .venv/bin/python bench/drills.py --stack pg_auto_failover --kinds crash

``--set`` takes a dotted path of the topology file and a YAML value (the stack's own settings
section: ``patroni.synchronous_mode=true``, ``pg_auto_failover.number_sync_standbys=1``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
import yaml
from _common import BenchFailure, TimeLimit, log, time_limit, write_topology

from pglab.drills import frame, kinds, timeline
from pglab.drills.crowd import CrowdSpec
from pglab.drills.result import png_name, write_json_line
from pglab.drills.summary import summary_of_lines
from pglab.drills.workloads import WORKLOADS
from pglab.lab import Lab, PglabError
from pglab.stacks.base import StackError

LAB_NAME = "benchdrills"
UP_LIMIT = 300.0


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default="crash", help="comma-separated drill kinds (default crash)")
    parser.add_argument("--runs", type=int, default=1, help="drills per kind (default 1)")
    parser.add_argument("--clients", type=int, default=16, help="writers (default 16)")
    parser.add_argument("--workload", choices=list(WORKLOADS), default="bank", help="default bank")
    parser.add_argument("--readers", type=int, default=4, help="readers (default 4)")
    parser.add_argument("--load", type=float, default=0.0, help="background write load, TPS (default 0)")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="PATH=VALUE",
                        help="a topology setting, e.g. patroni.synchronous_mode=true (repeatable)")
    parser.add_argument("--stack", choices=["patroni", "pg_auto_failover"], default="patroni")
    parser.add_argument("--loopback", default="127.0.32.0/24", help="loopback range (default 127.0.32.0/24)")
    parser.add_argument("--baseline", action="store_true",
                        help="before each drill, the same kind with one insert client (today's drill), to compare "
                             "how long each takes to run")
    parser.add_argument("--out", type=Path, help="keep the JSON lines and timelines here")
    parser.add_argument("--json", action="store_true", help="print the drills' JSON")
    args = parser.parse_args(argv)
    if any(k not in kinds.KINDS for k in args.kinds.split(",")) or args.runs < 1 or args.clients < 1:
        parser.error(f"--kinds takes {', '.join(kinds.KINDS)}; --runs and --clients at least 1")
    if not args.loopback.startswith("127."):
        parser.error("--loopback must be a 127.x.y.z range: the benchmark only uses loopback addresses")
    args.kinds = args.kinds.split(",")
    return args


def apply_settings(path: Path, settings: list[str]) -> None:
    data = yaml.safe_load(path.read_text())
    for setting in settings:
        key, _, value = setting.partition("=")
        *parents, last = key.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(value)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def row(line: dict[str, Any]) -> str:
    lag = ", ".join(f"{k} {v.get('replay_bytes')}" for k, v in (line.get("lag_at_fault") or {}).items()
                    if isinstance(v, dict))
    checks = " ".join(f"{k}={v}" for k, v in (line.get("checks") or {}).items())
    # a drill whose cluster did not become healthy again has no client figures
    return (f"{line['kind']:<10} {line.get('replication', '-'):<5} {line['unavailable_s']:>7.2f} "
            f"{line['acknowledged']:>7} "
            f"{(line.get('checks') or {}).get('lost', 0):>5} {sum((line.get('discarded') or {}).values()):>9} "
            f"{(line.get('load') or {}).get('tps') or 0:>8} {(line.get('cpu') or {}).get('cores', '-'):>6}  {checks}  "
            f"lag: {lag or '-'}" + (f"  problem: {line['problem']}" if line.get("problem") else ""))


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    spec = CrowdSpec(args.clients, args.readers, args.load)
    lines: list[dict[str, Any]] = []
    baselines: list[tuple[str, float, bool]] = []  # (kind, seconds, ok) of one-client drills
    with tempfile.TemporaryDirectory(prefix="pglab-bench-drills-") as tmp:
        path = write_topology(Path(tmp), LAB_NAME, args.loopback, args.stack)
        apply_settings(path, args.settings)
        lab = Lab.from_file(path)
        out = args.out or Path(tmp) / "drills"
        try:
            log(f"lab {LAB_NAME} ({args.stack}{'; ' + ', '.join(args.settings) if args.settings else ''}) "
                f"on {args.loopback}: up ...")
            started = time.monotonic()
            with time_limit(UP_LIMIT):
                lab.up(timeout=180)
            log(f"lab {LAB_NAME}: healthy after {time.monotonic() - started:.1f} s")
            for kind in args.kinds:
                for number in range(1, args.runs + 1):
                    if args.baseline:
                        began = time.monotonic()
                        single = frame.run(lab, kinds.make(kind), number, log=log)
                        baselines.append((kind, time.monotonic() - began, single.ok))
                        log(f"{kind} #{number} with one insert client: {baselines[-1][1]:.1f} s")
                    began = time.monotonic()
                    # a kind without clients (restore: one insert probe) runs as it is
                    crowd = {"workload": args.workload, "spec": spec} if kinds.KINDS[kind].takes_clients else {}
                    result = frame.run(lab, kinds.make(kind), number, log=log, **crowd)
                    write_json_line(result, out)
                    timeline.write_png(result, out / png_name(result))
                    line = result.as_json()
                    line["drill_s"] = round(time.monotonic() - began, 1)
                    lines.append(line)
                    log(f"{kind} #{number}: {row(line)}  ({line['drill_s']} s)")
                    if not result.recovered:
                        raise BenchFailure(f"{kind} #{number}: {result.problem}")
        except TimeLimit:
            log(f"FAILED: lab {LAB_NAME} not healthy after {UP_LIMIT:.0f} s")
            return 1
        except (BenchFailure, PglabError, StackError, psycopg.Error) as exc:
            log(f"FAILED ({type(exc).__name__}): {exc}")
            return 1
        finally:
            log(f"lab {LAB_NAME}: destroy")
            lab.destroy()
    if args.json:
        print(json.dumps(lines, indent=1))
        return 0
    print(f"{args.workload}, {args.clients} clients, {args.readers} readers, load {args.load:g} TPS; "
          f"{', '.join(args.settings) or 'default settings'}")
    print(f"{'kind':<10} {'repl':<5} {'down s':>7} {'acked':>7} {'lost':>5} {'discarded':>9} {'load tps':>8} "
          f"{'cores':>6}  checks")
    for line in lines:
        print(row(line))
    for (kind, seconds, ok), line in zip(baselines, lines, strict=False):
        print(f"{kind}: one insert client {seconds:.1f} s ({'ok' if ok else 'FAILED'}), this setting "
              f"{line['drill_s']} s: x{line['drill_s'] / seconds:.2f}")
    for summary in summary_of_lines(lines):
        u = summary["unavailable_s"]
        print(f"{summary['kind']} ({summary['setting']}) x{summary['drills']}: down {u['min']:.2f}/{u['median']:.2f}/"
              f"{u['max']:.2f} s, acknowledged writes lost {summary['lost']}, anomalies {summary['anomalies']}, "
              f"drill took {', '.join(str(x['drill_s']) for x in lines if x['kind'] == summary['kind'])} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
