"""Every checker is proven able to fail: histories that keep its rule pass, histories that break
it (a lost append, a changed total, two primaries at once) are reported with their evidence."""

from __future__ import annotations

from pglab.drills import figures, freshness, invariants
from pglab.drills.probe import Attempt, Server

OLD = Server("127.0.61.120", 5432, "7000", 1)
NEW = Server("127.0.61.121", 5432, "7000", 2)


def _ack(id_: int, started: float, ended: float, server: Server = OLD, detail: object = None,
         client: int = 0) -> Attempt:
    return Attempt(id_, started, ended, True, client=client, server=server, detail=detail)


# Lost writes -----------------------------------------------------------------------------------
def test_lost_writes_are_reported_per_server_that_acknowledged_them() -> None:
    history = [_ack(1, 0, 0.1), _ack(2, 0.2, 0.3), _ack(3, 5, 5.1, NEW), Attempt(4, 1, 2, False, "timeout")]
    assert invariants.lost(history, {1, 2, 3}) == []
    [anomaly] = invariants.lost(history, {1, 3, 4})
    assert anomaly.check == "lost" and anomaly.evidence["ids"] == [2]
    assert anomaly.evidence["server"]["address"] == "127.0.61.120" and anomaly.evidence["count"] == 1
    assert invariants.discarded(history, {1, 3}, NEW) == {str(OLD): 1}
    assert invariants.counts([anomaly], ("lost", "split_brain")) == {"lost": 1, "split_brain": 0}


# Two primaries -----------------------------------------------------------------------------------
def test_a_clean_failover_has_no_split_brain() -> None:
    # the old primary's last write returned before the new one's first began
    history = [_ack(1, 0, 0.1), _ack(2, 0.1, 0.2), _ack(3, 20, 20.1, NEW), _ack(4, 20.1, 20.2, NEW)]
    assert invariants.split_brain(history) == []
    # in flight across the new primary's first write: not evidence (it may have committed before)
    assert invariants.split_brain([_ack(1, 19.9, 20.5), _ack(3, 20, 20.1, NEW)]) == []


def test_two_servers_acknowledging_after_the_new_primarys_first_write_are_reported() -> None:
    history = [_ack(1, 0, 0.1), _ack(3, 20, 20.1, NEW), _ack(-5, 21, 21.05, OLD, client=-1),
               _ack(-6, 22, 22.05, OLD, client=-1), _ack(4, 22, 22.1, NEW)]
    [anomaly] = invariants.split_brain(history)
    assert anomaly.check == "split_brain" and anomaly.evidence["ids"] == [-5, -6]
    assert anomaly.evidence["older"]["timeline"] == 1 and anomaly.evidence["newer"]["timeline"] == 2
    assert anomaly.evidence["newer_first_id"] == 3
    assert round(invariants.overlap_seconds(history), 2) == 1.95


def test_two_servers_on_the_same_timeline_are_two_primaries_too() -> None:
    fork = Server("127.0.61.122", 5432, "7000", 2)
    history = [_ack(1, 0, 0.1, NEW), _ack(2, 1, 1.1, fork), _ack(3, 2, 2.1, NEW)]
    assert [a.check for a in invariants.split_brain(history)] == ["split_brain"]


# The bank ----------------------------------------------------------------------------------------
def test_every_read_must_see_the_fixed_total() -> None:
    reads = [Attempt(-1, 0, 0.01, True, detail=(4000, 4), server=NEW), Attempt(-2, 1, 1.01, False, "refused")]
    assert invariants.bank_totals(reads, 4000, 4, "read") == []
    reads.append(Attempt(-3, 2, 2.01, True, detail=(3990, 4), server=NEW))
    [anomaly] = invariants.bank_totals(reads, 4000, 4, "read")
    assert anomaly.check == "bank_total" and anomaly.evidence["reads"][0]["sum"] == 3990
    assert anomaly.evidence["endpoint"] == "read"


