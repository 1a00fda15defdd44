"""A write probe: what a client of the lab's write endpoint sees while something breaks.

A :class:`WriteProbe` thread inserts one row per attempt into ``pglab_probe(id bigint primary
key)`` through one endpoint (HAProxy's primary port), in autocommit mode, every ``interval``
seconds. Every attempt takes a new id; an id is *acknowledged* when its INSERT returned without
error within the client timeout. A failed or timed-out attempt is recorded, its connection dropped
(a timed-out one is abandoned to its thread, as a client with a timeout would abandon it) and the
next attempt opens a fresh one.

:func:`tally` compares what the probe recorded with the ids read back from the new primary:
acknowledged writes that are missing (lost) and failed writes that committed nonetheless.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from pglab.sql import first_line

TABLE = "pglab_probe"
CLIENT_TIMEOUT = 1.0  # seconds an attempt (connect included) may take before the client gives up
INTERVAL = 0.01  # seconds between attempts
PROBE_LIMIT = 600.0  # the probe never runs longer than this


@dataclass(frozen=True)
class Attempt:
    id: int
    started: float  # time.monotonic()
    ended: float
    ok: bool
    error: str = ""


def prepare_table(conninfo: dict[str, Any]) -> None:
    """An empty probe table on the current primary."""
    with psycopg.connect(autocommit=True, **conninfo) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigint PRIMARY KEY, at timestamptz DEFAULT now())")
        conn.execute(f"TRUNCATE {TABLE}")


def read_ids(conninfo: dict[str, Any]) -> set[int]:
    with psycopg.connect(autocommit=True, **conninfo) as conn:
        return {row[0] for row in conn.execute(f"SELECT id FROM {TABLE}")}


class WriteProbe:
    def __init__(self, conninfo: dict[str, Any], timeout: float = CLIENT_TIMEOUT, interval: float = INTERVAL,
                 limit: float = PROBE_LIMIT, step: int = 1) -> None:
        # libpq waits at least 2 s to connect whatever connect_timeout says; the attempt's own
        # timeout below is what bounds it.
        self.conninfo = {**conninfo, "connect_timeout": 2,
                         "options": f"-c statement_timeout={int(timeout * 1000)}", "application_name": "pglab-probe"}
        self.timeout, self.interval, self.limit, self.step = timeout, interval, limit, step
        self.attempts: list[Attempt] = []
        self.crashed: str | None = None
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="pglab-write-probe", daemon=True)

    # The probe's thread ------------------------------------------------------------------------
    def _run(self) -> None:
        started = time.monotonic()
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pglab-probe-attempt")
        conn: psycopg.Connection | None = None
        try:
            for id_ in itertools.count(self.step, self.step):
                if self._halt.is_set() or time.monotonic() - started > self.limit:
                    break
                begun = time.monotonic()
                future = pool.submit(self._insert, conn, id_)
                try:
                    conn = future.result(timeout=self.timeout)
                    self._record(Attempt(id_, begun, time.monotonic(), True))
                    self._halt.wait(self.interval)
                except concurrent.futures.TimeoutError:
                    # The attempt's thread may stay blocked (a frozen server): leave it, as a
                    # client would, and go on with a fresh thread and connection.
                    self._record(Attempt(id_, begun, time.monotonic(), False, f"no answer within {self.timeout:g} s"))
                    pool.shutdown(wait=False)
                    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pglab-probe-attempt")
                    conn = None
                except psycopg.Error as exc:
                    self._record(Attempt(id_, begun, time.monotonic(), False, first_line(exc)))
                    conn = None  # closed by the attempt
                    self._halt.wait(self.interval)
        except Exception as exc:  # never die silently: the drill reports it
            self.crashed = f"{type(exc).__name__}: {first_line(exc)}"
        finally:
            pool.shutdown(wait=False)
            _close(conn)

    def _insert(self, conn: psycopg.Connection | None, id_: int) -> psycopg.Connection:
        """One attempt, in the attempt thread: the connection to use next, or an error (the
        connection then closed)."""
        try:
            if conn is None:
                conn = psycopg.connect(autocommit=True, **self.conninfo)
            conn.execute(f"INSERT INTO {TABLE} (id) VALUES (%s)", (id_,))
        except psycopg.Error:
            _close(conn)
            raise
        return conn

    def _record(self, attempt: Attempt) -> None:
        with self._lock:
            self.attempts.append(attempt)

    # The drill's side ----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()
        self._thread.join(self.timeout + 5)

    def snapshot(self) -> list[Attempt]:
        with self._lock:
            return list(self.attempts)

    def last_error(self) -> str:
        failed = [a for a in self.snapshot() if not a.ok]
        return failed[-1].error if failed else "none"

    def wait_succeeding(self, since: float, hold: float, timeout: float) -> bool:
        """Wait until writes have been acknowledged for ``hold`` seconds with no failure after
        ``since`` (a time.monotonic()) or after the last failure; False after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._thread.is_alive():
            attempts = self.snapshot()
            failures = [a.ended for a in attempts if not a.ok]
            streak_from = max([since, *failures])
            acks = [a.ended for a in attempts if a.ok and a.ended > streak_from]
            if acks and acks[-1] - streak_from >= hold:
                return True
            time.sleep(0.05)
        return False


