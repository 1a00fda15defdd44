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

from pglab import waiting
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


# What a node runs for as long as it runs: its services and the postmaster (matched in their
# command lines), and the postmaster's children that live as long as it does (on a primary or a
# replica). Backends, walsenders, a walreceiver, autovacuum workers and the helpers Patroni runs
# (pg_controldata, pg_ctl ...) come and go by themselves: a test that compared them before and
# after a fault would race the lab.
LONG_LIVED_PROGRAMS = (b"/patroni ", b"/etcd ", b"/consul ", b"/haproxy ", b"/bin/postgres ", b"pg_autoctl run")
LONG_LIVED_CHILDREN = (b"checkpointer", b"background writer", b"walwriter", b"autovacuum launcher",
                       b"logical replication launcher")


def _cmdline(pid: int) -> bytes | None:
    """The process's command line (arguments joined by spaces), None when it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").strip() + b" "
    except OSError:
        return None


def _long_lived(pids: list[int]) -> dict[int, bytes]:
    """The processes among ``pids`` that must survive as long as the node runs (see
    LONG_LIVED_PROGRAMS); pid -> command line."""
    kept = {}
    for pid in pids:
        cmdline = _cmdline(pid)
        if cmdline is None:
            continue
        if cmdline.startswith(b"postgres: "):
            if cmdline.rstrip().endswith(LONG_LIVED_CHILDREN) or b": startup " in cmdline:
                kept[pid] = cmdline
        elif any(program in cmdline for program in LONG_LIVED_PROGRAMS):
            kept[pid] = cmdline
    return kept


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
    conn = _session(lab, replica)  # a session opened before the hang, like a connected client's
    # Its backend is frozen too: a backend of the node's PostgreSQL like the ones clients get.
    backend = conn.info.backend_pid
    long_lived = _long_lived(provider.node_pids(replica))
    assert any(c.rstrip().endswith(b"checkpointer") for c in long_lived.values()), long_lived
    assert any(b"/patroni " in c for c in long_lived.values()), long_lived
    provider.hang(replica)
    still = provider.node_pids(replica)
    running = [p for p in still if not _not_running(p)]
    assert not running, f"processes of {replica.name} still running after hang: {running}"
    assert {backend, *long_lived} <= set(still), "the postmaster's children are part of the node, frozen with it"
    blocked = _query_blocks(conn)
    assert blocked.is_alive(), "a session opened before the hang still answered"
    assert provider.services(replica) and set(provider.services(replica).values()) == {"FROZEN"}
    provider.start(replica)
    blocked.join(10)
    assert not blocked.is_alive(), "the session did not resume after start"
    # A thawed process shows the freezer's wait until it is next scheduled: wait, never sleep.
    thawed, detail, _ = waiting.poll(lambda: (not (left := [p for p in provider.node_pids(replica)
                                                             if _not_running(p) and Path(f"/proc/{p}").exists()]),
                                              f"still stopped: {left}"), 10, 0.1)
    assert thawed, detail
    conn.close()


def _dead(pid: int) -> bool:
    """Gone, or a zombie waiting for its parent (read once: it may vanish between two reads)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except OSError:
        return True


def test_crash_leaves_no_process_of_the_node(lab: Lab, replica: Node) -> None:
    provider = lab.provider
    assert isinstance(provider, LocalProvider)
    before = provider.node_pids(replica)
    assert len(before) > 3
    provider.crash(replica)
    assert provider.node_pids(replica) == []
    alive = [p for p in before if not _dead(p)]
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
    long_lived = _long_lived(provider.node_pids(replica))
    provider.partition(replica)
    # From outside the node: no new connection, and an open session hears nothing.
    assert not _reachable(here, ports.patroni)
    assert not _reachable(here, ports.postgres)
    assert _query_blocks(conn).is_alive(), "a session opened before the partition still answered"
    # The node's processes keep running (those that live as long as the node: see _long_lived) ...
    gone = {p: c for p, c in long_lived.items() if p not in provider.node_pids(replica) or _not_running(p)}
    assert not gone, f"processes of {replica.name} stopped by the partition: {gone}"
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
