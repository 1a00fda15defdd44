"""What the drill's clients do, and the rules their history must keep (``--workload``).

- ``insert``: one row per attempt in ``pglab_probe`` (the probe's own operation); acknowledged
  rows must all be on the new primary.
- ``bank``: accounts with a fixed total in ``pglab_bank(id, balance)``; each attempt moves money
  between two accounts in a REPEATABLE READ transaction (read both balances, write both, log the
  transfer in ``pglab_bank_log``); readers sum the balances, and every sum, and the final audit,
  must be the total; every account must agree with the log.
- ``append``: per-key append-only lists, one row per append in ``pglab_append`` with the writer's
  sequence number; no acknowledged append lost or listed twice, each key's list in the order the
  appends were acknowledged.

A workload prepares its tables on the primary, gives each client its operation, reads its state
back from the new primary and judges the history with :mod:`pglab.drills.invariants`.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import psycopg

from pglab.drills import invariants, probe
from pglab.drills.invariants import Anomaly
from pglab.drills.probe import Attempt, Operation


@dataclass
class Outcome:
    """What a workload read back from the new primary after the drill."""

    present: set[int]  # ids of the attempts whose write is there
    state: dict[str, Any] = field(default_factory=dict)  # the workload's own (balances, lists ...)


class Workload(ABC):
    name: str = ""
    table: str = ""  # one row per acknowledged attempt, keyed by the attempt's id
    checks: tuple[str, ...] = ("lost", "split_brain")
    # The isolation level of the transaction each operation runs in (the probe opens it, so it can
    # bound it on a pooled session); None: the operation's statements run in autocommit.
    isolation: str | None = None

    def __init__(self, clients: int = 1) -> None:
        self.clients = clients

    @abstractmethod
    def prepare(self, conn: psycopg.Connection) -> None:
        """Empty tables (and opening balances) on the primary, autocommit connection."""

    @abstractmethod
    def operation(self, client: int) -> Operation:
        """The attempt ``client`` repeats: (connection, attempt id) -> detail for the checkers."""

    def reader(self) -> Operation | None:
        """What a reader repeats, if the workload has readers of its own (the bank's sums)."""
        return None

    @abstractmethod
    def read_back(self, conn: psycopg.Connection) -> Outcome:
        """The workload's state on the new primary."""

    def check(self, writes: list[Attempt], outcome: Outcome, reads: dict[str, list[Attempt]]) -> list[Anomaly]:
        """The workload's own rules (lost writes and split brain are checked for every workload)."""
        return []

    def visible_sql(self) -> str:
        """A query that returns a row once the write of attempt id %s is visible."""
        return f"SELECT 1 FROM {self.table} WHERE id = %s"


class Insert(Workload):
    name = "insert"
    table = probe.TABLE

    def prepare(self, conn: psycopg.Connection) -> None:
        probe.prepare_table_on(conn)

    def operation(self, client: int) -> Operation:
        return probe.insert_row

    def read_back(self, conn: psycopg.Connection) -> Outcome:
        return Outcome({row[0] for row in conn.execute(f"SELECT id FROM {self.table}")})


class Bank(Workload):
    name = "bank"
    table = "pglab_bank_log"
    checks = ("lost", "split_brain", "bank_total", "bank_ledger")
    # Read, compute here, write: at READ COMMITTED two such transfers could overwrite each other
    # and change the total; REPEATABLE READ refuses the second (a conflict).
    isolation = "REPEATABLE READ"
    OPENING = 1000  # every account's opening balance
    PER_CLIENT = 8  # accounts per writer: few enough for real conflicts, enough for progress

    @property
    def accounts(self) -> int:
        return max(4, self.PER_CLIENT * self.clients)

    @property
    def total(self) -> int:
        return self.OPENING * self.accounts

    def prepare(self, conn: psycopg.Connection) -> None:
        conn.execute("DROP TABLE IF EXISTS pglab_bank, pglab_bank_log")
        conn.execute("CREATE TABLE pglab_bank (id int PRIMARY KEY, balance bigint NOT NULL)")
        conn.execute("CREATE TABLE pglab_bank_log (id bigint PRIMARY KEY, source int NOT NULL, "
                     "destination int NOT NULL, amount int NOT NULL, at timestamptz DEFAULT now())")
        conn.execute("INSERT INTO pglab_bank SELECT g, %s FROM generate_series(1, %s) g", (self.OPENING, self.accounts))

    def operation(self, client: int) -> Operation:
        rng = random.Random(client)
        accounts = self.accounts

        def transfer(conn: psycopg.Connection, id_: int) -> tuple[int, int, int]:
            source, destination = rng.sample(range(1, accounts + 1), 2)
            amount = rng.randint(1, 10)
            # In the probe's transaction, at the workload's isolation level.
            balances: dict[int, int] = dict(conn.execute("SELECT id, balance FROM pglab_bank WHERE id IN (%s, %s)",
                                                         (source, destination)).fetchall())
            conn.execute(  # one round trip for the writes and the commit; every value is ours, an int
                f"UPDATE pglab_bank SET balance = {balances[source] - amount} WHERE id = {source};"
                f"UPDATE pglab_bank SET balance = {balances[destination] + amount} WHERE id = {destination};"
                f"INSERT INTO pglab_bank_log (id, source, destination, amount) "
                f"VALUES ({int(id_)}, {source}, {destination}, {amount});"
                "COMMIT")
            return source, destination, amount

        return transfer

    def reader(self) -> Operation:
        def balances(conn: psycopg.Connection, _id: int) -> tuple[int, int]:
            total, count = conn.execute(
                "SELECT coalesce(sum(balance), 0)::bigint, count(*) FROM pglab_bank").fetchone() or (0, 0)
            return int(total), int(count)

        return balances

    def read_back(self, conn: psycopg.Connection) -> Outcome:
        balances: dict[int, int] = dict(conn.execute("SELECT id, balance FROM pglab_bank").fetchall())
        transfers = conn.execute("SELECT id, source, destination, amount FROM pglab_bank_log").fetchall()
        return Outcome({t[0] for t in transfers}, {"balances": balances, "transfers": transfers})

    def check(self, writes: list[Attempt], outcome: Outcome, reads: dict[str, list[Attempt]]) -> list[Anomaly]:
        found = []
        for where, done in reads.items():
            found += invariants.bank_totals(done, self.total, self.accounts, where)
        found += invariants.bank_audit(outcome.state["balances"], self.total, self.accounts)
        found += invariants.bank_ledger(self.OPENING, outcome.state["balances"], outcome.state["transfers"])
        return found


class Append(Workload):
    name = "append"
    table = "pglab_append"
    checks = ("lost", "split_brain", "append_duplicate", "append_order")
    KEYS = 4  # lists; few, so that concurrent appends share lists

    def prepare(self, conn: psycopg.Connection) -> None:
        conn.execute("DROP TABLE IF EXISTS pglab_append")
        conn.execute("CREATE TABLE pglab_append (position bigserial PRIMARY KEY, key int NOT NULL, "
                     "client int NOT NULL, seq int NOT NULL, id bigint NOT NULL)")
        conn.execute("CREATE INDEX ON pglab_append (id)")

    def operation(self, client: int) -> Operation:
        rng = random.Random(client)
        sequence = iter(range(1, 1 << 62))

        def append(conn: psycopg.Connection, id_: int) -> int:
            key = rng.randrange(self.KEYS)
            conn.execute("INSERT INTO pglab_append (key, client, seq, id) VALUES (%s, %s, %s, %s)",
                         (key, client, next(sequence), id_))
            return key

        return append

    def read_back(self, conn: psycopg.Connection) -> Outcome:
        rows = conn.execute("SELECT position, key, id FROM pglab_append ORDER BY position").fetchall()
        return Outcome({row[2] for row in rows}, {"rows": rows})

    def check(self, writes: list[Attempt], outcome: Outcome, reads: dict[str, list[Attempt]]) -> list[Anomaly]:
        rows = outcome.state["rows"]
        return invariants.append_duplicates(rows) + invariants.append_order(writes, rows)


WORKLOADS: dict[str, type[Workload]] = {w.name: w for w in (Insert, Bank, Append)}


def get(name: str, clients: int = 1) -> Workload:
    return WORKLOADS[name](clients)
