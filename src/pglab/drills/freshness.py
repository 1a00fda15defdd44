"""Read-your-writes through the replicas' endpoint: how long after a write is acknowledged a
reader on the read endpoint sees it (replica staleness), before, during and after the fault.

A :class:`Freshness` reader follows the writers: each acknowledged write is offered to it, it keeps
the latest, and its probe (a :class:`pglab.drills.probe.WriteProbe` whose operation only reads, so it
gets the probe's timeouts and reconnects) asks the read endpoint for it every few milliseconds
until it is there, then takes the next latest. A write that does not show up within ``GIVE_UP``
seconds is recorded as not seen.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from pglab.drills.probe import Attempt

GIVE_UP = 30.0  # seconds: a write not visible by then counts as not seen


@dataclass(frozen=True)
class Sample:
    write_id: int
    acknowledged: float  # time.monotonic() the write was acknowledged
    delay: float | None  # seconds until a reader saw it; None: not within GIVE_UP


class Freshness:
    def __init__(self, visible_sql: str) -> None:
        self.visible_sql = visible_sql
        self.samples: list[Sample] = []
        self._latest: Attempt | None = None
        self._current: Attempt | None = None
        self._lock = threading.Lock()

    def offer(self, write: Attempt) -> None:
        """A writer's acknowledged attempt (called from writer threads): the newest one wins."""
        with self._lock:
            if self._latest is None or write.ended > self._latest.ended:
                self._latest = write

    def operation(self, conn: psycopg.Connection, _id: int) -> bool:
        """One look at the read endpoint for the write being followed; True when seen."""
        with self._lock:
            if self._current is None:
                self._current, self._latest = self._latest, None
            current = self._current
        if current is None:
            return False
        seen = conn.execute(self.visible_sql, (current.id,)).fetchone() is not None
        now = time.monotonic()
        if seen or now - current.ended > GIVE_UP:
            with self._lock:
                self.samples.append(Sample(current.id, current.ended, now - current.ended if seen else None))
                self._current = None
        return seen

    def snapshot(self) -> list[Sample]:
        with self._lock:
            return list(self.samples)


def summary(samples: list[Sample], fault_at: float, resumed_at: float | None) -> dict[str, Any]:
    """Staleness before the fault, during it (until writes resumed) and after: how many writes were
    followed, median and max seconds until seen, how many never were."""
    end = fault_at + (resumed_at or 0.0)
    windows: dict[str, Callable[[float], bool]] = {
        "before": lambda t: t < fault_at, "during": lambda t: fault_at <= t < end, "after": lambda t: t >= end}
    figures: dict[str, Any] = {}
    for name, inside in windows.items():
        mine = [s for s in samples if inside(s.acknowledged)]
        delays = [s.delay for s in mine if s.delay is not None]
        figures[name] = {"followed": len(mine), "not_seen": sum(s.delay is None for s in mine),
                         "median_ms": round(statistics.median(delays) * 1000, 1) if delays else None,
                         "max_ms": round(max(delays) * 1000, 1) if delays else None}
    return figures
