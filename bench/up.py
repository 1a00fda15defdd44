"""Seconds from nothing to a healthy lab.

Each run writes the default topology (lab ``benchup``) into a fresh temporary directory on its own
loopback range, times ``Lab.up()`` until the cluster is healthy, and always destroys the lab. The
first run also times a converge (a second ``up()`` on the running lab). Package installs are not
measured: the script refuses to start while prerequisites are missing.

    .venv/bin/python bench/up.py [--runs 3] [--loopback 127.0.31.0/24] [--json] [--without-backups]

Backups' cost on ``up``: run it once as is and once with ``--without-backups``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import BenchFailure, TimeLimit, log, parse_args, time_limit, write_topology
from ansible_tasks import newest_run, run_times

from pglab.lab import Lab, PglabError, Step, UpResult

LAB_NAME = "benchup"
DEFAULT_LOOPBACK = "127.0.31.0/24"  # never a user's lab (127.0.11.x) nor the tests (127.0.21-22.x)
RUN_LIMIT = 300.0  # seconds: a longer up() is a failure
HEALTH_TIMEOUT = 180.0  # up()'s own wait for health, inside RUN_LIMIT

# Step names from Lab.up() -> short phase names, in order.
PHASES = [
    ("checking prerequisites", "prerequisites"),
    ("installing prerequisites", "install"),
    ("rendering", "render"),
    ("creating machines", "create"),
    ("running playbooks", "playbook"),
    ("waiting for a healthy", "health"),
]


@dataclass
class Timed:
    seconds: float
    phases: dict[str, float] = field(default_factory=dict)
    changed: int = 0
    # (play, wall seconds, tasks run) of the playbook run, from its ansible-runner events
    plays: list[tuple[str, float, int]] = field(default_factory=list)


def phase_name(step: str) -> str:
    for prefix, short in PHASES:
        if step.startswith(prefix):
            return short
    return step


def timed_up(lab: Lab, what: str) -> Timed:
    """``lab.up()`` under a hard limit of RUN_LIMIT seconds, with the time spent in each Step."""
    marks: list[tuple[str, float]] = []

    def on_event(event: Any) -> None:
        if isinstance(event, Step):
            marks.append((phase_name(event.name), time.monotonic()))

    started = time.monotonic()
    try:
        with time_limit(RUN_LIMIT):
            result: UpResult = lab.up(on_event=on_event, timeout=HEALTH_TIMEOUT)
    except TimeLimit:
        raise BenchFailure(f"{what}: not healthy after {RUN_LIMIT:.0f} s (last phase: "
                           f"{marks[-1][0] if marks else 'none'})") from None
    except PglabError as exc:
        raise BenchFailure(f"{what} failed: {exc}") from None
    ended = time.monotonic()
    phases: dict[str, float] = {}
    for i, (name, at) in enumerate(marks):
        until = marks[i + 1][1] if i + 1 < len(marks) else ended
        phases[name] = phases.get(name, 0.0) + until - at
    plays = run_times(newest_run(lab.layout.ansible / "artifacts")).plays
    return Timed(seconds=ended - started, phases=phases, changed=result.changed, plays=plays)


def one_run(number: int, loopback: str, converge: bool, log: Any,
            stack: str = "patroni", keep: Path | None = None, backups: bool = True) -> tuple[Timed, Timed | None]:
    with tempfile.TemporaryDirectory(prefix="pglab-bench-up-") as tmp:
        lab = Lab.from_file(write_topology(Path(tmp), LAB_NAME, loopback, stack,  # type: ignore[arg-type]
                                           backups=backups))
        try:
            log(f"run {number}: up ...")
            first = timed_up(lab, f"run {number}")
            log(f"run {number}: healthy after {first.seconds:.1f} s")
            again = None
            if converge:
                log(f"run {number}: converge ...")
                again = timed_up(lab, f"run {number} converge")
                log(f"run {number}: converged in {again.seconds:.1f} s, {again.changed} changed")
            return first, again
        finally:
            if keep is not None and (lab.layout.ansible / "artifacts").is_dir():
                shutil.copytree(lab.layout.ansible / "artifacts", keep / f"{stack}-run{number}", dirs_exist_ok=True)
            log(f"run {number}: destroy")
            lab.destroy()


def check_prerequisites(loopback: str, stack: str = "patroni") -> list[str]:
    with tempfile.TemporaryDirectory(prefix="pglab-bench-up-") as tmp:
        path = write_topology(Path(tmp), LAB_NAME, loopback, stack)  # type: ignore[arg-type]
        return Lab.from_file(path).missing_prerequisites()


def phase_text(phases: dict[str, float]) -> str:
    return "  ".join(f"{name} {seconds:.1f}" for name, seconds in phases.items())


def plays_json(timed: Timed) -> list[dict[str, Any]]:
    return [{"play": play, "seconds": round(seconds, 2), "tasks": tasks} for play, seconds, tasks in timed.plays]


def print_plays(first: Timed, again: Timed | None) -> None:
    """Each play's wall time in the first up of run 1 and in its converge, side by side."""
    second = {play: (seconds, tasks) for play, seconds, tasks in (again.plays if again else [])}
    print(f"{'first (s)':>9} {'tasks':>5}  {'second (s)':>10} {'tasks':>5}  play")
    for play, seconds, tasks in first.plays:
        again_seconds, again_tasks = second.get(play, (0.0, 0))
        print(f"{seconds:>9.1f} {tasks:>5}  {again_seconds:>10.1f} {again_tasks:>5}  {play}")


