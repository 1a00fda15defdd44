"""`pglab drill crash`, `hang` and `partition`: one node (the leader, or --node) broken, then
brought back once writes succeed again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pglab import operations
from pglab.drills.kind import Done, Drill, DrillKind, Option, returned
from pglab.errors import PglabError
from pglab.lab import Lab
from pglab.stacks.base import StackError


@dataclass
class NodeFault(DrillKind):
    mode: ClassVar[operations.StopMode]
    options = (Option("node", "The node the fault hits (default: the leader).", metavar="NODE"),)
    node: str | None = None

    def check(self, lab: Lab) -> None:
        if self.node is not None:
            lab.node(self.node)  # an InputError naming the lab's nodes

    def target(self, leader: str | None) -> str | None:
        return self.node or leader

    def inject(self, drill: Drill) -> Done:
        if drill.target is None:
            raise PglabError("the cluster has no leader to break; name a node with --node")
        outcome = operations.stop_node(drill.lab, drill.target, self.mode, timeout=drill.timeout,
                                       on_event=drill.on_event)
        return returned(self.name, outcome.summary, outcome.details)

    def recover(self, drill: Drill) -> str | None:
        if drill.target is None:
            return None
        drill.mark(f"start {drill.target}")
        try:
            return operations.start_node(drill.lab, drill.target, timeout=drill.timeout * 2,
                                         on_event=drill.on_event).summary
        except (PglabError, StackError, OSError) as exc:
            raise PglabError(f"{drill.target} did not come back: {exc}") from exc


@dataclass
class Crash(NodeFault):
    name = "crash"
    summary = "every process of a node killed at once, then started"
    mode = "crash"


@dataclass
class Hang(NodeFault):
    name = "hang"
    summary = "a node frozen (processes or VM stopped), then thawed"
    mode = "hang"


@dataclass
class Partition(NodeFault):
    name = "partition"
    summary = "a node cut off the network, then reconnected"
    mode = "partition"
    watches_target_machine = True
