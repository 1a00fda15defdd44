"""`pglab drill site-loss` (a two-site lab): every process of the primary site killed at once (its
DCS, its HAProxy, every data node), the standby site promoted, the clients moved to it (their
write endpoint names both sites' routers; libpq picks the one that takes writes), then the old
site brought back as the new primary's standby cluster.

The loss is judged row by row: the acknowledged writes missing afterwards must be exactly those
the old primary had and the standby had not received at the kill (read off the old primary's data
directory before it comes back, by PostgreSQL in single-user mode, which no client can reach), the
lag at the kill is printed beside them. The time without writes is split into detection (the kill
until the drill decides; ``--detect-after`` adds an operator's), promotion, and the clients'
switch. ``--planned`` runs a site switch instead (demote, catch up, promote): nothing may be lost."""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg

from pglab import operations, stacks
from pglab.drills import probe
from pglab.drills.kind import Done, Drill, DrillKind, Option
from pglab.drills.result import DrillResult
from pglab.errors import InputError, PglabError
from pglab.lab import Lab
from pglab.sites import SiteLag
from pglab.topology import Node

REWIND_WORDS = ("pg_rewind",)  # what Patroni logs when it rewinds a member instead of copying it


@dataclass(frozen=True)
class SiteLossFigures:
    planned: bool
    lost_site: str
    new_primary: str
    lag_at_kill_bytes: int | None
    lag_at_kill_s: float | None
    lost: list[int]  # acknowledged writes missing afterwards
    predicted: list[int]  # acknowledged writes the old primary had and the standby had not
    detection_s: float
    promotion_s: float | None
    client_switch_s: float | None
    failback_s: float | None
    rewound: bool | None  # the old site came back by pg_rewind (None: not known)
    failback_problem: str | None = None

    @property
    def ok(self) -> bool:
        expected = [] if self.planned else self.predicted
        return self.lost == expected and self.failback_problem is None and self.failback_s is not None

    def as_json(self) -> dict[str, Any]:
        return {"planned": self.planned, "lost_site": self.lost_site, "new_primary": self.new_primary,
                "lag_at_kill_bytes": self.lag_at_kill_bytes, "lag_at_kill_s": self.lag_at_kill_s,
                "site_lost": len(self.lost), "site_lost_ids": self.lost[:100], "predicted_lost": len(self.predicted),
                "detection_s": self.detection_s, "promotion_s": self.promotion_s,
                "client_switch_s": self.client_switch_s, "failback_s": self.failback_s, "rewound": self.rewound,
                "failback_problem": self.failback_problem}

    def headline(self) -> str:
        lost = f"lost {len(self.lost)}" + ("" if self.planned else f" (predicted {len(self.predicted)})")
        promotion = "" if self.promotion_s is None else f", promotion {self.promotion_s:.1f} s"
        return f", {lost}{promotion}"


