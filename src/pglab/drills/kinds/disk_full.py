"""`pglab drill disk-full`: the filesystem holding one node's PostgreSQL data filled to the last
block for ``--for`` seconds, then emptied; does the stack fail over, and what do the clients see?"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pglab.drills.kind import Drill
from pglab.drills.node_limit import NODE_OPTION, NodeLimit, duration_option
from pglab.drills.result import DrillResult
from pglab.topology import Node


@dataclass
class DiskFull(NodeLimit):
    name = "disk-full"
    summary = "the filesystem of a node's data filled up for a while"
    options = (NODE_OPTION, duration_option(20.0))
    duration: float = 20.0
    full_at: float | None = field(default=None, init=False, repr=False)

    def apply(self, drill: Drill, node: Node) -> str:
        done = drill.lab.provider.fill_disk(node)
        self.full_at = time.monotonic()
        drill.mark(f"{node.name}'s disk full")
        return done

    def lift(self, drill: Drill, node: Node) -> str | None:
        return drill.lab.provider.empty_disk(node)

    def figures(self, drill: Drill, result: DrillResult) -> dict[str, Any]:
        """When the first write failed after the disk filled up, and what it said."""
        start = self.full_at or drill.fault_at
        failed = sorted((a for a in drill.attempts if not a.ok and not a.conflict and a.started >= start),
                        key=lambda a: a.ended)
        first = failed[0] if failed else None
        if first is not None:
            drill.mark("first write refused", at=first.ended)
        return {"first_failure_s": None if first is None else round(first.ended - drill.fault_at, 3),
                "first_error": None if first is None else first.error[:200],
                "failover": bool(result.new_leader and result.new_leader != result.old_leader)}
