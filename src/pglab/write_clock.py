"""When writes resumed, as a client of the write endpoint measures it.

An operation that breaks the leader reports when writes worked again. Asking the stack whether a
new leader is there, then whether a session is writable, adds the stack's own polling (which keeps
asking the frozen member, each time until its timeout) to the figure. A client measures something
else: it writes, gives up after its timeout, opens a fresh connection and writes again, and the
first write acknowledged is the moment writes resumed. :class:`WriteClock` is that client, in a
thread of its own, timed from the fault: the same timeout and connection settings as the drills'
write probe, so an operation's figure and a drill's agree.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from pglab import sql
from pglab.sql import first_line
from pglab.waiting import timeout_scale

CLIENT_TIMEOUT = 1.0  # seconds an attempt (connect included) may take before the client gives up
# libpq tries the hosts of a multi-host endpoint in turn, waiting this long for each: a client of
# such an endpoint must allow that much per host it may skip, or never reach the last one.
HOST_CONNECT_TIMEOUT = 2
INTERVAL = 0.05  # seconds between attempts
# A transaction that takes a transaction id commits a WAL record, waiting for a synchronous standby
# as any write does; a standby refuses it. No table needed.
WRITE_SQL = "SELECT txid_current(), host(inet_server_addr())"


def bounded_write_sql(timeout: float) -> str:
    """The write with its own statement_timeout, in one round trip. The bound rides in the query
    rather than libpq's startup ``options``, which PgBouncer drops: several statements in one
    simple query run as one transaction, so SET LOCAL bounds the write and ends with it (nothing
    is left on a pooled server connection for the next client)."""
    return f"SET LOCAL statement_timeout = {int(timeout * 1000)}; {WRITE_SQL}"


def attempt_timeout(host: str, timeout: float = CLIENT_TIMEOUT) -> float:
    """How long one attempt may take at ``host`` (libpq's host list, comma-separated): ``timeout``,
    and for each host but the last the time libpq may spend on it before trying the next."""
    return timeout + HOST_CONNECT_TIMEOUT * host.count(",")


class WriteClock:
    """Writes through ``conninfo`` (psycopg keywords) from its start until one is acknowledged;
    ``since`` (a time.monotonic()) is the moment the clock counts from, the fault."""

    def __init__(self, conninfo: dict[str, Any], since: float, timeout: float | None = None,
                 interval: float = INTERVAL) -> None:
        timeout = CLIENT_TIMEOUT * timeout_scale() if timeout is None else timeout  # as the drills' probe
        # libpq waits at least 2 s to connect whatever connect_timeout says; the attempt's own
        # timeout is what bounds it, as in the drills' probe.
        self.conninfo = {**conninfo, "connect_timeout": HOST_CONNECT_TIMEOUT, "application_name": "pglab-write-clock"}
        self.write_sql = bounded_write_sql(timeout)
        self.since, self.interval = since, interval
        self.timeout = attempt_timeout(str(conninfo.get("host", "")), timeout)
        self.resumed: float | None = None  # time.monotonic() when the first write was acknowledged
        self.server: str | None = None  # the address of the server that acknowledged it
        self.attempts = 0
        self.last_error = "no attempt yet"
        self._halt = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pglab-write-clock", daemon=True)

    def start(self) -> WriteClock:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._halt.set()

    @property
    def seconds(self) -> float | None:
        """Seconds from ``since`` until the first acknowledged write; None: none yet."""
        return None if self.resumed is None else self.resumed - self.since

    def wait(self, timeout: float, on_wait: Callable[[str, float], Any] | None = None) -> float | None:
        """Wait up to ``timeout`` seconds for the first acknowledged write; its :attr:`seconds`,
        or None when none came."""
        deadline = time.monotonic() + timeout
        while not self._done.wait(min(1.0, max(deadline - time.monotonic(), 0.0))):
            if time.monotonic() >= deadline:
                break
            if on_wait is not None:
                on_wait(self.last_error, time.monotonic() - self.since)
        return self.seconds

    def _run(self) -> None:
        while not self._halt.is_set():
            outcome: list[tuple[bool, str]] = []
            attempt = threading.Thread(target=self._attempt, args=(outcome,), daemon=True)
            attempt.start()
            attempt.join(self.timeout)  # a frozen server: abandon the attempt, as a client would
            self.attempts += 1
            if outcome and outcome[0][0]:
                self.resumed, self.server = time.monotonic(), outcome[0][1]
                self._done.set()
                return
            self.last_error = outcome[0][1] if outcome else f"no answer within {self.timeout:g} s"
            self._halt.wait(self.interval)
        self._done.set()

    def _attempt(self, outcome: list[tuple[bool, str]]) -> None:
        try:
            with sql.session(**self.conninfo) as conn:
                cursor = conn.execute(self.write_sql)
                cursor.nextset()  # past the SET's result, to the write's
                row = cursor.fetchone()
            outcome.append((True, str(row[1]) if row else ""))
        except psycopg.Error as exc:
            outcome.append((False, first_line(exc)))
