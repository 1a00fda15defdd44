"""Commit latency from the clients' own attempts: p50 and p99 of the acknowledged ones, in the
windows a fault that slows rather than breaks has (before it, while it holds, after it is lifted).
A write slower than the client's timeout is a failure, counted beside them."""

from __future__ import annotations

import math
from typing import Any

from pglab.drills.probe import Attempt


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile (share 0.5: the median), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(share * len(ordered))))
    return ordered[rank - 1]


def window(attempts: list[Attempt], low: float, high: float) -> dict[str, Any]:
    """p50/p99 (ms) of the acknowledged attempts that began in [low, high), and the failed ones."""
    inside = [a for a in attempts if low <= a.started < high and not a.conflict]
    took = [(a.ended - a.started) * 1000 for a in inside if a.ok]
    p50, p99 = percentile(took, 0.5), percentile(took, 0.99)
    return {"p50_ms": None if p50 is None else round(p50, 2), "p99_ms": None if p99 is None else round(p99, 2),
            "acknowledged": len(took), "failed": len(inside) - len(took)}


def before_during_after(attempts: list[Attempt], began: float, ended: float) -> dict[str, dict[str, Any]]:
    """The windows of a fault that held from ``began`` to ``ended`` (time.monotonic())."""
    return {"before": window(attempts, float("-inf"), began), "during": window(attempts, began, ended),
            "after": window(attempts, ended, float("inf"))}
