"""Where a playbook run spent its time: each play's wall time, each host's task time, the slowest
tasks, from the events ansible-runner recorded (a lab's ``.pglab/LAB/ansible/artifacts``, or a
copy of it).

    python bench/ansible_tasks.py .pglab/pglab/ansible/artifacts [--top 20] [--runs 2]

A task's time is its slowest host's (hosts run a task in parallel); a play's wall time runs from
its start to the next play's (or the run's end), so it counts what task times miss: starting
workers, includes, handlers, waiting for the slowest host. The newest run is read unless ``--run``
names another artifact directory; ``--runs 2`` reads the two newest (a first and a second `up`).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

META_ACTIONS = ("meta", "ansible.builtin.meta")
RESULT_EVENTS = ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable")


@dataclass
class RunTimes:
    """What one ansible-playbook run spent, by play, by host and by task."""

    name: str
    wall: float = 0.0
    # (play, wall seconds, tasks that ran on some host) in play order
    plays: list[tuple[str, float, int]] = field(default_factory=list)
    # (play, task, seconds of its slowest host, hosts it ran on) in the order the tasks ran
    tasks: list[tuple[str, str, float, int]] = field(default_factory=list)
    # host -> (seconds of task time, tasks run, tasks skipped)
    hosts: dict[str, tuple[float, int, int]] = field(default_factory=dict)
    changed: int = 0


def runs_newest_first(artifacts: Path) -> list[Path]:
    runs = [d for d in artifacts.iterdir() if (d / "job_events").is_dir()]
    if not runs:
        raise SystemExit(f"no ansible-runner run under {artifacts}")
    return sorted(runs, key=lambda d: (d / "job_events").stat().st_mtime, reverse=True)


def newest_run(artifacts: Path) -> Path:
    return runs_newest_first(artifacts)[0]


def _events(run: Path) -> list[dict]:
    paths = sorted(run.glob("job_events/*.json"), key=lambda p: int(p.name.split("-", 1)[0]))
    return [json.loads(p.read_text()) for p in paths]


def _at(event: dict) -> float:
    return datetime.fromisoformat(event["created"]).timestamp()


def run_times(run: Path) -> RunTimes:
    events = _events(run)
    times = RunTimes(run.name)
    if not events:
        return times
    slowest: dict[tuple[str, str], float] = {}
    hosts: dict[tuple[str, str], int] = defaultdict(int)
    order: list[tuple[str, str]] = []
    host_seconds: dict[str, float] = defaultdict(float)
    host_ran: dict[str, int] = defaultdict(int)
    host_skipped: dict[str, int] = defaultdict(int)
    play_starts: list[tuple[str, float]] = []
    tasks_per_play: dict[str, set[str]] = defaultdict(set)
    end = _at(events[-1])
    for event in events:
        kind = event.get("event")
        data = event.get("event_data") or {}
        if kind == "playbook_on_play_start":
            play_starts.append((data.get("play", ""), _at(event)))
        if kind == "playbook_on_stats":
            end = _at(event)
            times.changed = sum((data.get("changed") or {}).values())
        if kind not in RESULT_EVENTS or data.get("task_action") in META_ACTIONS:
            continue  # meta tasks' start/end span whole serial batches
        host = data.get("host", "")
        if kind == "runner_on_skipped":
            host_skipped[host] += 1
            continue
        seconds = float(data.get("duration") or 0.0)
        key = (data.get("play", ""), data.get("task", ""))
        if key not in slowest:
            order.append(key)
            slowest[key] = 0.0
        slowest[key] = max(slowest[key], seconds)
        hosts[key] += 1
        host_seconds[host] += seconds
        host_ran[host] += 1
        tasks_per_play[key[0]].add(key[1])
    times.wall = end - _at(events[0])
    for i, (play, started) in enumerate(play_starts):
        until = play_starts[i + 1][1] if i + 1 < len(play_starts) else end
        times.plays.append((play, until - started, len(tasks_per_play[play])))
    times.tasks = [(play, task, slowest[(play, task)], hosts[(play, task)]) for play, task in order]
    times.hosts = {h: (host_seconds[h], host_ran[h], host_skipped[h])
                   for h in sorted(set(host_ran) | set(host_skipped))}
    return times


def task_times(run: Path) -> list[tuple[str, str, float, int]]:
    """(play, task, seconds of its slowest host, hosts) in the order the tasks ran."""
    return run_times(run).tasks


def print_run(times: RunTimes, top: int) -> None:
    print(f"run {times.name}: {times.wall:.1f} s wall, {len(times.tasks)} tasks ran, {times.changed} changed")
    print(f"  {'wall (s)':>8}  {'tasks':>5}  play")
    for play, seconds, count in times.plays:
        print(f"  {seconds:8.1f}  {count:>5}  {play}")
    print(f"  {'task (s)':>8}  {'ran':>5}  {'skip':>5}  host")
    for host, (seconds, ran, skipped) in times.hosts.items():
        print(f"  {seconds:8.1f}  {ran:>5}  {skipped:>5}  {host}")
    print(f"  slowest {top} tasks:")
    for play, task, seconds, count in sorted(times.tasks, key=lambda t: -t[2])[:top]:
        print(f"  {seconds:8.1f}  {task}  ({count} hosts; {play})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifacts", type=Path, help="ansible-runner's artifacts directory")
    parser.add_argument("--run", help="one run's directory name (default: the newest)")
    parser.add_argument("--runs", type=int, default=1, help="how many of the newest runs, oldest first")
    parser.add_argument("--top", type=int, default=20, help="how many of the slowest tasks to list")
    args = parser.parse_args()
    runs = [args.artifacts / args.run] if args.run else list(reversed(runs_newest_first(args.artifacts)[: args.runs]))
    for run in runs:
        print_run(run_times(run), args.top)


if __name__ == "__main__":
    main()
