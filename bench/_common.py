"""What every benchmark script shares: its command line and where it logs."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from pglab import catalog, topology


def parse_args(description: str, runs_help: str, default_loopback: str, argv: list[str] | None,
               extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """The options every benchmark takes; ``extra`` adds a script's own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs", type=int, default=3, help=f"{runs_help} (default 3)")
    parser.add_argument("--loopback", default=default_loopback, help=f"loopback range (default {default_loopback})")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--stack", choices=["patroni", "pg_auto_failover"], default="patroni",
                        help="the HA stack of the lab (default patroni)")
    if extra is not None:
        extra(parser)
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if not args.loopback.startswith("127."):
        parser.error("--loopback must be a 127.x.y.z range: the benchmark only uses loopback addresses")
    return args


def log(text: str) -> None:
    """Progress goes to stderr so that --json output on stdout stays clean."""
    print(text, file=sys.stderr, flush=True)


def write_topology(directory: Path, name: str, loopback: str, stack: topology.Stack = "patroni",
                   backups: bool = True, pooler: bool | None = None) -> Path:
    """The default lab of ``stack`` under the benchmark's own name and loopback range; with
    ``backups`` false, its backup: section turned off (what the lab costs without pgBackRest);
    ``pooler`` true or false turns PgBouncer on or off (None: the default's choice)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "pglab.yml"
    text = catalog.default_yaml(name=name, loopback=loopback, stack=stack)
    if not backups:
        text = text.replace("\n  enabled: true", "\n  enabled: false", 1)
        assert "enabled: false" in text, "the default topology's backup: section changed shape"
    if pooler is not None:
        data = yaml.safe_load(text)
        data["pooler"] = {**(data.get("pooler") or {}), "enabled": pooler}
        text = yaml.safe_dump(data, sort_keys=False)
    path.write_text(text)
    return path


class BenchFailure(Exception):
    """A benchmark run that cannot give a figure; the script says why and exits 1."""


class TimeLimit(BaseException):
    """Raised by SIGALRM; a BaseException so no ``except Exception`` on the way swallows it."""


def _alarm(_signum: int, _frame: Any) -> None:
    raise TimeLimit


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`TimeLimit` in the block after ``seconds``: every run is bounded."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