def _close(conn: psycopg.Connection | None) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()


@dataclass
class Tally:
    attempts: int
    acknowledged: int
    failed: int
    unavailable: float  # the longest time without an acknowledged write, seconds
    unavailable_from: float | None  # when that gap began (time.monotonic())
    lost: list[int] = field(default_factory=list)  # acknowledged, absent from the new primary
    failed_committed: list[int] = field(default_factory=list)  # failed, present nonetheless
    errors: dict[str, int] = field(default_factory=dict)  # error text -> count


def tally(attempts: list[Attempt], present: set[int], since: float) -> Tally:
    """The figures of a probe's attempts, counting the gap from ``since`` (the fault)."""
    acks = [since] + [a.ended for a in attempts if a.ok and a.ended >= since]
    gaps = [(after - before, before) for before, after in itertools.pairwise(acks)]
    longest, gap_from = max(gaps, default=(0.0, None))
    errors: dict[str, int] = {}
    for a in attempts:
        if not a.ok:
            errors[a.error] = errors.get(a.error, 0) + 1
    return Tally(
        attempts=len(attempts),
        acknowledged=sum(a.ok for a in attempts),
        failed=sum(not a.ok for a in attempts),
        unavailable=longest,
        unavailable_from=gap_from,
        lost=sorted(a.id for a in attempts if a.ok and a.id not in present),
        failed_committed=sorted(a.id for a in attempts if not a.ok and a.id in present),
        errors=dict(sorted(errors.items(), key=lambda kv: -kv[1])),
    )


# A probe beside a node ------------------------------------------------------------------------
# `python -m pglab.probe` writes like a client standing on the same machine as a node (the
# provider starts it there, e.g. in the node's cgroup): ids count down from -1 so they never clash
# with the endpoint probe's, connection settings come in PGLAB_PROBE (JSON: they hold a password),
# and on SIGTERM it prints its attempts, wall-clock times, as one JSON list.
PROBE_ENV = "PGLAB_PROBE"


def attempts_from_json(text: str) -> list[Attempt]:
    return [Attempt(a["id"], a["started"], a["ended"], a["ok"], a.get("error", "")) for a in json.loads(text)]


def _main() -> None:
    writer = WriteProbe(json.loads(os.environ[PROBE_ENV]), step=-1)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    writer.start()
    stop.wait(PROBE_LIMIT)
    writer.stop()
    shift = time.time() - time.monotonic()
    json.dump([{"id": a.id, "started": a.started + shift, "ended": a.ended + shift, "ok": a.ok, "error": a.error}
               for a in writer.snapshot()], sys.stdout)
    sys.stdout.flush()
    os._exit(0)  # attempt threads blocked on a cut-off server must not hold the exit


if __name__ == "__main__":
    _main()
