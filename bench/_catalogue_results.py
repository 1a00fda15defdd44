"""The catalogue's results file: one JSON line per finished cell (and one per sitting, when it
began and ended), appended as they come, so a run cut short goes on where it stopped.

A cell line: ``{"type": "cell", "config", "kind", "run", "command", "started", "seconds", "exit",
"message", "drill", "aftermath"}``: ``drill`` is the drill's own JSON line (None when it did not
run: exit 2, a timeout), ``message`` what it said on stderr when it printed no JSON, and
``aftermath`` what bringing the lab back to healthy took (``healthy``, ``up``, ``recreated``).
A sitting: ``{"type": "sitting", "started", "ended", "seconds", "load_start", "load_end",
"machine"}``, written when it begins (ended None) and again when it ends.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any


def read(path: Path) -> list[dict[str, Any]]:
    """Every line of the file (none if it does not exist); a torn last line is skipped."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut off when the run was killed
    return records


def append(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def cells(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("type") == "cell"]


def done(records: list[dict[str, Any]]) -> set[tuple[str, str, int]]:
    """The cells already measured: (configuration, kind, run)."""
    return {(r["config"], r["kind"], int(r["run"])) for r in cells(records)}


def sittings(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each sitting once, its last word kept (the end line replaces the beginning's)."""
    by_start: dict[str, dict[str, Any]] = {}
    for r in records:
        if r.get("type") == "sitting":
            by_start[r["started"]] = r
    return sorted(by_start.values(), key=lambda r: r["started"])


def machine() -> dict[str, Any]:
    """Cores, memory and kernel of this machine."""
    memory_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    except OSError:
        pass
    return {"cores": os.cpu_count(), "memory_gb": round(memory_kb / 2**20, 1), "kernel": platform.release()}


def load() -> float:
    """The load average over the last minute."""
    return round(os.getloadavg()[0], 2)
