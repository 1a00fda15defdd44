"""Running `pglab drill` the way a user does (a process of its own, --json), for the fault kinds'
integration tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from pglab.lab import Lab

# The kinds' own figures, printed with -s.
FIGURES = ("fault", "commit_ms", "expected_rise_ms", "measured_rise_ms", "store", "leader_kept_writes",
           "demoted_after_s", "outcome", "back_after_s", "noticed_after_s", "rebuilt_after_s", "rebuilt_by",
           "unavailable_s")


def run_drill(lab: Lab, out: Path, *args: str, expect: int = 0) -> dict[str, Any]:
    """`pglab drill ARGS --json`'s output, after checking it exited ``expect``; for an exit 2 (refused
    before anything was touched), ``{"stderr": ...}``."""
    done = subprocess.run(
        [sys.executable, "-m", "pglab.cli", "drill", *args, "--out", str(out), "--json", "-f", str(lab.topology_file)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == expect, done.stderr[-3000:] + done.stdout[-3000:]
    print(done.stderr[-1500:])  # the drill's own words and figures, for -s
    if expect == 2:
        return {"stderr": done.stderr}
    output: dict[str, Any] = json.loads(done.stdout)
    if expect == 0:
        for drilled in output["drills"]:
            print({key: value for key, value in drilled.items() if key in FIGURES})
    return output
