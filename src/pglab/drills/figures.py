"""A drill's figures from its clients' attempts: unavailability and throughput per client and for
the drill, before the fault, during it (until writes resumed) and after."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from typing import Any

from pglab.drills.probe import Attempt


def longest_gap(attempts: list[Attempt], since: float) -> float:
    """The longest time after ``since`` without an acknowledged attempt."""
    acks = [since, *sorted(a.ended for a in attempts if a.ok and a.ended >= since)]
    return max((after - before for before, after in itertools.pairwise(acks)), default=0.0)


def throughput(attempts: list[Attempt], fault_at: float, resumed_at: float | None) -> dict[str, float | None]:
    """Acknowledged attempts a second before the fault, during it and after (``resumed_at`` is
    seconds after the fault; None: writes never stopped, so there is no "during")."""
    if not attempts:
        return {"before": None, "during": None, "after": None}
    start, end = min(a.started for a in attempts), max(a.ended for a in attempts)
    resumed = fault_at + (resumed_at or 0.0)
    windows = {"before": (start, fault_at), "during": (fault_at, resumed), "after": (resumed, end)}
    rates: dict[str, float | None] = {}
    for name, (low, high) in windows.items():
        acked = sum(1 for a in attempts if a.ok and low <= a.ended < high)
        rates[name] = round(acked / (high - low), 1) if high - low > 0.05 else None
    return rates


def per_client(attempts: list[Attempt], fault_at: float, resumed_at: float | None) -> list[dict[str, Any]]:
    """One row per writer: its attempts, acknowledgements, failures, conflicts, longest outage and
    throughput."""
    mine: dict[int, list[Attempt]] = defaultdict(list)
    for a in attempts:
        mine[a.client].append(a)
    rows = []
    for client, done in sorted(mine.items()):
        rows.append({
            "client": client, "attempts": len(done), "acknowledged": sum(a.ok for a in done),
            "failed": sum(not a.ok and not a.conflict for a in done), "conflicts": sum(a.conflict for a in done),
            "unavailable_s": round(longest_gap(done, fault_at), 3),
            "throughput": throughput(done, fault_at, resumed_at),
        })
    return rows


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (``share`` 0.5 for the median) of non-empty ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def commit_latency(attempts: list[Attempt], windows: dict[str, tuple[float, float]]) -> dict[str, Any]:
    """Per window (name -> (from, to), time.monotonic()), the acknowledged attempts' latency as a
    client felt it, connect included: p50 and p99 in milliseconds and how many; None for a window
    without one. An attempt belongs to the window its acknowledgement fell in."""
    out: dict[str, Any] = {}
    for name, (low, high) in windows.items():
        took = [(a.ended - a.started) * 1000 for a in attempts if a.ok and low <= a.ended < high]
        out[name] = None if not took else {"p50": round(percentile(took, 0.5), 2),
                                            "p99": round(percentile(took, 0.99), 2), "n": len(took)}
    return out
