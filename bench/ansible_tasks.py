"""Where a playbook run spent its time: the slowest tasks and each play's share, from the events
ansible-runner recorded (a lab's ``.pglab/LAB/ansible/artifacts``, or a copy of it).

    python bench/ansible_tasks.py .pglab/pglab/ansible/artifacts [--top 20]

A task's time is its slowest host's (hosts run a task in parallel); the newest run is read
unless ``--run`` names another artifact directory.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

META_ACTIONS = ("meta", "ansible.builtin.meta")
RESULT_EVENTS = ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable")


def newest_run(artifacts: Path) -> Path:
    runs = [d for d in artifacts.iterdir() if (d / "job_events").is_dir()]
    if not runs:
        raise SystemExit(f"no ansible-runner run under {artifacts}")
    return max(runs, key=lambda d: (d / "job_events").stat().st_mtime)


def task_times(run: Path) -> list[tuple[str, str, float, int]]:
    """(play, task, seconds of its slowest host, hosts) in the order the tasks ran."""
    slowest: dict[tuple[str, str], float] = {}
    hosts: dict[tuple[str, str], int] = defaultdict(int)
    order: list[tuple[str, str]] = []
    events = sorted(run.glob("job_events/*.json"), key=lambda p: int(p.name.split("-", 1)[0]))
    for path in events:
        event = json.loads(path.read_text())
        if event.get("event") not in RESULT_EVENTS:
            continue
        data = event.get("event_data") or {}
        if data.get("task_action") in META_ACTIONS:  # their start/end span whole serial batches
            continue
        key = (data.get("play", ""), data.get("task", ""))
        if key not in slowest:
            order.append(key)
            slowest[key] = 0.0
        slowest[key] = max(slowest[key], float(data.get("duration") or 0.0))
        hosts[key] += 1
    return [(play, task, slowest[(play, task)], hosts[(play, task)]) for play, task in order]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artifacts", type=Path, help="ansible-runner's artifacts directory")
    parser.add_argument("--run", help="one run's directory name (default: the newest)")
    parser.add_argument("--top", type=int, default=20, help="how many of the slowest tasks to list")
    args = parser.parse_args()
    run = args.artifacts / args.run if args.run else newest_run(args.artifacts)
    times = task_times(run)
    per_play: dict[str, float] = defaultdict(float)
    for play, _task, seconds, _hosts in times:
        per_play[play] += seconds
    print(f"run {run.name}: {len(times)} tasks, {sum(per_play.values()):.0f} s of task time")
    for play, seconds in per_play.items():
        print(f"  {seconds:7.1f} s  play: {play}")
    print(f"slowest {args.top} tasks:")
    for play, task, seconds, hosts in sorted(times, key=lambda t: -t[2])[: args.top]:
        print(f"  {seconds:7.1f} s  {task}  ({hosts} hosts; {play})")


if __name__ == "__main__":
    main()
