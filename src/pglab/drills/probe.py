"""A write probe: what a client of the lab's write endpoint sees while something breaks.

A :class:`WriteProbe` thread runs one operation per attempt through one endpoint (HAProxy's
primary port), every ``interval`` seconds: by default it inserts one row into ``pglab_probe(id
bigint primary key)`` in autocommit mode; a workload (:mod:`pglab.drills.workloads`) may give it another
operation (a bank transfer, an append). Every attempt takes a new id; an id is *acknowledged* when
its operation returned without error within the client timeout, and the attempt records which
server took it (:class:`Server`: address, system identifier, timeline). A failed or timed-out
attempt is recorded, its connection dropped (a timed-out one is abandoned to its thread, as a
client with a timeout would abandon it) and the next attempt opens a fresh one; an attempt the
database refused for a conflict (serialization failure, deadlock) keeps its connection: the
server worked, the transaction lost a race.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
import psycopg.errors

from pglab import sql
from pglab.sql import first_line
from pglab.waiting import timeout_scale
from pglab.write_clock import HOST_CONNECT_TIMEOUT, attempt_timeout

TABLE = "pglab_probe"
CLIENT_TIMEOUT = 1.0  # seconds an attempt (connect included) may take before the client gives up
# libpq's connect_timeout for each host (its floor: less counts as 2 s). Through a multi-host URI
# (pg_auto_failover's) a client waits it out for every host it tries before the one that takes
# writes: a frozen node accepts TCP and never completes TLS, so a client bounded by CLIENT_TIMEOUT
# alone could never connect past it, though the primary behind it answers.
CONNECT_TIMEOUT = HOST_CONNECT_TIMEOUT  # the write clock's, so both clients measure alike
INTERVAL = 0.01  # seconds between attempts
PROBE_LIMIT = 600.0  # the probe never runs longer than this


@dataclass(frozen=True)
class Server:
    """Which server a session reached: the split-brain detector tells primaries apart by these."""

    address: str
    port: int
    system_identifier: str
    timeline: int

    def __str__(self) -> str:
        return f"{self.address}:{self.port} (system {self.system_identifier}, timeline {self.timeline})"

    def as_json(self) -> dict[str, Any]:
        return {"address": self.address, "port": self.port, "system_identifier": self.system_identifier,
                "timeline": self.timeline}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Server | None:
        return None if data is None else cls(data["address"], data["port"], data["system_identifier"],
                                             data["timeline"])


# One round trip when a session opens. On a primary the timeline is the one WAL is written on
# (the WAL file name's first 8 hex digits); a standby reports the timeline it receives. Whether it
# is a standby is asked once: asked twice, a promotion in between gave a primary a standby's
# (older) timeline and no reason to ask again. The session's statement_timeout (ms) tells whether
# the startup options arrived (see :func:`opening_sql`).
IDENTITY_SQL = """
SELECT host(inet_server_addr()), inet_server_port(), (SELECT system_identifier::text FROM pg_control_system()),
       CASE WHEN standby
            THEN coalesce((SELECT received_tli FROM pg_stat_wal_receiver),
                          (SELECT timeline_id FROM pg_control_checkpoint()))
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,
       standby, (SELECT setting::int FROM pg_settings WHERE name = 'statement_timeout')
