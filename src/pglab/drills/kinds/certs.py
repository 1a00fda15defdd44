"""`pglab drill certs` and `certs-ca`: certificate rotation (and a new CA) under the clients."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pglab.drills.kind import Done, Drill, DrillKind, returned
from pglab.tls import rotation


@dataclass
class Certs(DrillKind):
    name = "certs"
    summary = "new certificates for every node, no restart"
    new_ca: ClassVar[bool] = False

    def inject(self, drill: Drill) -> Done:
        outcome = rotation.rotate(drill.lab, new_ca=self.new_ca, timeout=drill.timeout, on_event=drill.on_event)
        return returned(self.name, outcome.summary, outcome.details)


@dataclass
class CertsCa(Certs):
    name = "certs-ca"
    summary = "a new CA and certificates, then the old CA retired"
    new_ca = True
