"""The drill's checkers: rules a history of client operations must keep, and the evidence when it
does not.

Every function here is pure: it takes the attempts the clients recorded (:class:`pglab.drills.probe.Attempt`,
times on one clock) and what was read back from the new primary, and returns :class:`Anomaly`
records. Nothing talks to a server, so unit tests prove each rule can fail by feeding it a history
that breaks it (a lost append, a changed total, two primaries at once).
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pglab.drills.probe import Attempt, Server

EVIDENCE = 20  # items of evidence kept per anomaly: enough to look up, short enough for a JSON line


@dataclass(frozen=True)
class Anomaly:
    check: str  # which rule: lost, split_brain, bank_total, bank_ledger, append_duplicate, append_order
    what: str  # one sentence for people
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"check": self.check, "what": self.what, "evidence": self.evidence}


def counts(anomalies: Iterable[Anomaly], checks: Iterable[str]) -> dict[str, int]:
    """Violations per check (the writes, reads or accounts involved), every check that ran listed:
    0 is a result too."""
    found: Counter[str] = Counter()
    for a in anomalies:
        found[a.check] += a.evidence.get("count", 1)
    return {check: found.get(check, 0) for check in checks}


# Acknowledged writes ---------------------------------------------------------------------------
def lost(attempts: list[Attempt], present: set[int]) -> list[Anomaly]:
    """Acknowledged writes absent from the new primary, grouped by the server that acknowledged
    them (a deposed primary whose last commits never reached the new one, or that pg_rewind
    discarded when it rejoined)."""
    missing: dict[Server | None, list[int]] = defaultdict(list)
    for a in attempts:
        if a.ok and a.id not in present:
            missing[a.server].append(a.id)
    return [Anomaly("lost", f"{len(ids)} acknowledged write(s) by {server or 'an unknown server'} are missing "
                            "from the new primary",
                    {"server": server.as_json() if server else None, "count": len(ids), "ids": sorted(ids)[:EVIDENCE]})
            for server, ids in missing.items()]


def discarded(attempts: list[Attempt], present: set[int], final: Server | None) -> dict[str, int]:
    """Acknowledged writes missing from the new primary, per server that acknowledged them:
    writes a deposed primary took that pg_rewind (or the failover) discarded."""
    per: Counter[str] = Counter()
    for a in attempts:
        if a.ok and a.id not in present and a.server != final:
            per[str(a.server or "an unknown server")] += 1
    return dict(per)


# Two primaries at once ---------------------------------------------------------------------------
def split_brain(attempts: list[Attempt]) -> list[Anomaly]:
    """Servers that acknowledged writes after a newer primary's first acknowledged write.

    A primary is a server (address, port) on one timeline of one system: a promotion makes a new
    one. Primaries are ordered by their first acknowledgement; a write the older one acknowledged
    that *began* after the newer one's first write *returned* was certainly taken while both
    took writes (an operation still in flight at that moment could have committed before it,
    so it is not evidence)."""
    acks = sorted((a for a in attempts if a.ok and a.server is not None), key=lambda a: a.ended)
    first: dict[Server, Attempt] = {}
    by_server: dict[Server, list[Attempt]] = defaultdict(list)
    for a in acks:
        assert a.server is not None
        first.setdefault(a.server, a)
        by_server[a.server].append(a)
    order = sorted(first, key=lambda s: first[s].ended)
    found = []
    for i, older in enumerate(order):
        for newer in order[i + 1:]:
            began = first[newer]
            late = [a for a in by_server[older] if a.started > began.ended]
            if late:
                found.append(Anomaly(
                    "split_brain",
                    f"two primaries: {older} acknowledged {len(late)} write(s) begun after {newer} had "
                    f"acknowledged its first (id {began.id})",
                    {"older": older.as_json(), "newer": newer.as_json(), "newer_first_id": began.id,
                     "newer_first_at": round(began.ended, 3), "count": len(late),
                     "ids": [a.id for a in late[:EVIDENCE]],
                     "last_at": round(max(a.ended for a in late), 3)}))
    return found


def overlap_seconds(attempts: list[Attempt]) -> float:
    """How long, in all, older primaries kept acknowledging writes after a newer one's first."""
    total = 0.0
    for anomaly in split_brain(attempts):
        total += max(0.0, anomaly.evidence["last_at"] - anomaly.evidence["newer_first_at"])
    return total