FROM (SELECT pg_is_in_recovery() AS standby OFFSET 0) AS recovery  -- OFFSET 0: evaluated once, never inlined
"""


def identify(conn: psycopg.Connection) -> tuple[Server, bool, int]:
    """The server a session reached, whether it was a standby then, and the statement_timeout
    (ms) the session runs with."""
    address, port, system_identifier, timeline, standby, timeout_ms = conn.execute(IDENTITY_SQL).fetchone() or (
        "", 0, "", 0, False, 0)
    return Server(address or "local", port or 0, system_identifier, timeline), bool(standby), int(timeout_ms or 0)


# A session: its connection, the server it reached, whether that server was a standby when last
# asked, its statement_timeout (ms). A standby's session survives its promotion, and its timeline
# changes then: a write that succeeds on it asks again, so each write is credited to the timeline
# that took it.
Session = tuple[psycopg.Connection, Server, bool, int]


def opening_sql(isolation: str | None, timeout_ms: int, session_timeout_ms: int) -> str | None:
    """What an attempt sends before its operation, in one round trip; None: nothing (the
    operation's statements run in autocommit, each its own transaction).

    A client's statements are bounded by ``statement_timeout``, which the probe asks for in
    libpq's startup ``options``. PgBouncer drops startup options (ignore_startup_parameters) and,
    in transaction mode, gives each transaction whichever server connection is free: a session
    SET would land on one server connection and stay there for other clients. So a session whose
    options did not arrive (its timeout is not the one asked for) bounds each of its attempts
    itself: a transaction whose first statement is ``SET LOCAL statement_timeout``, which ends
    with the transaction and so never outlives it on a pooled server connection."""
    bound = "" if session_timeout_ms == timeout_ms else f"; SET LOCAL statement_timeout = {int(timeout_ms)}"
    if isolation is None and not bound:
        return None
    return f"BEGIN{f' ISOLATION LEVEL {isolation}' if isolation else ''}{bound}"


@dataclass(frozen=True)
class Attempt:
    id: int
    started: float  # time.monotonic()
    ended: float
    ok: bool
    error: str = ""
    client: int = 0
    server: Server | None = None  # who acknowledged it (or refused it), when a session was open
    conflict: bool = False  # refused for a conflict (40001, 40P01): the server worked
    detail: Any = None  # what the workload's operation returned (a transfer, an append's key ...)


CONFLICTS = (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected)
Operation = Callable[[psycopg.Connection, int], Any]


def insert_row(conn: psycopg.Connection, id_: int) -> None:
    """The default operation: one row with the attempt's id."""
    conn.execute(f"INSERT INTO {TABLE} (id) VALUES (%s)", (id_,))


def prepare_table(conninfo: dict[str, Any]) -> None:
    """An empty probe table on the current primary."""
    with sql.session(**conninfo) as conn:
        prepare_table_on(conn)


def prepare_table_on(conn: psycopg.Connection) -> None:
    conn.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigint PRIMARY KEY, at timestamptz DEFAULT now())")
    conn.execute(f"TRUNCATE {TABLE}")


def read_ids(conninfo: dict[str, Any]) -> set[int]:
    with sql.session(**conninfo) as conn:
        return read_ids_on(conn)


def read_ids_on(conn: psycopg.Connection) -> set[int]:
    return {row[0] for row in conn.execute(f"SELECT id FROM {TABLE}")}


