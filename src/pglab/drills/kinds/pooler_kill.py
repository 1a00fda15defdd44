"""`pglab drill pooler-kill`: the leader's PgBouncer stopped at once (SIGTERM: every client and
server connection dropped), started again after --down seconds; what the pooled clients see."""

from __future__ import annotations

import time
from dataclasses import dataclass

from pglab.components import pooler
from pglab.drills.kind import Done, Drill, DrillKind, Option
from pglab.errors import InputError, PglabError
from pglab.lab import Lab


@dataclass
class PoolerKill(DrillKind):
    name = "pooler-kill"
    summary = "the leader's PgBouncer killed, then started again"
    options = (Option("down", "Seconds the pooler stays down.", type=float, default=5.0, low=0, high=300,
                      metavar="SECONDS"),)
    down: float = 5.0

    def check(self, lab: Lab) -> None:
        if not pooler.enabled(lab.topology):
            raise InputError("this lab runs no pooler: pooler: {enabled: true} (in a lab with tls: true) turns it on")

    def inject(self, drill: Drill) -> Done:
        if drill.target is None:
            raise PglabError("the cluster has no leader whose pooler to kill")
        node = drill.lab.node(drill.target)
        drill.lab.provider.stop_service(node, pooler.SERVICE)
        drill.mark(f"{pooler.SERVICE} on {drill.target} down")
        time.sleep(self.down)
        drill.lab.provider.start_service(node, pooler.SERVICE)
        return Done(f"{pooler.SERVICE} on {drill.target} down for {self.down:g} s, started again",
                    f"{pooler.SERVICE} on {drill.target} started")

    def recover(self, drill: Drill) -> str | None:
        if drill.target is not None:
            drill.lab.provider.start_service(drill.lab.node(drill.target), pooler.SERVICE)  # no-op when it runs
        return None