# The bank: a fixed total ---------------------------------------------------------------------------
def bank_totals(reads: list[Attempt], total: int, accounts: int, where: str) -> list[Anomaly]:
    """Every successful read of the balances (detail: (sum, count)) saw the fixed total."""
    wrong = [r for r in reads if r.ok and tuple(r.detail) != (total, accounts)]
    if not wrong:
        return []
    return [Anomaly("bank_total", f"{len(wrong)} read(s) through the {where} endpoint saw a total other than "
                                  f"{total} over {accounts} accounts",
                    {"endpoint": where, "count": len(wrong),
                     "reads": [{"at": round(r.ended, 3), "sum": r.detail[0], "accounts": r.detail[1],
                                "server": r.server.as_json() if r.server else None} for r in wrong[:EVIDENCE]]})]


def bank_audit(balances: dict[int, int], total: int, accounts: int) -> list[Anomaly]:
    """The final audit on the new primary: the same accounts, the same total."""
    got = sum(balances.values())
    if got == total and len(balances) == accounts:
        return []
    return [Anomaly("bank_total", f"the final audit found {got} over {len(balances)} accounts, not {total} over "
                                  f"{accounts}", {"sum": got, "accounts": len(balances)})]


def bank_ledger(initial: int, balances: dict[int, int], transfers: list[tuple[int, int, int, int]]) -> list[Anomaly]:
    """Each account's balance is its opening balance plus what the transfer log says it received
    minus what it sent (transfers: (id, source, destination, amount)): no transfer half-applied,
    none applied twice or without its log row."""
    expected = dict.fromkeys(balances, initial)
    for _, source, destination, amount in transfers:
        expected[source] = expected.get(source, initial) - amount
        expected[destination] = expected.get(destination, initial) + amount
    wrong = {account: {"balance": balances.get(account), "expected": want}
             for account, want in sorted(expected.items()) if balances.get(account) != want}
    if not wrong:
        return []
    return [Anomaly("bank_ledger", f"{len(wrong)} account(s) disagree with the transfer log",
                    {"count": len(wrong), "accounts": dict(list(wrong.items())[:EVIDENCE])})]


# Append-only lists ---------------------------------------------------------------------------------
def append_duplicates(rows: list[tuple[int, int, int]]) -> list[Anomaly]:
    """An append (id) found more than once in the lists (rows: (position, key, id))."""
    seen: dict[int, list[int]] = defaultdict(list)
    for pos, _key, id_ in rows:
        seen[id_].append(pos)
    twice = {id_: positions for id_, positions in seen.items() if len(positions) > 1}
    if not twice:
        return []
    return [Anomaly("append_duplicate", f"{len(twice)} append(s) appear more than once",
                    {"count": len(twice), "positions": dict(list(sorted(twice.items()))[:EVIDENCE])})]


def append_order(attempts: list[Attempt], rows: list[tuple[int, int, int]]) -> list[Anomaly]:
    """Appends to one key's list are in the order they were acknowledged: when append A was
    acknowledged before append B began (attempt detail: the key), A precedes B in the list."""
    position = {id_: pos for pos, _key, id_ in rows}
    per_key: dict[int, list[Attempt]] = defaultdict(list)
    for a in attempts:
        if a.ok and a.id in position:
            per_key[a.detail].append(a)
    found = []
    for key, done in sorted(per_key.items()):
        by_end = sorted(done, key=lambda a: a.ended)
        ends = [a.ended for a in by_end]
        # best[i]: the acknowledged append with the highest position among by_end[:i + 1]
        best: list[Attempt] = []
        for a in by_end:
            best.append(a if not best or position[a.id] > position[best[-1].id] else best[-1])
        wrong = []
        for b in done:
            i = bisect.bisect_left(ends, b.started) - 1  # appends acknowledged before b began
            if i >= 0 and position[best[i].id] > position[b.id]:
                wrong.append({"earlier": best[i].id, "earlier_position": position[best[i].id],
                              "later": b.id, "later_position": position[b.id]})
        if wrong:
            found.append(Anomaly("append_order", f"{len(wrong)} append(s) to key {key} are listed before an "
                                                 "append acknowledged before they began",
                                 {"key": key, "count": len(wrong), "pairs": wrong[:EVIDENCE]}))
    return found
