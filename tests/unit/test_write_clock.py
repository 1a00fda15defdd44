"""The write clock: a client's attempt timeout, and no figure until a write is acknowledged."""

from __future__ import annotations

import socket
import time

from pglab.write_clock import CLIENT_TIMEOUT, HOST_CONNECT_TIMEOUT, WriteClock, attempt_timeout


def test_a_multi_host_endpoint_gives_libpq_time_to_skip_each_host_but_the_last() -> None:
    assert attempt_timeout("127.0.0.5") == CLIENT_TIMEOUT
    assert attempt_timeout("a,b,c") == CLIENT_TIMEOUT + 2 * HOST_CONNECT_TIMEOUT


def test_a_clock_that_never_gets_a_write_through_says_so_with_the_clients_error() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clock = WriteClock({"host": "127.0.0.1", "port": port, "user": "x", "password": "x", "dbname": "x"},
                       time.monotonic()).start()
    try:
        assert clock.wait(0.5) is None
        assert clock.seconds is None and clock.attempts >= 1
        assert "refused" in clock.last_error or "connect" in clock.last_error
    finally:
        clock.stop()
