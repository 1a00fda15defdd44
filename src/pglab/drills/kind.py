"""The seam between the drill frame and a fault kind.

A kind is a small class: its name, a one-line summary, its own options, and four steps the frame
calls in order (:mod:`pglab.drills.frame`):

- ``check(lab)`` before anything is touched: refuse (:class:`~pglab.errors.InputError`, exit 2) an
  option the lab cannot take, or a fault its provider or kernel cannot produce;
- ``prepare(drill)`` once the clients write (after the warm-up), before the fault's clock starts;
- ``inject(drill)`` the fault; the clock starts just before it;
- ``recover(drill)`` undo the fault: always called once ``inject`` began, even when it failed or
  the drill was interrupted;
- ``judge(drill, result)`` add the kind's own figures (``result.part``) or verdict.

One instance runs one drill, so the steps may keep what they learn on ``self``. The frame owns
everything else: the warm-up, the clients, the clock and markers, holding until writes succeed,
reading back, the tally and the invariants every drill keeps.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pglab.drills.crowd import Clients
from pglab.drills.probe import Attempt
from pglab.drills.result import DrillResult, Marker
from pglab.lab import EventSink, Lab


@dataclass(frozen=True)
class Option:
    """One of a kind's own command-line options, passed to the kind's constructor as ``name``: on
    the command line ``--NAME`` (underscores as dashes), or ``flag`` (``--for`` for ``duration``).
    ``low``/``high`` bound a number."""

    name: str
    help: str
    type: type = str
    default: Any = None
    metavar: str | None = None
    low: float | None = None
    high: float | None = None
    flag: str | None = None


@dataclass(frozen=True)
class Done:
    """What an injected fault's operation said: its summary, and the timeline's label for the
    moment it returned."""

    summary: str
    marker: str


@dataclass
class Drill:
    """One drill in progress, as the kind's steps see it."""

    lab: Lab
    kind: str
    number: int
    target: str | None  # the node the fault hits (None: the whole cluster)
    old_leader: str | None
    timeout: float
    on_event: EventSink
    log: Callable[[str], None]
    clients: Clients
    fault_at: float = 0.0  # time.monotonic() when the fault began (set by the frame before inject)
    marks: list[tuple[float, str]] = field(default_factory=list)  # (time.monotonic(), what)
    operations: list[str] = field(default_factory=list)  # each operation's summary, in order
    # What was read back after the drill (for judge): every writer's attempts, the ids present.
    attempts: list[Attempt] = field(default_factory=list)
    present: set[int] = field(default_factory=set)

    def mark(self, what: str, at: float | None = None) -> None:
        """A marker on the timeline, now or at ``at`` (time.monotonic())."""
        self.marks.append((time.monotonic() if at is None else at, what))

    def markers(self) -> list[Marker]:
        return sorted((Marker(at - self.fault_at, what) for at, what in self.marks), key=lambda m: m.at)


class DrillKind(ABC):
    """A fault kind; subclasses are small dataclasses whose fields are their :attr:`options`."""

    name: ClassVar[str]
    summary: ClassVar[str]  # one line for `pglab drill --help`
    options: ClassVar[tuple[Option, ...]] = ()
    takes_clients: ClassVar[bool] = True  # --workload, --clients, --readers, --load
    # The invariants every drill keeps apply (no acknowledged write lost, one primary at a time, the
    # workload's rules); False for a kind that discards writes on purpose and judges them itself.
    keeps_every_write: ClassVar[bool] = True
    # A client on the target's own machine writes to its PostgreSQL directly: the other side of a cut.
    watches_target_machine: ClassVar[bool] = False

    def check(self, lab: Lab) -> None:
        """Refuse, with an InputError, what this lab cannot drill; nothing is touched yet."""
        return None

    def target(self, leader: str | None) -> str | None:
        """The node the fault hits, given the cluster's leader (None: the whole cluster)."""
        return leader

    def prepare(self, drill: Drill) -> None:
        """Set up what the fault needs, the clients writing."""
        return None

    @abstractmethod
    def inject(self, drill: Drill) -> Done:
        """The fault."""

    def recover(self, drill: Drill) -> str | None:
        """Undo the fault (the summary of what that did), or None when nothing needs undoing."""
        return None

    def judge(self, drill: Drill, result: DrillResult) -> None:
        """Add the kind's own figures or verdict to the frame's result."""
        return None


def returned(kind: str, summary: str, details: dict[str, Any]) -> Done:
    """An operation's outcome as a :class:`Done`: the leader change, or "KIND done"."""
    if details.get("new_leader") and details.get("old_leader", details.get("node")) != details["new_leader"]:
        return Done(summary, f"leader {details.get('old_leader') or details.get('node')} -> {details['new_leader']}")
    return Done(summary, f"{kind} done")