@dataclass
class SiteLoss(DrillKind):
    name = "site-loss"
    summary = "the primary site lost at once; the standby site promoted, clients moved, the old site back as standby"
    options = (
        Option("detect_after", "Seconds an operator takes to notice and decide before the promotion "
                               "(default 0: the drill decides at once).", type=float, default=0.0,
               metavar="SECONDS", low=0, high=3600),
        Option("planned", "A planned site switch instead: demote the primary site, let the standby catch up, "
                          "promote it (nothing may be lost).", type=bool, default=False),
    )
    takes_clients = False  # one insert probe: its table is read on the old primary too
    keeps_every_write = False  # an unplanned loss loses what the lag held: judged here, row by row
    detect_after: float = 0.0
    planned: bool = False
    old: str = field(default="", init=False)
    new: str = field(default="", init=False)
    lag: SiteLag | None = field(default=None, init=False)
    killed: bool = field(default=False, init=False)
    killed_at: float | None = field(default=None, init=False)
    decided_at: float | None = field(default=None, init=False)
    promoted_at: float | None = field(default=None, init=False)
    old_ids: set[int] | None = field(default=None, init=False)
    failback_s: float | None = field(default=None, init=False)
    failback_problem: str | None = field(default=None, init=False)
    rewound: bool | None = field(default=None, init=False)

    def check(self, lab: Lab) -> None:
        if not lab.topology.sites:
            raise InputError("drill site-loss needs a two-site lab (`pglab init --sites 2`)")

    def target(self, leader: str | None) -> str | None:
        return None  # the whole primary site

    def prepare(self, drill: Drill) -> None:
        lab = drill.lab
        self.old = lab.primary_site()
        self.new = next(s for s in lab.topology.sites if s != self.old)
        if lab.site_role(self.new) != "standby":
            raise PglabError(f"site {self.new} is not a standby cluster of site {self.old}: see `pglab status`")

    def inject(self, drill: Drill) -> Done:
        return self._switch(drill) if self.planned else self._lose(drill)

    def _lose(self, drill: Drill) -> Done:
        lab = drill.lab
        self.lag = _standby_lag(lab, self.new)
        old_site = lab.site(self.old)
        self.killed = True
        # Every node at once, as a site is lost: one after the other, the first would be gone
        # seconds before the last, and those seconds would count as detection.
        self.killed_at = time.monotonic()
        with ThreadPoolExecutor(max_workers=len(old_site.topology.nodes)) as pool:
            list(pool.map(lambda node: lab.provider.crash(lab.node(node.name)), old_site.topology.nodes))
        drill.mark(f"site {self.old} killed", at=self.killed_at)
        if self.detect_after:
            time.sleep(self.detect_after)
        self.decided_at = time.monotonic()
        drill.mark("promotion decided", at=self.decided_at)
        promoted = operations.promote_site(lab, self.new, timeout=drill.timeout, on_event=drill.on_event)
        self.promoted_at = self.decided_at + float(promoted.details.get("promoted_after", 0.0))
        drill.mark(f"site {self.new} takes writes", at=self.promoted_at)
        return Done(f"killed every node of site {self.old}; {promoted.summary}", f"site {self.new} primary")

    def _switch(self, drill: Drill) -> Done:
        lab = drill.lab
        self.lag = _standby_lag(lab, self.new)
        demoted = operations.demote_site(lab, self.old, self.new, timeout=drill.timeout, on_event=drill.on_event)
        self.decided_at = time.monotonic()
        drill.mark(f"site {self.old} demoted", at=self.decided_at)
        promoted = operations.promote_site(lab, self.new, timeout=drill.timeout, on_event=drill.on_event)
        self.promoted_at = time.monotonic()
        drill.mark(f"site {self.new} takes writes", at=self.promoted_at)
        return Done(f"{demoted.summary}; {promoted.summary}", f"site {self.new} primary")

    def recover(self, drill: Drill) -> str | None:
        """The old site back as the new primary's standby: its DCS started alone and told that the
        site is a standby cluster of the new primary, what its old primary had read off its data
        directory while it is down, then its data nodes started (each rewound onto the new
        primary's timeline where it went ahead, none promoted), then its router, once it takes no
        writes."""
        lab = drill.lab
        if not self.old or not (self.killed or self.promoted_at):
            return None
        started = time.monotonic()
        old_site = lab.site(self.old)
        routers = _routers(old_site)
        reading = 0.0
        try:
            if self.killed:
                data = old_site.topology.with_role("postgres")
                for node in [n for n in old_site.topology.nodes if n not in routers and n not in data]:
                    lab.provider.start(lab.node(node.name))
                if lab.site_role(self.new) != "primary":
                    # Interrupted before the promotion: the old site is still the primary.
                    for node in [*data, *routers]:
                        lab.provider.start(lab.node(node.name))
                    return f"site {self.old} started again (site {self.new} was not promoted)"
                operations.follow_while_down(lab, self.old, self.new, timeout=drill.timeout)
                # The rows the old primary alone had, for the judge: read before anything rewinds them.
                first = [n for n in data if n.name == drill.old_leader] or data[:1]
                read_started = time.monotonic()
                self.old_ids = _ids_on_stopped(lab, first[0].name)
                reading = time.monotonic() - read_started
                for node in first + [n for n in data if n not in first]:
                    lab.provider.start(lab.node(node.name))

            def start_routers() -> None:
                for node in routers:
                    lab.provider.start(lab.node(node.name))

            demoted = operations.demote_site(lab, self.old, self.new, timeout=drill.timeout * 2,
                                             on_event=drill.on_event, once_fenced=start_routers)
            # The drill's own read of the old primary's rows is no part of a fail-back.
            self.failback_s = round(time.monotonic() - started - reading, 2)
            self.rewound = _rewound(lab, old_site, started)
            drill.mark(f"site {self.old} follows site {self.new}")
            return f"fail-back: {demoted.summary}"
        except (PglabError, OSError, psycopg.Error) as exc:
            self.failback_problem = str(exc)
            # Its routers only: a data node not started yet might come back as a primary.
            for node in routers:
                with contextlib.suppress(PglabError, OSError):
                    lab.provider.start(lab.node(node.name))
            raise PglabError(f"site {self.old} did not come back as a standby: {exc}") from exc

    def judge(self, drill: Drill, result: DrillResult) -> None:
        acknowledged = {a.id for a in drill.attempts if a.ok}
        lost = sorted(acknowledged - drill.present)
        predicted = sorted(acknowledged & ((self.old_ids or set()) - drill.present)) if self.killed else []
        resumed = next((a.ended for a in sorted(drill.attempts, key=lambda a: a.ended)
                        if a.ok and self.promoted_at is not None and a.ended >= self.promoted_at), None)
        lost_at = self.killed_at or drill.fault_at  # the kill, after the lag was read
        promotion = None if self.promoted_at is None or self.decided_at is None else self.promoted_at - self.decided_at
        switch = None if resumed is None or self.promoted_at is None else round(resumed - self.promoted_at, 2)
        figures = SiteLossFigures(
            planned=self.planned, lost_site=self.old, new_primary=self.new,
            lag_at_kill_bytes=None if self.lag is None else self.lag.received_bytes,
            lag_at_kill_s=None if self.lag is None else self.lag.seconds,
            lost=lost, predicted=predicted,
            detection_s=round((self.decided_at or lost_at) - lost_at, 2),
            promotion_s=None if promotion is None else round(promotion, 2),
            client_switch_s=switch,
            failback_s=self.failback_s, rewound=self.rewound, failback_problem=self.failback_problem)
        result.part = figures
        # What the lag predicted is the site loss's to judge (above); anything else lost is a loss.
        result.tally.lost = sorted(set(lost) - set(predicted)) if not self.planned else lost


