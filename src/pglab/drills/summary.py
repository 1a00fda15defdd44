"""Drills summed up: one row per kind and setting, from results or from their JSON lines (the
`pglab drill` table, the report, the benchmarks)."""

from __future__ import annotations

import statistics
from typing import Any

from pglab.drills.result import DrillResult


def spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def setting(line: dict[str, Any]) -> str:
    """A drill's setting in words, from its JSON line: workload, clients, load, replication."""
    clients = line.get("clients", 1)
    words = [line.get("workload", "insert"), f"{clients} client{'s' if clients != 1 else ''}"]
    if line.get("readers"):
        words.append(f"{line['readers']} reader{'s' if line['readers'] != 1 else ''}")
    if line.get("load_tps"):
        words.append(f"load {line['load_tps']:g}/s")
    if line.get("replication"):
        words.append(line["replication"])
    if line.get("via", "direct") != "direct":  # straight to PostgreSQL: the path every lab had
        words.append(f"via {line['via']}")
    return ", ".join(words)


def summary(results: list[DrillResult]) -> list[dict[str, Any]]:
    """One row per kind and setting (see :func:`summary_of_lines`)."""
    return summary_of_lines([r.as_json() for r in results])


def summary_of_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per kind and setting, from drills' JSON lines: unavailability spread, writes lost
    and failed-but-committed, anomalies per check, leaders."""
    rows = []
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for line in lines:
        groups.setdefault((line["kind"], setting(line)), []).append(line)
    for (kind, words), mine in groups.items():
        unavailable = spread([line["unavailable_s"] for line in mine])
        checks: dict[str, int] = {}
        for line in mine:
            for check, count in (line.get("checks") or {"lost": line["lost"]}).items():
                checks[check] = checks.get(check, 0) + count
        rows.append({
            "kind": kind, "setting": words, "drills": len(mine),
            "recovered": sum(bool(line["recovered"]) for line in mine),
            "unavailable_s": None if unavailable is None else {k: round(v, 2) for k, v in unavailable.items()},
            # every client's: the endpoint's writers and, in a partition, the one beside the cut-off node
            "lost": sum((line.get("checks") or {}).get("lost", line["lost"]) for line in mine),
            "failed_committed": sum(line["failed_committed"] for line in mine),
            "via": mine[0].get("via", "direct"),
            "stale_primary_errors": sum(line.get("stale_primary_errors", 0) for line in mine),
            "checks": checks, "anomalies": sum(checks.values()),
            "leaders": [f"{line['old_leader']} -> {line['new_leader']}" for line in mine],
            "ok": all(line["ok"] for line in mine),
        })
    return rows
