"""`pglab drill failover`: a manual failover to the first streaming replica, under the clients."""

from __future__ import annotations

from dataclasses import dataclass

from pglab import operations
from pglab.drills.kind import Done, Drill, DrillKind, returned
from pglab.errors import PglabError


@dataclass
class Failover(DrillKind):
    name = "failover"
    summary = "a manual failover to the first streaming replica"

    def inject(self, drill: Drill) -> Done:
        replicas = drill.lab.stack().health().streaming_replicas
        if not replicas:
            raise PglabError("no streaming replica to fail over to")
        outcome = operations.failover(drill.lab, replicas[0].name, timeout=drill.timeout, on_event=drill.on_event)
        return returned(self.name, outcome.summary, outcome.details)
