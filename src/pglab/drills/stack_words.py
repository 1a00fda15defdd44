"""The stack's own words at a drill's decision: the first lines its log gained after the fault
that say what it decided (Patroni's "promoted self to leader by acquiring session lock", the
pg_auto_failover monitor's "Setting goal state of node 2 ... to prepare_promotion").

The stack declares where it says so (:class:`~pglab.stacks.base.DecisionLog`: the service of
which role, which lines matter); the provider reads the log. The log's last lines are noted
before the fault, so only what was written after it counts, whatever the log's time format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pglab import stacks
from pglab.lab import Lab
from pglab.stacks.base import DecisionLog

ANCHOR = 3  # the last lines before the fault that mark where the new ones begin
AFTER = 10000  # lines read after the drill, per node (PostgreSQL logs every refused write there too)
KEEP = 3  # lines quoted
WIDTH = 300  # characters kept of each


@dataclass(frozen=True)
class Said:
    node: str
    service: str
    lines: list[str]

    def as_json(self) -> dict[str, Any]:
        return {"node": self.node, "service": self.service, "lines": self.lines}


@dataclass
class Listener:
    """Notes each deciding node's log before the fault, reads what it said after."""

    lab: Lab
    before: dict[str, list[str]] = field(default_factory=dict)  # node -> its log's last lines

    @property
    def log(self) -> DecisionLog | None:
        return stacks.spec(self.lab.topology.stack).decision_log

    def listen(self) -> None:
        """Note where each log stands, before the fault."""
        if self.log is not None:
            for name in self._nodes(self.log):
                self.before[name] = self._read(name, self.log, ANCHOR)

    def said(self, leaders: list[str | None]) -> Said | None:
        """What the stack said after the fault: the new leader's log first, then the old one's
        (``leaders``), or the deciding role's nodes; None when it said nothing that matters
        (or its log could not be read)."""
        log = self.log
        if log is None:
            return None
        order = [n for n in leaders if n in self.before] if log.on_leaders else list(self.before)
        for name in dict.fromkeys(order):
            lines = decisions(new_lines(self.before[name], self._read(name, log, AFTER)), log.patterns)
            if lines:
                service = stacks.spec(self.lab.topology.stack).service(log.role, self.lab.topology)
                return Said(name, service, [line[:WIDTH] for line in lines[:KEEP]])
        return None

    def _nodes(self, log: DecisionLog) -> list[str]:
        return [n.name for n in self.lab.topology.with_role(log.role)]

    def _read(self, name: str, log: DecisionLog, lines: int) -> list[str]:
        service = stacks.spec(self.lab.topology.stack).service(log.role, self.lab.topology)
        try:
            text = self.lab.provider.logs(self.lab.node(name), service, lines)
        except Exception:  # words to quote, never a reason for a drill to fail
            return []
        return [line for line in text.splitlines() if line.strip() and not line.startswith("==> ")]


def new_lines(before: list[str], after: list[str]) -> list[str]:
    """The lines of ``after`` written after ``before`` (a log's last lines, read earlier): those
    following the last place ``before`` ends in ``after`` (its last lines, or fewer of them when
    the read began among them); all of ``after`` when it is not there
    (nothing read before, or more written since than was read)."""
    if not before:
        return after
    for size in range(min(ANCHOR, len(before)), 0, -1):  # the whole anchor first, then its end alone
        tail = before[-size:]
        for end in range(len(after), size - 1, -1):
            if after[end - size:end] == tail:
                return after[end:]
    return after


def decisions(lines: list[str], patterns: tuple[str, ...]) -> list[str]:
    """The lines that match one of ``patterns``, in order."""
    found = [re.compile(p) for p in patterns]
    return [line.strip() for line in lines if any(p.search(line) for p in found)]