def up_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep-artifacts", type=Path, metavar="DIR",
                        help="copy each run's Ansible events to DIR/STACK-runN (for bench/ansible_tasks.py)")
    parser.add_argument("--without-backups", action="store_true",
                        help="the lab with backup: {enabled: false} (no pgBackRest, no first full backup)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args("Seconds from nothing to a healthy pglab lab.", "labs to bring up one after another",
                      DEFAULT_LOOPBACK, argv, extra=up_options)

    missing = check_prerequisites(args.loopback, args.stack)
    if missing:
        log("bench/up.py measures a lab without package installs, but these are missing: "
            + "; ".join(missing) + ". Install them first (as root: `pglab prepare`), then run it again.")
        return 1

    runs: list[Timed] = []
    converge: Timed | None = None
    try:
        for number in range(1, args.runs + 1):
            first, again = one_run(number, args.loopback, converge=number == 1, log=log, stack=args.stack,
                                   keep=args.keep_artifacts, backups=not args.without_backups)
            runs.append(first)
            converge = converge or again
    except BenchFailure as exc:
        log(f"FAILED: {exc}")
        return 1

    seconds = [r.seconds for r in runs]
    summary = {"min": min(seconds), "median": statistics.median(seconds), "max": max(seconds)}
    if args.json:
        print(json.dumps({
            "lab": LAB_NAME,
            "loopback": args.loopback,
            "stack": args.stack,
            "runs": [{"run": i, "seconds": round(r.seconds, 2), "changed": r.changed,
                      "phases": {k: round(v, 2) for k, v in r.phases.items()}, "plays": plays_json(r)}
                     for i, r in enumerate(runs, 1)],
            "seconds": {k: round(v, 2) for k, v in summary.items()},
            "converge": None if converge is None else {
                "seconds": round(converge.seconds, 2), "changed": converge.changed,
                "phases": {k: round(v, 2) for k, v in converge.phases.items()},
                "plays": plays_json(converge)},
        }, indent=2))
        return 0
    print(f"{'run':>3}  {'healthy (s)':>11}  {'changed':>7}  phases (s)")
    for i, r in enumerate(runs, 1):
        print(f"{i:>3}  {r.seconds:>11.1f}  {r.changed:>7}  {phase_text(r.phases)}")
    print(f"seconds to healthy over {len(runs)} run(s): min {summary['min']:.1f}  "
          f"median {summary['median']:.1f}  max {summary['max']:.1f}")
    if converge is not None:
        print(f"converge (second up on run 1): {converge.seconds:.1f} s, {converge.changed} changed  "
              f"({phase_text(converge.phases)})")
    print_plays(runs[0], converge)
    return 0


if __name__ == "__main__":
    sys.exit(main())
