"""What the cluster did while a drill ran, sampled beside the clients: the replicas' lag behind the
primary at its worst, and when the cluster was healthy again after the fault.

Two small threads, cheap on purpose: one asks the primary (through the write endpoint, so it
follows a failover) for ``pg_stat_replication`` every :data:`LAG_EVERY` seconds, one asks the stack
for its health every :data:`HEALTH_EVERY` seconds. Each question is abandoned after a client
timeout, as the drills' probe abandons a write: a frozen server never holds the watch.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg

from pglab import sql
from pglab.drills.background_load import LAG_SQL
from pglab.lab import Lab
from pglab.stacks.base import Stack

LAG_EVERY = 0.5  # seconds between two looks at pg_stat_replication
HEALTH_EVERY = 1.0  # seconds between two looks at the stack's health
ANSWER_WITHIN = 2.0  # seconds a look may take before it is abandoned

T = TypeVar("T")


@dataclass
class Worst:
    """A replica's worst lag seen, and when (time.monotonic())."""

    flush_bytes: int = 0
    replay_bytes: int = 0
    replay_lag_s: float | None = None
    at: float = 0.0


@dataclass
class Watch:
    lab: Lab
    conninfo: dict[str, Any]  # the write endpoint's psycopg keywords
    worst: dict[str, Worst] = field(default_factory=dict)  # node -> its worst lag
    health: list[tuple[float, bool]] = field(default_factory=list)  # (time.monotonic(), healthy)
    _halt: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Watch:
        stack = self.lab.stack(timeout=ANSWER_WITHIN / 2)
        names = {stack.application_name(n.name): n.name for n in self.lab.topology.with_role("postgres")}
        self._threads = [threading.Thread(target=self._lag, args=(names,), name="pglab-watch-lag", daemon=True),
                         threading.Thread(target=self._health, args=(stack,), name="pglab-watch-health",
                                          daemon=True)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._halt.set()
        for thread in self._threads:
            thread.join(ANSWER_WITHIN + 1)

    # What it saw -------------------------------------------------------------------------------
    def worst_lag(self, fault_at: float) -> dict[str, dict[str, Any]]:
        """Each replica's worst lag during the drill: bytes not yet flushed and not yet replayed,
        the replay lag in seconds, and when the worst replay was seen (seconds after the fault)."""
        return {name: {"flush_bytes": w.flush_bytes, "replay_bytes": w.replay_bytes, "replay_lag_s": w.replay_lag_s,
                       "at_s": round(w.at - fault_at, 2)} for name, w in sorted(self.worst.items())}

    def healthy_again(self, fault_at: float, healthy_at: float | None) -> float | None:
        """Seconds after the fault until the cluster was seen healthy again (see
        :func:`healthy_again`)."""
        return healthy_again(list(self.health), fault_at, healthy_at)

    # The threads ---------------------------------------------------------------------------------
    def _lag(self, names: dict[str, str]) -> None:
        conn: psycopg.Connection | None = None
        while not self._halt.wait(LAG_EVERY):
            try:
                if conn is None:
                    conn = _bounded(self._connect)
                rows = _bounded(functools.partial(_replication, conn))
            except psycopg.Error:
                if conn is not None:
                    _close(conn)
                conn = None
                continue
            except TimeoutError:
                conn = None  # a frozen server's: left to the thread that waits on it
                continue
            now = time.monotonic()
            for application_name, _state, _sync, flush, replay, seconds in rows:
                worst = self.worst.setdefault(names.get(application_name, application_name), Worst(at=now))
                worst.flush_bytes = max(worst.flush_bytes, flush or 0)
                if (replay or 0) > worst.replay_bytes:
                    worst.replay_bytes, worst.at = replay, now
                if seconds is not None and (worst.replay_lag_s is None or seconds > worst.replay_lag_s):
                    worst.replay_lag_s = round(seconds, 3)
        if conn is not None:
            _close(conn)

    def _connect(self) -> psycopg.Connection:
        return sql.session(**{**self.conninfo, "connect_timeout": 2, "application_name": "pglab-watch"})

    def _health(self, stack: Stack) -> None:
        while not self._halt.wait(HEALTH_EVERY):
            try:
                healthy = _bounded(lambda: stack.health().healthy, timeout=ANSWER_WITHIN * 3)
            except Exception:  # an unanswered or failed look: an unhealthy cluster
                healthy = False
            self.health.append((time.monotonic(), healthy))


def healthy_again(looks: list[tuple[float, bool]], fault_at: float, healthy_at: float | None) -> float | None:
    """Seconds after ``fault_at`` when the cluster was healthy again: the first healthy look after
    the last unhealthy one since the fault, or ``healthy_at`` (when the drill found it healthy)
    when no healthy look followed. None: it was never seen unhealthy after the fault."""
    since = [(at, ok) for at, ok in looks if at >= fault_at]
    last_bad = max((at for at, ok in since if not ok), default=None)
    if last_bad is None:
        return None
    first_good = min((at for at, ok in since if ok and at > last_bad), default=healthy_at)
    return None if first_good is None else round(first_good - fault_at, 2)


def _bounded(look: Callable[[], T], timeout: float = ANSWER_WITHIN) -> T:
    """``look()``, abandoned (TimeoutError) when it takes longer than ``timeout``."""
    answer: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            answer.append(look())
        except BaseException as exc:  # handed to the caller
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if failure:
        raise failure[0]
    if not answer:
        raise TimeoutError(f"no answer within {timeout:g} s")
    return answer[0]


def _replication(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    return conn.execute(LAG_SQL).fetchall()


def _close(conn: psycopg.Connection) -> None:
    with contextlib.suppress(Exception):
        conn.close()
