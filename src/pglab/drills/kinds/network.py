"""`pglab drill loss` and `latency`: the traffic between one node (the leader, or --node) and the
rest of the lab dropped or delayed for --for seconds, then healed. The provider impairs the
network (:meth:`~pglab.providers.base.Provider.impair_network`); the drill measures what a commit
felt: its p50 and p99 before, during and after, and for latency the rise it expected."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pglab.drills import targets
from pglab.drills.kind import Done, Drill, DrillKind, Option
from pglab.drills.probe import Attempt
from pglab.drills.result import DrillResult
from pglab.errors import InputError, PglabError
from pglab.lab import Lab

NODE = Option("node", "The node whose traffic suffers: a name, or leader, sync-standby, replica (default: the leader).",
              metavar="NODE|ROLE")
DURATION = Option("duration", "Seconds the fault lasts.", type=float, default=20.0, metavar="SECONDS",
                  low=1, high=3600, flag="--for")
SETTLE = 1.0  # seconds after the fault begins (and ends) before commits count as during (after) it


def commit_times(attempts: list[Attempt], low: float, high: float) -> dict[str, float | None]:
    """p50 and p99 in ms of the acknowledged writes that began at or after ``low`` and ended
    before ``high`` (time.monotonic())."""
    took = sorted((a.ended - a.started) * 1000 for a in attempts if a.ok and a.started >= low and a.ended < high)
    if not took:
        return {"p50_ms": None, "p99_ms": None, "commits": 0}
    p99 = took[min(len(took) - 1, round(0.99 * (len(took) - 1)))]
    return {"p50_ms": round(statistics.median(took), 2), "p99_ms": round(p99, 2), "commits": len(took)}


def expected_rise_ms(delay_ms: float, is_leader: bool, is_sync_standby: bool) -> float:
    """What a commit through the leader gains when everything the target sends is delayed: the
    leader's two legs (the WAL to a synchronous standby, the answer to the client) or one (no
    synchronous standby); a synchronous standby's one (its confirmation); nothing elsewhere."""
    if is_leader:
        return delay_ms * 2 if is_sync_standby else delay_ms
    return delay_ms if is_sync_standby else 0.0


@dataclass(frozen=True)
class NetworkFigures:
    """A network fault's own figures (its JSON line's ``commit_ms`` ...)."""

    fault: dict[str, Any]
    commit_ms: dict[str, dict[str, float | None]]  # before, during, after -> p50_ms, p99_ms, commits
    expected_rise_ms: float | None = None
    measured_rise_ms: float | None = None

    @property
    def ok(self) -> bool:
        return True  # a slow or lossy network is measured, not judged

    def as_json(self) -> dict[str, Any]:
        rise = {"expected_rise_ms": self.expected_rise_ms, "measured_rise_ms": self.measured_rise_ms}
        return {"fault": self.fault, "commit_ms": self.commit_ms, **(rise if "delay_ms" in self.fault else {})}

    def headline(self) -> str:
        during = self.commit_ms["during"]["p50_ms"]
        text = f", commit p50 {during:.1f} ms during" if during is not None else ""
        if self.measured_rise_ms is not None:
            text += f", rise {self.measured_rise_ms:.1f} ms (expected {self.expected_rise_ms:.1f})"
        return text


@dataclass
class NetworkFault(DrillKind):
    fault: ClassVar[str]  # the provider's name for it
    node: str | None = None
    duration: float = 20.0
    lab: Lab | None = field(default=None, init=False, repr=False)
    lifted_at: float | None = field(default=None, init=False)
    dropped: int | None = field(default=None, init=False)  # packets the provider dropped

    def check(self, lab: Lab) -> None:
        targets.check(lab, self.node)
        why = lab.provider.cannot(self.fault)
        if why:
            raise InputError(f"drill {self.name}: {why}")
        self.lab = lab

    def target(self, leader: str | None) -> str | None:
        assert self.lab is not None  # check(lab) runs first
        return targets.resolve(self.lab, self.node, leader)

    def impair(self, drill: Drill) -> str:
        """Impair the target's network; the words for the timeline."""
        raise NotImplementedError

    def inject(self, drill: Drill) -> Done:
        if drill.target is None:
            raise PglabError("the cluster has no leader; name a node with --node")
        what = self.impair(drill)
        time.sleep(self.duration)
        self.lifted_at = time.monotonic()
        self.dropped = drill.lab.provider.heal_network(drill.lab.node(drill.target))
        dropped = f" ({self.dropped} packets dropped)" if self.dropped else ""
        return Done(f"{what} for {self.duration:g} s{dropped}, then healed", f"{self.name} lifted")

    def recover(self, drill: Drill) -> str | None:
        if drill.target is not None and drill.lab.provider.heal_network(drill.lab.node(drill.target)) is not None:
            return f"healed {drill.target}'s network"
        return None

    def figures(self, drill: Drill) -> dict[str, dict[str, float | None]]:
        lifted = self.lifted_at or time.monotonic()
        return {"before": commit_times(drill.attempts, 0.0, drill.fault_at),
                "during": commit_times(drill.attempts, drill.fault_at + SETTLE, lifted),
                "after": commit_times(drill.attempts, lifted + SETTLE, float("inf"))}


@dataclass
class Loss(NetworkFault):
    name = "loss"
    summary = "packets between one node and the rest dropped for a while"
    fault = "loss"
    options = (NODE, Option("percent", "Packets dropped, in %.", type=float, default=5.0, metavar="P",
                            low=1, high=100), DURATION)
    percent: float = 5.0

    def impair(self, drill: Drill) -> str:
        assert drill.target is not None
        drill.lab.provider.impair_network(drill.lab.node(drill.target), loss_percent=self.percent)
        return f"{self.percent:g} % of {drill.target}'s packets to and from the lab dropped"

    def judge(self, drill: Drill, result: DrillResult) -> None:
        result.part = NetworkFigures({"percent": self.percent, "for_s": self.duration,
                                      "dropped_packets": self.dropped}, self.figures(drill))


@dataclass
class Latency(NetworkFault):
    name = "latency"
    summary = "what one node sends to the rest delayed for a while (netem)"
    fault = "latency"
    options = (NODE, Option("delay", "Delay of every packet the node sends, in ms.", type=float, default=50.0,
                            metavar="MS", low=0, high=10000),
               Option("jitter", "Give or take this many ms.", type=float, default=0.0, metavar="MS", low=0,
                      high=10000), DURATION)
    delay: float = 50.0
    jitter: float = 0.0
    expected: float = field(default=0.0, init=False)

    def impair(self, drill: Drill) -> str:
        assert drill.target is not None
        sync = targets.synchronous_standbys(drill.lab, drill.old_leader)
        is_leader = drill.target == drill.old_leader
        self.expected = expected_rise_ms(self.delay, is_leader, bool(sync) if is_leader else drill.target in sync)
        drill.lab.provider.impair_network(drill.lab.node(drill.target), delay_ms=self.delay, jitter_ms=self.jitter)
        drill.log(f"a commit should take {self.expected:g} ms longer while {drill.target}'s packets are delayed")
        return f"{drill.target}'s packets to the lab delayed {self.delay:g} ms" + (
            f" +- {self.jitter:g} ms" if self.jitter else "")

    def judge(self, drill: Drill, result: DrillResult) -> None:
        times = self.figures(drill)
        before, during = times["before"]["p50_ms"], times["during"]["p50_ms"]
        measured = round(during - before, 2) if before is not None and during is not None else None
        result.part = NetworkFigures({"delay_ms": self.delay, "jitter_ms": self.jitter, "for_s": self.duration},
                                     times, self.expected, measured)
