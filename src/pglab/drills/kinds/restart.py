"""`pglab drill restart`: a rolling restart of every member, under the clients."""

from __future__ import annotations

from dataclasses import dataclass

from pglab import operations
from pglab.drills.kind import Done, Drill, DrillKind, returned


@dataclass
class Restart(DrillKind):
    name = "restart"
    summary = "a rolling restart, the leader last, by switchover"

    def inject(self, drill: Drill) -> Done:
        outcome = operations.restart(drill.lab, rolling=True, timeout=drill.timeout * 3, on_event=drill.on_event)
        return returned(self.name, outcome.summary, outcome.details)
