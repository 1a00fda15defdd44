"""Faults are what they say, on a replica of the session lab: a hung node runs nothing (children
of the postmaster included), a crashed node has no process left, a partitioned node exchanges no
packet with any other node while its processes keep running; `start` undoes each."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pglab.lab import Lab
from pglab.providers.local import LocalProvider
from pglab.topology import Node


@pytest.fixture
def replica(lab: Lab) -> Iterator[Node]:
    health = lab.wait_healthy(60)
    node = lab.node(health.streaming_replicas[0].name)
    try:
        yield node
    finally:
        lab.provider.start(node)
        lab.wait_healthy(90)


def _session(lab: Lab, node: Node) -> psycopg.Connection:
    """A session on the node's PostgreSQL (retried: Patroni may still be restarting it)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return psycopg.connect(host=lab.address(node.name), port=lab.topology.ports.postgres,
                                   dbname="postgres", autocommit=True, **lab.connect_kwargs())
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _query_blocks(conn: psycopg.Connection, seconds: float = 2.0) -> threading.Thread:
    """Start `SELECT 1` on ``conn`` in a thread; return the thread, still blocked after ``seconds``."""
    thread = threading.Thread(target=lambda: conn.execute("SELECT 1"), daemon=True)
    thread.start()
    thread.join(seconds)
    return thread


def _reachable(host: str, port: int, timeout: float = 2.0) -> bool:
    with socket.socket() as s:
        s.settimeout(timeout)
        return s.connect_ex((host, port)) == 0


def _not_running(pid: int) -> bool:
    """Stopped by a signal (T) or parked by the cgroup freezer (waiting in get_signal)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return True  # gone
    return state == "T" or wchan in ("get_signal", "do_freezer_trap", "do_signal_stop")


def test_hang_freezes_every_process_of_the_node_and_start_thaws_them(lab: Lab, replica: Node) -> None:
    provider = lab.provider
    assert isinstance(provider, LocalProvider)
    pids = provider.node_pids(replica)
    backends = [p for p in pids if b"postgres:" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert backends, "the node should run PostgreSQL backends"
    conn = _session(lab, replica)  # a session opened before the hang, like a connected client's
    provider.hang(replica)
    still = provider.node_pids(replica)
    running = [p for p in still if not _not_running(p)]
    assert not running, f"processes of {replica.name} still running after hang: {running}"
    assert set(backends) <= set(still), "backends are part of the node and frozen with it"
    blocked = _query_blocks(conn)
    assert blocked.is_alive(), "a session opened before the hang still answered"
    assert provider.services(replica) and set(provider.services(replica).values()) == {"FROZEN"}
    provider.start(replica)
    blocked.join(10)
    assert not blocked.is_alive(), "the session did not resume after start"
    assert all(not _not_running(p) or not Path(f"/proc/{p}").exists() for p in provider.node_pids(replica))
    conn.close()


def test_crash_leaves_no_process_of_the_node(lab: Lab, replica: Node) -> None:
    provider = lab.provider
    assert isinstance(provider, LocalProvider)
    before = provider.node_pids(replica)
    assert len(before) > 3
    provider.crash(replica)
    assert provider.node_pids(replica) == []
    alive = [p for p in before if Path(f"/proc/{p}").exists()
             and Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"]
    assert not alive, f"processes of {replica.name} survived the crash: {alive}"
    provider.start(replica)
    lab.wait_healthy(90)


def test_partition_cuts_every_packet_between_the_node_and_the_others(lab: Lab, replica: Node) -> None:
    provider = lab.provider
    assert isinstance(provider, LocalProvider)
    cgroup = provider.cgroup(replica)
    if cgroup is None:
        pytest.skip("partitions need root and cgroup v2")
    ports = lab.topology.ports
    here = lab.address(replica.name)
    dcs = lab.address(lab.topology.with_role("dcs")[0].name)
    conn = _session(lab, replica)
    pids = provider.node_pids(replica)
    provider.partition(replica)
    # From outside the node: no new connection, and an open session hears nothing.
    assert not _reachable(here, ports.patroni)
    assert not _reachable(here, ports.postgres)
    assert _query_blocks(conn).is_alive(), "a session opened before the partition still answered"
    # The node's processes keep running ...
    assert set(pids) <= set(provider.node_pids(replica))
    assert all(not _not_running(p) for p in pids)
    # ... and from inside the node (a process in its cgroup): its own address answers, the DCS not.
    probe = ("import socket, sys\n"
             f"open('{cgroup.path}/cgroup.procs', 'w').write(str(__import__('os').getpid()))\n"
             "def ok(h, p):\n"
             "    with socket.socket() as s:\n"
             "        s.settimeout(2)\n"
             "        return s.connect_ex((h, p)) == 0\n"
             f"print(ok('{here}', {ports.postgres}), ok('{dcs}', {ports.etcd}))\n")
    inside = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert inside.split() == ["True", "False"], inside
    provider.start(replica)
    assert _reachable(here, ports.postgres)
    assert not provider.is_partitioned(replica)