def test_the_final_audit_and_the_ledger_catch_a_changed_total_and_a_half_applied_transfer() -> None:
    transfers = [(1, 1, 2, 10), (2, 2, 3, 5)]
    balances = {1: 990, 2: 1005, 3: 1005, 4: 1000}
    assert invariants.bank_audit(balances, 4000, 4) == []
    assert invariants.bank_ledger(1000, balances, transfers) == []
    half = {**balances, 3: 1000}  # transfer 2 took money from account 2 and never paid account 3
    assert [a.check for a in invariants.bank_audit(half, 4000, 4)] == ["bank_total"]
    [ledger] = invariants.bank_ledger(1000, half, transfers)
    assert ledger.evidence["accounts"] == {3: {"balance": 1000, "expected": 1005}}
    # applied without its log row: the total holds, the ledger does not
    assert invariants.bank_ledger(1000, balances, transfers[:1])[0].evidence["count"] == 2


# Append-only lists -------------------------------------------------------------------------------
def test_appends_in_acknowledged_order_pass() -> None:
    history = [_ack(1, 0, 0.1, detail=0), _ack(2, 0.05, 0.2, detail=0), _ack(3, 0.3, 0.4, detail=0),
               _ack(4, 0.3, 0.4, detail=1)]
    rows = [(10, 0, 2), (11, 0, 1), (12, 1, 4), (13, 0, 3)]  # 1 and 2 were concurrent: either order
    assert invariants.append_order(history, rows) == []
    assert invariants.append_duplicates(rows) == []
    assert invariants.lost(history, {r[2] for r in rows}) == []


def test_a_lost_a_doubled_and_an_out_of_order_append_are_reported() -> None:
    history = [_ack(1, 0, 0.1, detail=0), _ack(2, 0.2, 0.3, detail=0), _ack(3, 0.4, 0.5, detail=0),
               _ack(5, 0.4, 0.5, detail=1)]
    rows = [(10, 0, 2), (11, 0, 1), (12, 0, 1), (13, 0, 3)]  # 1 after 2 though acknowledged first, and twice; 5 lost
    [order] = invariants.append_order(history, rows)
    assert order.check == "append_order" and order.evidence["pairs"][0]["later"] == 2
    [double] = invariants.append_duplicates(rows)
    assert double.evidence["positions"] == {1: [11, 12]}
    [lost] = invariants.lost(history, {r[2] for r in rows})
    assert lost.evidence["ids"] == [5]


# Figures ---------------------------------------------------------------------------------------
def test_figures_per_client_and_throughput_windows() -> None:
    history = [_ack(1, 0, 1, client=0), _ack(2, 1, 2, client=1), _ack(3, 2, 9.5, client=0),
               Attempt(4, 3, 4, False, "refused", client=1), Attempt(6, 4, 4.1, False, "40001", client=1,
                                                                        conflict=True),
               _ack(5, 9, 10, client=1), _ack(7, 10, 11, client=0)]
    rows = figures.per_client(history, fault_at=2.0, resumed_at=7.5)
    assert [(r["client"], r["acknowledged"], r["failed"], r["conflicts"]) for r in rows] == [(0, 3, 0, 0), (1, 2, 1, 1)]
    assert rows[1]["unavailable_s"] == 8.0 and rows[0]["unavailable_s"] == 7.5
    rates = figures.throughput(history, 2.0, 7.5)
    # windows [0, 2), [2, 9.5), [9.5, 11): acks ending at 1; 2; 9.5 and 10
    assert rates == {"before": 0.5, "during": round(1 / 7.5, 1), "after": round(2 / 1.5, 1)}


def test_staleness_is_summarised_before_during_and_after_the_fault() -> None:
    samples = [freshness.Sample(1, 0.5, 0.002), freshness.Sample(2, 3.0, None), freshness.Sample(3, 12.0, 0.004),
               freshness.Sample(4, 13.0, 0.008)]
    got = freshness.summary(samples, fault_at=1.0, resumed_at=5.0)
    assert got["before"] == {"followed": 1, "not_seen": 0, "median_ms": 2.0, "max_ms": 2.0}
    assert got["during"]["not_seen"] == 1 and got["after"]["median_ms"] == 6.0