class WriteProbe:
    def __init__(self, conninfo: dict[str, Any], timeout: float | None = None, interval: float = INTERVAL,
                 limit: float = PROBE_LIMIT, step: int = 1, start: int | None = None, client: int = 0,
                 operation: Operation = insert_row, on_ack: Callable[[Attempt], None] | None = None,
                 reads_only: bool = False, isolation: str | None = None) -> None:
        # libpq waits at least 2 s to connect whatever connect_timeout says; the attempt's own
        # timeout below is what bounds it.
        # On an emulated VM a healthy commit can take longer than a real client would wait.
        timeout = CLIENT_TIMEOUT * timeout_scale() if timeout is None else timeout
        self.timeout_ms = int(timeout * 1000)
        self.conninfo = {**conninfo, "connect_timeout": CONNECT_TIMEOUT,
                         "options": f"-c statement_timeout={self.timeout_ms}", "application_name": "pglab-probe"}
        # A new connection may first wait out each host but the last (see CONNECT_TIMEOUT).
        self.connect_allowance = attempt_timeout(str(conninfo.get("host", "")), 0.0)
        # The operation runs in a transaction the probe opens at this level (None: autocommit);
        # it may commit itself, else the probe commits.
        self.isolation = isolation
        self.timeout, self.interval, self.limit, self.step = timeout, interval, limit, step
        self.first = step if start is None else start
        self.client, self.operation, self.on_ack = client, operation, on_ack
        self.reads_only = reads_only  # a reader: a standby answering is no promotion to follow
        self.attempts: list[Attempt] = []
        self.crashed: str | None = None
        # Running figures, so waiting on many clients never rescans their attempts.
        self.last_failure = 0.0
        self.last_ack = 0.0
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"pglab-write-probe-{client}", daemon=True)

    # The probe's thread ------------------------------------------------------------------------
    def _run(self) -> None:
        started = time.monotonic()
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pglab-probe-attempt")
        session: Session | None = None
        try:
            for id_ in itertools.count(self.first, self.step):
                if self._halt.is_set() or time.monotonic() - started > self.limit:
                    break
                begun = time.monotonic()
                bound = self.attempt_bound(connecting=session is None)
                future = pool.submit(self._attempt, session, id_)
                try:
                    session, detail = future.result(timeout=bound)
                    self._record(Attempt(id_, begun, time.monotonic(), True, client=self.client,
                                         server=session[1], detail=detail))
                    self._halt.wait(self.interval)
                except concurrent.futures.TimeoutError:
                    # The attempt's thread may stay blocked (a frozen server): leave it, as a
                    # client would, and go on with a fresh thread and connection.
                    self._record(Attempt(id_, begun, time.monotonic(), False, f"no answer within {bound:g} s",
                                         client=self.client, server=session[1] if session else None))
                    pool.shutdown(wait=False)
                    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pglab-probe-attempt")
                    session = None
                except Conflict as exc:
                    self._record(Attempt(id_, begun, time.monotonic(), False, exc.text, client=self.client,
                                         server=exc.session[1], conflict=True))
                    session = exc.session  # still open: the transaction was rolled back
                    self._halt.wait(self.interval)
                except psycopg.Error as exc:
                    self._record(Attempt(id_, begun, time.monotonic(), False, first_line(exc), client=self.client,
                                         server=session[1] if session else None))
                    session = None  # closed by the attempt
                    self._halt.wait(self.interval)
        except Exception as exc:  # never die silently: the drill reports it
            self.crashed = f"{type(exc).__name__}: {first_line(exc)}"
        finally:
            pool.shutdown(wait=False)
            _close(session[0] if session else None)

    def attempt_bound(self, connecting: bool) -> float:
        """Seconds an attempt may take: the client timeout, and with a new connection through
        several hosts the connect timeout of each host before the last."""
        return self.timeout + (self.connect_allowance if connecting else 0.0)

    def _attempt(self, session: Session | None, id_: int) -> tuple[Session, Any]:
        """One attempt, in the attempt thread: the session to use next and the operation's
        result, a :class:`Conflict` (session kept), or an error (the connection then closed)."""
        conn = session[0] if session else None
        try:
            if session is None:
                conn = sql.session(**self.conninfo)
                session = (conn, *identify(conn))
            opening = opening_sql(self.isolation, self.timeout_ms, session[3])
            if opening is not None:
                session[0].execute(opening)
            detail = self.operation(session[0], id_)
            if session[0].info.transaction_status == psycopg.pq.TransactionStatus.INTRANS:
                session[0].execute("COMMIT")
            if session[2] and not self.reads_only:  # a write on a standby: promoted since, on a new timeline
                session = (session[0], *identify(session[0]))
            return session, detail
        except CONFLICTS as exc:
            assert session is not None
            with contextlib.suppress(psycopg.Error):
                session[0].execute("ROLLBACK")
            if session[0].info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                raise Conflict(first_line(exc), session) from None
            _close(conn)
            raise
        except psycopg.Error:
            _close(conn)
            raise

    def _record(self, attempt: Attempt) -> None:
        with self._lock:
            self.attempts.append(attempt)
            if attempt.ok:
                self.last_ack = attempt.ended
            elif not attempt.conflict:
                self.last_failure = attempt.ended
        if attempt.ok and self.on_ack is not None:
            self.on_ack(attempt)

    # The drill's side ----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def halt(self) -> None:
        """Ask the probe to stop after its current attempt (see :meth:`stop`)."""
        self._halt.set()

    def stop(self) -> None:
        self._halt.set()
        self._thread.join(self.timeout + 5)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def snapshot(self) -> list[Attempt]:
        with self._lock:
            return list(self.attempts)

    def last_error(self) -> str:
        with self._lock:
            failed = next((a for a in reversed(self.attempts) if not a.ok and not a.conflict), None)
        return failed.error if failed else "none"

    def wait_succeeding(self, since: float, hold: float, timeout: float) -> bool:
        """Wait until writes have been acknowledged for ``hold`` seconds with no failure after
        ``since`` (a time.monotonic()) or after the last failure; False after ``timeout``."""
        return wait_succeeding([self], since, hold, timeout)


