"""The drill's clients together: ``clients`` writers of a workload through the write endpoint,
readers (the bank's sums through the write and the read endpoint, or read-your-writes followers
on the read endpoint), and background load. Each is a :class:`pglab.drills.probe.WriteProbe` thread on
its own connection; the drill starts, waits on and stops them as one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pglab.drills import background_load, probe
from pglab.drills.freshness import Freshness
from pglab.drills.probe import Attempt, WriteProbe
from pglab.drills.workloads import Workload


@dataclass
class CrowdSpec:
    """How many of each (the drill's --clients, --readers, --load)."""

    clients: int = 1
    readers: int = 0
    load_tps: float = 0.0


@dataclass
class Crowd:
    workload: Workload
    writers: list[WriteProbe]
    readers: dict[str, list[WriteProbe]] = field(default_factory=dict)  # endpoint -> its readers
    freshness: Freshness | None = None
    loaders: list[WriteProbe] = field(default_factory=list)

    @classmethod
    def gather(cls, workload: Workload, spec: CrowdSpec, writes: dict[str, Any],
               reads: dict[str, Any] | None, first_id: int = 1) -> Crowd:
        """The probes (not started). ``reads`` is the read endpoint's conninfo (None: the lab has
        none, so readers use the write endpoint alone); the writers number their attempts from
        ``first_id`` on."""
        freshness = None
        readers: dict[str, list[WriteProbe]] = {}
        own_reader = workload.reader()
        if spec.readers and own_reader is not None:
            for where, conninfo in (("write", writes), ("read", reads)):
                if conninfo is not None:
                    readers[where] = [WriteProbe(conninfo, start=-1, step=-1, client=1000 + i, operation=own_reader,
                                                 reads_only=True) for i in range(spec.readers)]
        elif spec.readers and reads is not None:
            freshness = Freshness(workload.visible_sql())
            readers["read"] = [WriteProbe(reads, interval=0.005, start=-1, step=-1, client=1000 + i,
                                          operation=freshness.operation, reads_only=True)
                               for i in range(spec.readers)]
        on_ack = freshness.offer if freshness is not None else None
        n = spec.clients
        writers = [WriteProbe(writes, start=first_id + c, step=n, client=c, operation=workload.operation(c),
                              on_ack=on_ack, isolation=workload.isolation)
                   for c in range(n)]
        loaders = background_load.writers(writes, spec.load_tps) if spec.load_tps > 0 else []
        return cls(workload, writers, readers, freshness, loaders)

    def _all(self) -> list[WriteProbe]:
        return [*self.loaders, *self.writers, *(r for group in self.readers.values() for r in group)]

    def start(self) -> None:
        for p in self._all():
            p.start()

    def stop(self) -> None:
        everyone = self._all()
        for p in everyone:
            p.halt()  # all at once: each then finishes its current attempt in parallel
        for p in everyone:
            p.stop()

    def wait_succeeding(self, since: float, hold: float, timeout: float) -> bool:
        return probe.wait_succeeding(self.writers, since, hold, timeout)

    def last_error(self) -> str:
        failed = [e for e in (w.last_error() for w in self.writers) if e != "none"]
        return failed[-1] if failed else "none"

    @property
    def crashed(self) -> str | None:
        return next((p.crashed for p in self._all() if p.crashed), None)

    def writes(self) -> list[Attempt]:
        return sorted((a for w in self.writers for a in w.snapshot()), key=lambda a: a.started)

    def reads(self) -> dict[str, list[Attempt]]:
        """The workload's own readers' attempts per endpoint (the bank's sums); read-your-writes
        followers report through :attr:`freshness` instead."""
        if self.freshness is not None:
            return {}
        return {where: [a for r in group for a in r.snapshot()] for where, group in self.readers.items()}

    def load_figures(self, seconds: float) -> dict[str, Any] | None:
        if not self.loaders:
            return None
        done = [a for p in self.loaders for a in p.snapshot()]
        acked = sum(a.ok for a in done)
        return {"threads": len(self.loaders), "acknowledged": acked, "failed": len(done) - acked,
                "tps": round(acked / seconds, 1) if seconds > 0 else None}


class Clients:
    """The drill's crowd over the whole drill. A kind may pause it (a restore needs a quiet cluster)
    and resume it: a new crowd of the same spec, numbering its writes from a new first id, so
    writes before and after the pause stay apart. Figures cover every crowd."""

    def __init__(self, workload: Workload, spec: CrowdSpec, writes: dict[str, Any],
                 reads: dict[str, Any] | None) -> None:
        self.workload, self.spec, self.conninfo, self.reads_conninfo = workload, spec, writes, reads
        self.crowds = [Crowd.gather(workload, spec, writes, reads)]
        self.running = False

    def start(self) -> None:
        self.crowds[-1].start()
        self.running = True

    def pause(self) -> None:
        if self.running:
            self.crowds[-1].stop()
            self.running = False

    def resume(self, first_id: int) -> None:
        self.pause()
        self.crowds.append(Crowd.gather(self.workload, self.spec, self.conninfo, self.reads_conninfo, first_id))
        self.start()

    def stop(self) -> None:
        self.pause()

    def wait_succeeding(self, since: float, hold: float, timeout: float) -> bool:
        """Whether writes succeeded for ``hold`` seconds within ``timeout``; at once False when paused."""
        return self.running and self.crowds[-1].wait_succeeding(since, hold, timeout)

    def last_error(self) -> str:
        return self.crowds[-1].last_error()

    @property
    def crashed(self) -> str | None:
        return next((c.crashed for c in self.crowds if c.crashed), None)

    @property
    def freshness(self) -> Freshness | None:
        return self.crowds[0].freshness

    def writes(self) -> list[Attempt]:
        return sorted((a for c in self.crowds for a in c.writes()), key=lambda a: a.started)

    def reads(self) -> dict[str, list[Attempt]]:
        merged: dict[str, list[Attempt]] = {}
        for crowd in self.crowds:
            for where, done in crowd.reads().items():
                merged.setdefault(where, []).extend(done)
        return merged

    def load_figures(self, seconds: float) -> dict[str, Any] | None:
        figures = [f for f in (c.load_figures(seconds) for c in self.crowds) if f is not None]
        if not figures:
            return None
        acked = sum(f["acknowledged"] for f in figures)
        return {"threads": figures[0]["threads"], "acknowledged": acked, "failed": sum(f["failed"] for f in figures),
                "tps": round(acked / seconds, 1) if seconds > 0 else None}
