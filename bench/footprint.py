"""The idle footprint of running labs: memory and CPU of every process of each lab's nodes, read
from the nodes' cgroups (the local provider as root), over a quiet interval. Compare a TLS lab
with a plaintext one (``tls: false``) of the same topology, side by side, on the same machine.

    .venv/bin/python bench/footprint.py LAB.yml [OTHER.yml ...] [--seconds 30] [--json]

Labs must be up already; nothing is started or changed. Figures: memory (the sum of every
process's proportional set size, shared pages split between their users), CPU seconds used
during the interval (cpu.stat usage_usec) and that as a percentage of one core.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pglab.lab import Lab


def _cgroups(lab: Lab) -> list[Path]:
    provider = lab.provider
    found = []
    for node in lab.topology.nodes:
        cgroup = provider.cgroup(node) if hasattr(provider, "cgroup") else None
        if cgroup is None or not cgroup.exists():
            raise SystemExit(f"{lab.topology.name}: no cgroup for {node.name} (local provider, as root, lab up?)")
        found.append(cgroup.path)
    return found


def _cpu_usec(path: Path) -> int:
    stat = dict(line.split() for line in (path / "cpu.stat").read_text().splitlines())
    return int(stat["usage_usec"])


def _pss(pid: str) -> int:
    """Proportional set size in bytes (shared pages split between their users), 0 for a process gone."""
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) * 1024 for line in rollup.splitlines() if line.startswith("Pss:")), 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labs", nargs="+", type=Path, help="topology files of running labs")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the quiet interval")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    labs = [Lab.from_file(path) for path in args.labs]
    groups = {lab.topology.name: _cgroups(lab) for lab in labs}
    start = {name: sum(_cpu_usec(p) for p in paths) for name, paths in groups.items()}
    began = time.monotonic()
    time.sleep(args.seconds)
    elapsed = time.monotonic() - began
    rows = []
    for lab in labs:
        paths = groups[lab.topology.name]
        cpu = (sum(_cpu_usec(p) for p in paths) - start[lab.topology.name]) / 1e6
        memory = sum(_pss(pid) for p in paths for pid in (p / "cgroup.procs").read_text().split())
        rows.append({"lab": lab.topology.name, "tls": lab.topology.tls, "memory_mb": round(memory / 1048576, 1),
                     "cpu_s": round(cpu, 2), "cpu_percent": round(100 * cpu / elapsed, 2),
                     "seconds": round(elapsed, 1)})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['lab']:<12} tls={str(r['tls']).lower():<5}  memory {r['memory_mb']:>8.1f} MB  "
                  f"CPU {r['cpu_s']:>6.2f} s in {r['seconds']:.0f} s ({r['cpu_percent']:.2f} % of a core)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
