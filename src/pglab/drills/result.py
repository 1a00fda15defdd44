"""What a drill found, and its JSON line: the types the frame fills and every kind may read or add to.

A kind's own figures are a :class:`KindFigures` (a restore's target, lost and extra writes ...): the
JSON line flattens them beside the frame's keys, so adding a kind adds no field here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pglab.drills import invariants, probe
from pglab.drills.crowd import CrowdSpec


@dataclass
class Marker:
    at: float  # seconds after the fault began
    what: str


class KindFigures(Protocol):
    """A kind's own figures: its JSON line's extra keys, and whether they pass."""

    @property
    def ok(self) -> bool: ...

    def as_json(self) -> dict[str, Any]: ...

    def headline(self) -> str:
        """A few words for the timeline's title (", extra 0, restore 21.5 s"), or ""."""
        ...


@dataclass
class ClientFigures:
    """What many clients add to a drill: the workload and its checks, figures per client and for
    the drill, replica staleness, the lag at the fault, what the probe cost."""

    workload: str
    spec: CrowdSpec
    checks: dict[str, int]  # check -> anomalies found (0: the rule held)
    anomalies: list[invariants.Anomaly]
    primaries: list[str]  # the servers that acknowledged writes, in the order they began to
    discarded: dict[str, int]  # acknowledged writes missing from the new primary, per server that took them
    per_client: list[dict[str, Any]]
    throughput: dict[str, float | None]
    conflicts: int
    replication: str  # sync or async: what the primary's pg_stat_replication said before the fault
    lag_at_fault: dict[str, Any]
    staleness: dict[str, Any] | None  # read-your-writes through the read endpoint
    reads: dict[str, int]  # endpoint -> successful reads (the bank's sums)
    load: dict[str, Any] | None
    cpu: dict[str, float]  # this process's CPU seconds during the drill, and the share of one core

    def as_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload, "clients": self.spec.clients, "readers": self.spec.readers,
            "load_tps": self.spec.load_tps, "replication": self.replication, "checks": self.checks,
            "anomalies": [a.as_json() for a in self.anomalies[:20]], "primaries": self.primaries,
            "discarded": self.discarded, "conflicts": self.conflicts, "throughput": self.throughput,
            "per_client": self.per_client, "staleness": self.staleness, "reads": self.reads,
            "lag_at_fault": self.lag_at_fault, "load": self.load, "cpu": self.cpu,
        }


@dataclass
class BesideFigures:
    """What a client on the target's own machine saw: writes its (old) leader accepted after the
    fault began, when it last did, and whether that overlapped the new primary's writes."""

    acknowledged_after_fault: int
    last_ok_s: float | None  # seconds after the fault, None: not one write accepted after it
    lost: int  # of those, missing from the new primary (rewound away when the node rejoined)
    overlap_s: float  # seconds during which both sides acknowledged writes (two primaries); 0 is right

    def as_json(self) -> dict[str, Any]:
        return {"acknowledged_after_fault": self.acknowledged_after_fault,
                "last_ok_s": None if self.last_ok_s is None else round(self.last_ok_s, 3),
                "lost": self.lost, "two_primaries_s": round(self.overlap_s, 3)}


WINDOWS = ("before", "during", "after")  # the commit latency's windows, around the fault


@dataclass
class Measures:
    """What every drill measures beside the write gap, whatever the fault: commit latency before,
    during and after it, the replicas' worst lag, when the cluster was healthy again, and what
    the stack said it decided."""

    # window -> {"p50": ms, "p99": ms, "n": acknowledged writes}, None: no write acknowledged in it
    commit_latency_ms: dict[str, dict[str, float] | None] = field(
        default_factory=lambda: dict.fromkeys(WINDOWS))
    lag_worst: dict[str, dict[str, Any]] = field(default_factory=dict)  # node -> its worst lag
    healthy_again_s: float | None = None  # None: never seen unhealthy after the fault
    stack_said: dict[str, Any] | None = None  # {"node", "service", "lines"}

    def as_json(self) -> dict[str, Any]:
        return {"commit_latency_ms": self.commit_latency_ms, "lag_worst": self.lag_worst,
                "healthy_again_s": self.healthy_again_s, "stack_said": self.stack_said}

    def headline(self) -> str:
        """Commit p50 before / during / after, in a few words."""
        p50 = ["-" if (w := self.commit_latency_ms.get(name)) is None else f"{w['p50']:g}" for name in WINDOWS]
        return f"commit p50 {' / '.join(p50)} ms"

    def line(self) -> str:
        """Commit latency around the fault, the worst lag, when the cluster was healthy again."""
        windows = ", ".join(f"{name} {w['p50']:g} / {w['p99']:g}" if (w := self.commit_latency_ms.get(name))
                            else f"{name} -" for name in WINDOWS)
        worst = max(self.lag_worst.items(), key=lambda item: item[1]["replay_bytes"], default=None)
        lag = f"{worst[1]['replay_bytes']:,} bytes ({worst[0]})" if worst else "-"
        again = "never unhealthy" if self.healthy_again_s is None else f"{self.healthy_again_s:.1f} s"
        return f"commit p50 / p99 ms: {windows}; worst replay lag {lag}; healthy again: {again}"

    def said_line(self, width: int = 200) -> str:
        """The stack's own words at its decision, at most ``width`` characters."""
        said = self.stack_said
        if not said:
            return "the stack's log: nothing about a decision after the fault"
        text = f"{said['service']} on {said['node']}: {said['lines'][0]}"
        return text if len(text) <= width else text[:width - 1] + "\u2026"