def _standby_lag(lab: Lab, standby: str) -> SiteLag | None:
    view = next((v for v in lab.status().sites if v.name == standby), None)
    return None if view is None else view.lag


def _routers(site: Lab) -> list[Node]:
    """The site's nodes that clients enter through (its HAProxy), as the stack declares them."""
    entry = {node.name for node, _port in stacks.spec(site.topology.stack).entry_points(site.topology)}
    return [n for n in site.topology.nodes if n.name in entry]


def _ids_on_stopped(lab: Lab, node: str) -> set[int] | None:
    """The probe's rows in a stopped data node's data directory (None: the table is not there)."""
    value = operations.query_stopped(lab, node, f"SELECT coalesce(string_agg(id::text, ','), '') FROM {probe.TABLE}")
    return None if value is None else {int(i) for i in value.split(",") if i}


def _rewound(lab: Lab, site: Lab, since: float) -> bool | None:
    """Whether Patroni rewound a member of the site (its log says pg_rewind) while it came back."""
    del since  # the logs' last lines are the fail-back's
    try:
        logs = [lab.provider.logs(lab.node(n.name), lines=200) for n in site.topology.with_role("postgres")]
    except (PglabError, OSError):
        return None
    return any(word in text for text in logs for word in REWIND_WORDS)