class Conflict(Exception):
    """The database refused the transaction for a conflict; the session is still usable."""

    def __init__(self, text: str, session: Session) -> None:
        super().__init__(text)
        self.text, self.session = text, session


def wait_succeeding(probes: list[WriteProbe], since: float, hold: float, timeout: float) -> bool:
    """Wait until the probes' writes have been acknowledged for ``hold`` seconds with no failure
    (conflicts aside) after ``since`` (a time.monotonic()) or after the last failure; False after
    ``timeout`` or when every probe died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(p.alive for p in probes):
        streak_from = max([since, *(p.last_failure for p in probes)])
        last_ack = max(p.last_ack for p in probes)
        if last_ack > streak_from and last_ack - streak_from >= hold:
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
    conflicts: int = 0  # refused for a conflict (the database worked; the transaction lost a race)


def tally(attempts: list[Attempt], present: set[int], since: float) -> Tally:
    """The figures of a probe's attempts, counting the gap from ``since`` (the fault)."""
    acks = [since, *sorted(a.ended for a in attempts if a.ok and a.ended >= since)]  # clients interleave
    gaps = [(after - before, before) for before, after in itertools.pairwise(acks)]
    longest, gap_from = max(gaps, default=(0.0, None))
    errors: dict[str, int] = {}
    for a in attempts:
        if not a.ok:
            errors[a.error] = errors.get(a.error, 0) + 1
    return Tally(
        attempts=len(attempts),
        acknowledged=sum(a.ok for a in attempts),
        failed=sum(not a.ok and not a.conflict for a in attempts),
        conflicts=sum(a.conflict for a in attempts),
        unavailable=longest,
        unavailable_from=gap_from,
        lost=sorted(a.id for a in attempts if a.ok and a.id not in present),
        failed_committed=sorted(a.id for a in attempts if not a.ok and a.id in present),
        errors=dict(sorted(errors.items(), key=lambda kv: -kv[1])),
    )


def stale_primary_errors(attempts: list[Attempt], tally: Tally) -> int:
    """Writes refused as read-only (a demoted primary's answer) that started after the new leader
    took its first write: the end of the longest gap in acknowledged writes after the fault."""
    if tally.unavailable_from is None:
        return 0
    first_new = tally.unavailable_from + tally.unavailable
    return sum(not a.ok and a.started >= first_new and "read-only" in a.error for a in attempts)


# A probe beside a node ------------------------------------------------------------------------
# `python -m pglab.drills.probe` writes like a client standing on the same machine as a node (the
# provider starts it there, e.g. in the node's cgroup): ids count down from -1 so they never clash
# with the endpoint probe's, connection settings come in PGLAB_PROBE (JSON: they hold a password),
# and on SIGTERM it prints its attempts, wall-clock times, as one JSON list.
PROBE_ENV = "PGLAB_PROBE"


def attempts_from_json(text: str) -> list[Attempt]:
    return [Attempt(a["id"], a["started"], a["ended"], a["ok"], a.get("error", ""), client=-1,
                    server=Server.from_json(a.get("server"))) for a in json.loads(text)]


def _main() -> None:
    writer = WriteProbe(json.loads(os.environ[PROBE_ENV]), step=-1)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    writer.start()
    stop.wait(PROBE_LIMIT)
    writer.stop()
    shift = time.time() - time.monotonic()
    json.dump([{"id": a.id, "started": a.started + shift, "ended": a.ended + shift, "ok": a.ok, "error": a.error,
                "server": a.server.as_json() if a.server else None} for a in writer.snapshot()], sys.stdout)
    sys.stdout.flush()
    os._exit(0)  # attempt threads blocked on a cut-off server must not hold the exit


if __name__ == "__main__":
    _main()
