"""`pglab drill switchover`: a planned change of leader, under the clients."""

from __future__ import annotations

from dataclasses import dataclass

from pglab import operations
from pglab.drills.kind import Done, Drill, DrillKind, returned


@dataclass
class Switchover(DrillKind):
    name = "switchover"
    summary = "a planned switchover to a replica"

    def inject(self, drill: Drill) -> Done:
        outcome = operations.switchover(drill.lab, timeout=drill.timeout, on_event=drill.on_event)
        return returned(self.name, outcome.summary, outcome.details)
