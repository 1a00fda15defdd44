"""What every benchmark script shares: its command line and where it logs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pglab import topology


def parse_args(description: str, runs_help: str, default_loopback: str, argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs", type=int, default=3, help=f"{runs_help} (default 3)")
    parser.add_argument("--loopback", default=default_loopback, help=f"loopback range (default {default_loopback})")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if not args.loopback.startswith("127."):
        parser.error("--loopback must be a 127.x.y.z range: the benchmark only uses loopback addresses")
    return args


def log(text: str) -> None:
    """Progress goes to stderr so that --json output on stdout stays clean."""
    print(text, file=sys.stderr, flush=True)


def write_topology(directory: Path, name: str, loopback: str) -> Path:
    """The default lab under the benchmark's own name and loopback range."""
    path = directory / "pglab.yml"
    path.write_text(topology.default_yaml(name=name, loopback=loopback))
    return path
