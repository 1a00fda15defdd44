"""The write probe shared by bench/switchover.py and bench/failover.py.

A :class:`Writer` thread inserts one row per statement, in autocommit mode, into
``bench_writes(id bigint primary key, at timestamptz default now())`` through the lab's writes
endpoint (HAProxy's primary port, or several hosts: libpq then picks the one taking writes).
Every attempt takes the next id; an id is *acknowledged* when its INSERT returned without error.
On any error the writer notes the time, drops the connection and reconnects, sleeping 50 ms
between attempts. It stops on :meth:`Writer.stop` and after at most ``limit`` seconds.

:func:`figures` turns what it recorded, and the ids read back from the table, into the figures:
the longest gap between two acknowledged writes, the time from the first failed attempt to the
next acknowledged write, failed attempts, and acknowledged writes missing from the table.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from pglab import sql

TABLE = "bench_writes"
RECONNECT_PAUSE = 0.05  # seconds between attempts after an error
STATEMENT_TIMEOUT_MS = 1000  # per INSERT: a write that takes longer counts as failed
WRITER_LIMIT = 120.0  # seconds: the writer never runs longer than this


@dataclass(frozen=True)
class Failure:
    at: float  # time.monotonic()
    kind: str  # "connect" or "insert"
    id: int | None  # the id of a failed INSERT (it may still have committed), None for a connect
    error: str


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def prepare_table(host: str, port: int, password: str) -> None:
    """An empty ``bench_writes`` on the current leader (created on the first run)."""
    with sql.connect(host, port, password) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigint PRIMARY KEY, at timestamptz DEFAULT now())")
        conn.execute(f"TRUNCATE {TABLE}")


def read_ids(host: str, port: int, password: str) -> set[int]:
    with sql.connect(host, port, password) as conn:
        return {row[0] for row in conn.execute(f"SELECT id FROM {TABLE}")}


class Writer:
    def __init__(self, host: str, port: int, password: str, limit: float = WRITER_LIMIT) -> None:
        self.host, self.port, self.password, self.limit = host, port, password, limit
        self.acks: list[tuple[int, float]] = []  # (id, time.monotonic()) in order
        self.failures: list[Failure] = []
        self.started_at = 0.0
        self.ended_at: float | None = None
        self.hit_limit = False
        self.crashed: str | None = None  # an unexpected error that ended the thread
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="bench-writer", daemon=True)

    # The writer thread ------------------------------------------------------------------------
    def _run(self) -> None:
        self.started_at = time.monotonic()
        conn: psycopg.Connection | None = None
        next_id = 1
        try:
            while not self._halt.is_set():
                if time.monotonic() - self.started_at >= self.limit:
                    self.hit_limit = True
                    break
                if conn is None:
                    try:
                        conn = sql.connect(self.host, self.port, self.password)
                        conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
                    except psycopg.Error as exc:
                        self._failed("connect", None, exc)
                        conn = _close(conn)
                        self._halt.wait(RECONNECT_PAUSE)
                        continue
                current, next_id = next_id, next_id + 1
                try:
                    conn.execute(f"INSERT INTO {TABLE} (id) VALUES (%s)", (current,))
                except psycopg.Error as exc:
                    self._failed("insert", current, exc)
                    conn = _close(conn)
                    self._halt.wait(RECONNECT_PAUSE)
                    continue
                at = time.monotonic()
                with self._lock:
                    self.acks.append((current, at))
        except Exception as exc:  # never die silently: the harness reports it
            self.crashed = first_line(exc)
        finally:
            _close(conn)
            self.ended_at = time.monotonic()

    def _failed(self, kind: str, id_: int | None, exc: BaseException) -> None:
        with self._lock:
            self.failures.append(Failure(time.monotonic(), kind, id_, first_line(exc)))

    # The harness's side -----------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._halt.set()
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def last_error(self) -> str:
        with self._lock:
            return self.failures[-1].error if self.failures else "none"

    def wait_succeeding(self, since: float, hold: float, timeout: float) -> bool:
        """Wait until writes have been acknowledged for ``hold`` seconds without a failure, counting
        from ``since`` (a time.monotonic()) or the last failure after it; False after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.is_alive():
            with self._lock:
                streak_from = max(since, self.failures[-1].at if self.failures else since)
                last_ack = self.acks[-1][1] if self.acks else None
            if last_ack is not None and last_ack - streak_from >= hold:
                return True
            time.sleep(0.05)
        return False


def _close(conn: psycopg.Connection | None) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()


@dataclass
class WriteFigures:
    acknowledged: int
    failed: int
    failed_connects: int
    failed_inserts: int
    longest_gap: float  # seconds between two consecutive acknowledged writes
    gap_from: float | None  # when the longest gap began, seconds after the operation started
    first_failure_to_ack: float | None  # first failed attempt -> the next acknowledged write
    lost: list[int] = field(default_factory=list)  # acknowledged but absent from the table
    committed_unacked: int = 0  # failed INSERTs whose row is in the table nonetheless
    errors: dict[str, int] = field(default_factory=dict)  # error text -> count
    failures_at: list[float] = field(default_factory=list)  # seconds after the operation started

    def as_json(self) -> dict[str, Any]:
        return {
            "acknowledged": self.acknowledged, "failed": self.failed,
            "failed_connects": self.failed_connects, "failed_inserts": self.failed_inserts,
            "longest_gap": round(self.longest_gap, 3),
            "gap_from": None if self.gap_from is None else round(self.gap_from, 3),
            "first_failure_to_ack": None if self.first_failure_to_ack is None else round(self.first_failure_to_ack, 3),
            "lost": len(self.lost), "lost_ids": self.lost[:50],
            "committed_unacked": self.committed_unacked, "errors": self.errors,
            "failures_at": [round(at, 3) for at in self.failures_at[:50]],
        }


def figures(writer: Writer, present: set[int], op_started: float) -> WriteFigures:
    acks, failures = list(writer.acks), list(writer.failures)
    longest, gap_from = 0.0, None
    for (_, before), (_, after) in itertools.pairwise(acks):
        if after - before > longest:
            longest, gap_from = after - before, before - op_started
    first_to_ack = None
    if failures:
        first = failures[0].at
        first_to_ack = next((at - first for _, at in acks if at > first), None)
    errors: dict[str, int] = {}
    for f in failures:
        errors[f.error] = errors.get(f.error, 0) + 1
    return WriteFigures(
        acknowledged=len(acks),
        failed=len(failures),
        failed_connects=sum(f.kind == "connect" for f in failures),
        failed_inserts=sum(f.kind == "insert" for f in failures),
        longest_gap=longest,
        gap_from=gap_from,
        first_failure_to_ack=first_to_ack,
        lost=sorted(i for i, _ in acks if i not in present),
        committed_unacked=sum(f.id is not None and f.id in present for f in failures),
        errors=dict(sorted(errors.items(), key=lambda kv: -kv[1])),
        failures_at=[f.at - op_started for f in failures],
    )