@dataclass
class DrillResult:
    kind: str
    run: int
    started: str  # wall clock, ISO 8601
    node: str | None  # the node the fault hit (None: the whole cluster)
    old_leader: str | None
    new_leader: str | None
    recovered: bool
    tally: probe.Tally
    markers: list[Marker] = field(default_factory=list)
    operations: list[str] = field(default_factory=list)  # each operation's summary, in order
    problem: str | None = None  # why the drill failed, if it did
    # The probe's attempts, seconds after the fault: (started, ended, ok); for the timeline.
    attempts: list[tuple[float, float, bool]] = field(default_factory=list)
    # The other side of a cut: a client on the target's own machine (see BesideFigures).
    beside: BesideFigures | None = None
    beside_attempts: list[tuple[float, float, bool]] = field(default_factory=list)
    clients: ClientFigures | None = None
    # What ran, even when the drill ended before its clients' figures could be gathered.
    workload: str = "insert"
    spec: CrowdSpec = field(default_factory=CrowdSpec)
    part: KindFigures | None = None  # the kind's own figures, flattened into the JSON line
    via: str = "direct"  # the clients' path: through the pooler, or straight to PostgreSQL
    # Writes refused as read-only after the new leader took its first write: clients left on a
    # demoted primary (through a pooler that kept its server connections). Must be 0.
    stale_primary_errors: int = 0
    measures: Measures = field(default_factory=Measures)
    # The fault's wall-clock time (Unix seconds): markers and attempts are seconds after it, and
    # a client of the user's own can line its measurements up with the drill's.
    fault_at_unix: float | None = None

    @property
    def anomalies(self) -> list[invariants.Anomaly]:
        return self.clients.anomalies if self.clients else []

    @property
    def ok(self) -> bool:
        return (self.recovered and not self.tally.lost and not self.anomalies and self.problem is None
                and not self.stale_primary_errors and (self.part is None or self.part.ok))

    def as_json(self) -> dict[str, Any]:
        t = self.tally
        return {
            "kind": self.kind, "run": self.run, "started": self.started,
            "fault_at_unix": None if self.fault_at_unix is None else round(self.fault_at_unix, 3), "node": self.node,
            "old_leader": self.old_leader, "new_leader": self.new_leader, "recovered": self.recovered,
            "ok": self.ok, "problem": self.problem,
            "unavailable_s": round(t.unavailable, 3), "attempts": t.attempts, "acknowledged": t.acknowledged,
            "failed": t.failed, "lost": len(t.lost), "lost_ids": t.lost[:100],
            "failed_committed": len(t.failed_committed), "failed_committed_ids": t.failed_committed[:100],
            "errors": dict(list(t.errors.items())[:10]),
            "markers": [{"at": round(m.at, 3), "what": m.what} for m in self.markers],
            "operations": self.operations, "timeline": png_name(self), "workload": self.workload,
            "clients": self.spec.clients, "readers": self.spec.readers, "load_tps": self.spec.load_tps,
            "via": self.via, "stale_primary_errors": self.stale_primary_errors,
            "cut_off_side": None if self.beside is None else self.beside.as_json(),
            **self.measures.as_json(),
            **(self.clients.as_json() if self.clients else {}),
            **(self.part.as_json() if self.part else {}),
        }


def write_json_line(result: DrillResult, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "drills.jsonl"
    with path.open("a") as f:
        f.write(json.dumps(result.as_json()) + "\n")
    return path


def png_name(result: DrillResult) -> str:
    return timeline_name(result.kind, result.started, result.run)


def timeline_name(kind: str, started: str, run: int) -> str:
    """The PNG timeline's file name of a drill (its JSON line has it as ``timeline``)."""
    stamp = started.replace(":", "").replace("-", "").replace("+0000", "Z")
    return f"{kind}-{stamp}-{run}.png"
