"""The shape of a resource fault: one node (``--node``: a name or a role) held under a limit its
provider sets (a slow disk, a starved CPU, a full disk) for ``--for`` seconds, then freed, while
the clients write; the kind's figures say what a commit felt before, during and after.

The limit is lifted at the end of ``inject``, which then waits for a few seconds of acknowledged
writes: the cluster freed, the "after" of the figures. ``recover`` lifts whatever an interrupted
drill left.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any

from pglab.drills import commit_latency, targets
from pglab.drills.kind import Done, Drill, DrillKind, Option
from pglab.drills.result import DrillResult
from pglab.errors import InputError, PglabError
from pglab.lab import Lab
from pglab.topology import Node

AFTER_S = 3.0  # seconds of acknowledged writes measured after the fault is lifted
AFTER_TIMEOUT_S = 120.0
NODE_OPTION = Option("node", "The node the fault hits: a name, or leader, sync-standby, replica (default: the leader).",
                     metavar="NODE")


def duration_option(default: float) -> Option:
    return Option("duration", "Seconds the fault holds.", type=float, default=default, metavar="SECONDS",
                  low=1, high=3600, flag="--for")


@dataclass
class LimitFigures:
    """What a held fault did: what was limited, for how long, and the commit latency around it."""

    limit: str
    held_s: float
    commit: dict[str, dict[str, Any]]  # before / during / after: p50_ms, p99_ms, acknowledged, failed
    extra: dict[str, Any] = field(default_factory=dict)  # the kind's own figures

    @property
    def ok(self) -> bool:
        return True  # a slow or refused commit is a measurement; losses are the frame's to judge

    def as_json(self) -> dict[str, Any]:
        return {"limit": self.limit, "held_s": round(self.held_s, 3), "commit_latency": self.commit, **self.extra}

    def headline(self) -> str:
        before, during = self.commit["before"]["p50_ms"], self.commit["during"]["p50_ms"]
        if before is None or during is None:
            return f", {self.commit['during']['failed']} commits failed under the fault"
        return f", commit p50 {before:.1f} -> {during:.1f} ms"


@dataclass
class NodeLimit(DrillKind):
    node: str | None = None
    duration: float = 10.0
    lab: Lab | None = field(default=None, init=False, repr=False)
    began: float | None = field(default=None, init=False, repr=False)
    ended: float | None = field(default=None, init=False, repr=False)
    applied: str = field(default="", init=False, repr=False)

    def check(self, lab: Lab) -> None:
        why = lab.provider.cannot(self.name)
        if why is not None:
            raise InputError(why)
        targets.check(lab, self.node)
        self.lab = lab

    def target(self, leader: str | None) -> str | None:
        return self.node if self.lab is None else targets.resolve(self.lab, self.node, leader)

    @abstractmethod
    def apply(self, drill: Drill, node: Node) -> str:
        """Set the limit (through the provider); what it did."""

    def lift(self, drill: Drill, node: Node) -> str | None:
        """Lift the limit; what that did (None: nothing was set)."""
        return drill.lab.provider.lift_limits(node)

    def hold(self, drill: Drill, node: Node) -> None:
        """While the fault holds (``--for`` seconds)."""
        time.sleep(self.duration)

    def inject(self, drill: Drill) -> Done:
        if drill.target is None:
            raise PglabError("the cluster has no leader to limit; name a node with --node")
        node = drill.lab.node(drill.target)
        self.applied = self.apply(drill, node)
        self.began = time.monotonic()
        drill.log(self.applied)
        self.hold(drill, node)
        lifted = self.lift(drill, node)
        self.ended = time.monotonic()
        drill.mark(f"{self.name} lifted")
        # Writes have gone on through a slow fault: the frame's hold would end at once. Give the
        # freed cluster its own seconds of writes, the "after" of the latency.
        drill.clients.wait_succeeding(self.ended, AFTER_S, AFTER_TIMEOUT_S)
        return Done(f"{self.applied} for {self.ended - self.began:.1f} s" + (f"; {lifted}" if lifted else ""),
                    "after measured")

    def recover(self, drill: Drill) -> str | None:
        if drill.target is None:
            return None
        return self.lift(drill, drill.lab.node(drill.target))

    def figures(self, drill: Drill, result: DrillResult) -> dict[str, Any]:
        """The kind's own figures beside the latency."""
        return {}

    def judge(self, drill: Drill, result: DrillResult) -> None:
        if self.began is None:
            return
        ended = self.ended or self.began
        result.part = LimitFigures(self.applied, ended - self.began,
                                   commit_latency.before_during_after(drill.attempts, self.began, ended),
                                   self.figures(drill, result))
