"""`pglab verify`: a pytest + testinfra suite shipped inside the package, run against a live lab.

One file per check, run in order (services, replication, routing, switchover, manual failover,
node loss, configuration change, final). A file that serves one stack only is listed in that
stack's declaration (``StackSpec.checks``); the suite keeps the files of the lab's stack. ``conftest.py`` adds
``--pglab-file`` and the session fixtures; the helpers below are shared by the checks. Services'
states come from the provider's interface (``Provider.services``), sockets from testinfra's
ansible backend on the lab's own inventory, the cluster (leader, replicas) from the stack client
and SQL, and changes through :mod:`pglab.operations`: never through a provider's internals.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from pglab import operations, sql, waiting
from pglab.lab import Lab
from pglab.stacks.base import Member, leader_of, streaming_replicas_of

CHECKS_DIR = Path(__file__).resolve().parent

DATABASE = "pglab_verify"
TABLE = "verify_rows"
ROWS = 100
LAG_LIMIT_MB = 16
REPLICATION_TIMEOUT = 10.0


# Where clients go ----------------------------------------------------------------------------

# The topology's dcs -> (its client port's name in ports:, the path that tells whether it is healthy).
DCS_HEALTH_PATHS: dict[str, tuple[str, str]] = {"etcd": ("etcd", "/health"), "consul": ("consul", "/v1/status/leader")}


def dcs_health_url(lab: Lab, dcs_node: str, scheme: str) -> str:
    """The URL at which the lab's DCS on ``dcs_node`` answers whether it is healthy."""
    port_name, path = DCS_HEALTH_PATHS[lab.topology.dcs]
    return f"{scheme}://{lab.address(dcs_node)}:{getattr(lab.topology.ports, port_name)}{path}"


def node_endpoint(lab: Lab, node: str) -> tuple[str, int]:
    return lab.address(node), lab.topology.ports.postgres


# The cluster ---------------------------------------------------------------------------------

def members(lab: Lab) -> dict[str, Member]:
    return {m.name: m for m in lab.stack().members()}


def describe(members_by_name: dict[str, Member]) -> str:
    """``pg1 leader running TL 2, pg2 replica streaming TL 2, pg3 stopped``: for messages."""
    parts = []
    for m in members_by_name.values():
        words = [m.name, m.role, m.state or "unknown"]
        if m.timeline is not None:
            words.append(f"TL {m.timeline}")
        parts.append(" ".join(w for w in words if w))
    return ", ".join(parts)


def leader(lab: Lab) -> str:
    """The one running leader, as the stack names it; fails the check (naming every member's
    state) when there is none, or more than one member claims to lead."""
    listed = lab.stack().members()
    current = leader_of(listed)
    claiming = [m for m in listed if m.role == "leader" and m.name != current]
    by_name = {m.name: m for m in listed}
    assert current is not None and not claiming, (
        f"expected exactly one running leader, found {'none' if current is None else 'more'}: {describe(by_name)}")
    return current


def streaming_replicas(lab: Lab) -> list[str]:
    return sorted(m.name for m in streaming_replicas_of(lab.stack().members()))


def a_streaming_replica(lab: Lab) -> str:
    replicas = streaming_replicas(lab)
    assert replicas, f"no streaming replica to work with: {describe(members(lab))}"
    return replicas[0]


def a_leader_to_stop(lab: Lab, password: str) -> str:
    """The leader, first moved by a switchover off a node that also routes the clients (HAProxy)
    or runs the pg_auto_failover monitor, when a replica lives elsewhere: in a compact lab, stopping
    that node would take the clients' way in away with the database, and no failover brings that back."""
    current = leader(lab)
    shared = {n.name for n in lab.topology.nodes if {"haproxy", "monitor"} & set(n.roles)}
    elsewhere = [r for r in streaming_replicas(lab) if r not in shared]
    if current not in shared or not elsewhere:
        return current
    operations.switchover(lab, to=elsewhere[0])
    ok, detail = wait_streaming(lab, current, elsewhere[0], password)
    assert ok, f"after the switchover that moved the leader off {current}: {current} {detail}"
    return elsewhere[0]


def node_at(lab: Lab, address: str) -> str:
    """The PostgreSQL node with this address (or the address itself when none has it)."""
    return next((n.name for n in lab.topology.with_role("postgres") if lab.address(n.name) == address), address)


def setting(lab: Lab, node: str, password: str, name: str) -> str:
    host, port = node_endpoint(lab, node)
    return str(sql.query(host, port, password, f"SHOW {name}", tls=lab.libpq_tls())[0][0])


# The verify table ----------------------------------------------------------------------------

def create_rows(lab: Lab, password: str) -> None:
    """(Re)create the pglab_verify database with ROWS rows, through the writes endpoint."""
    host, port = lab.writes_endpoint()
    with sql.connect(host, port, password, tls=lab.libpq_tls()) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DATABASE}")
    with sql.connect(host, port, password, dbname=DATABASE, tls=lab.libpq_tls()) as conn:
        conn.execute(f"CREATE TABLE {TABLE} (id bigserial PRIMARY KEY, note text NOT NULL, "
                     "at timestamptz NOT NULL DEFAULT now())")
        conn.execute(f"INSERT INTO {TABLE} (note) SELECT 'row ' || i FROM generate_series(1, %s) AS i", (ROWS,))


def ensure_rows(lab: Lab, password: str) -> int:
    """The rows check 2 writes, created when a check runs alone (``-k switchover``); their count."""
    host, port = lab.writes_endpoint()
    exists = sql.query(host, port, password, "SELECT count(*) FROM pg_database WHERE datname = %s", (DATABASE,),
                       tls=lab.libpq_tls())
    if not exists[0][0]:
        create_rows(lab, password)
    return count_rows(lab, host, port, password)


def count_rows(lab: Lab, host: str, port: int, password: str, where: str = "", params: Any = None) -> int:
    return int(sql.query(host, port, password, f"SELECT count(*) FROM {TABLE} {where}", params, dbname=DATABASE,
                         tls=lab.libpq_tls())[0][0])


def insert_row(lab: Lab, password: str, note: str) -> tuple[int, str]:
    """Insert one row through the writes endpoint; its id and the node that took it."""
    host, port = lab.writes_endpoint()
    row = sql.query(host, port, password,
                    f"INSERT INTO {TABLE} (note) VALUES (%s) RETURNING id, host(inet_server_addr())", (note,),
                    dbname=DATABASE, tls=lab.libpq_tls())[0]
    return row[0], node_at(lab, row[1])


def drop_rows(lab: Lab, password: str) -> None:
    host, port = lab.writes_endpoint()
    with sql.connect(host, port, password, tls=lab.libpq_tls()) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


def wait_for(check: Callable[[], tuple[bool, str]], timeout: float, interval: float = 0.25) -> tuple[bool, str]:
    """Poll ``check`` until it holds or ``timeout`` passes; never raises for a database or
    network error (they become the detail), so a check can say what it saw last."""
    done, detail, _elapsed = waiting.poll(check, timeout, interval, transient=(OSError, psycopg.Error))
    return done, detail


def rows_on(lab: Lab, node: str, password: str, minimum: int, timeout: float = REPLICATION_TIMEOUT,
            where: str = "", params: Any = None) -> tuple[bool, str]:
    """Whether ``node`` shows at least ``minimum`` matching rows within ``timeout``."""
    host, port = node_endpoint(lab, node)

    def check() -> tuple[bool, str]:
        n = count_rows(lab, host, port, password, where, params)
        return n >= minimum, f"{n} row(s)"

    return wait_for(check, timeout)


# Machines: sockets through testinfra, services through the provider ----------------------------

def infra(lab: Lab, node: str) -> Any:
    """A testinfra host for ``node`` through the ansible backend on the lab's own inventory: it
    picks the local backend from ``ansible_connection=local`` and SSH on VMs."""
    import testinfra

    return testinfra.get_host(f"ansible://{node}?ansible_inventory={lab.inventory}")


def listens(lab: Lab, node: str, port: int) -> bool:
    """Whether something on ``node`` listens on the node's lab address and ``port``."""
    return bool(infra(lab, node).socket(f"tcp://{lab.address(node)}:{port}").is_listening)


def node_variable(lab: Lab, node: str, name: str) -> str:
    """An inventory variable of ``node`` as Ansible templates it for the node (paths under the
    node's root on the local provider, the usual ones on VMs)."""
    answer = infra(lab, node).ansible("debug", f"msg={{{{ {name} }}}}", check=False)
    return str(answer["msg"])


def service_state(lab: Lab, node: str, service: str) -> tuple[bool, str]:
    """Whether the node's service runs, as the lab's provider sees it (supervisor for the local
    provider, systemd on VMs); with a one-line detail."""
    states = lab.provider.services(lab.node(node))
    state = states.get(service)
    if state == "RUNNING":
        return True, f"{service} is RUNNING"
    known = ", ".join(f"{name} {value}" for name, value in states.items()) or "none"
    return False, f"{service} is {state or 'not defined'} (the node's services: {known})"


WALSENDERS = """
SELECT application_name, state, pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint
FROM pg_stat_replication ORDER BY state = 'streaming' DESC
"""


def walsenders(lab: Lab, leader_name: str, password: str) -> dict[str, list[tuple[str, int | None]]]:
    """The leader's walsenders by application name, as (state, replay lag in bytes), a streaming
    one first: a replica can have more than one, as a short-lived replication connection (a
    keeper's IDENTIFY_SYSTEM, Patroni reading a timeline) shows as "startup" beside the stream."""
    host, port = node_endpoint(lab, leader_name)
    senders: dict[str, list[tuple[str, int | None]]] = {}
    for name, state, lag in sql.query(host, port, password, WALSENDERS, tls=lab.libpq_tls()):
        senders.setdefault(name, []).append((state, lag))
    return senders


def streaming_state(lab: Lab, replica: str, leader_name: str, password: str) -> tuple[bool, str]:
    """Whether ``replica`` streams from ``leader_name`` (Patroni's view and the leader's
    pg_stat_replication agree), with what was seen otherwise."""
    member = members(lab).get(replica)
    if member is None or member.state != "streaming":
        return False, f"{replica} is not streaming (state: {member.state if member else 'absent'})"
    senders = walsenders(lab, leader_name, password).get(lab.stack().application_name(replica))
    if not senders:
        return False, f"{replica} is missing from pg_stat_replication on the leader {leader_name}"
    if senders[0][0] != "streaming":
        states = ", ".join(str(state) for state, _ in senders)
        return False, f"{replica} is not streaming (walsender state: {states}) from the leader {leader_name}"
    return True, f"{replica} streams from {leader_name}"


def wait_streaming(lab: Lab, replica: str, leader_name: str, password: str,
                   timeout: float = REPLICATION_TIMEOUT) -> tuple[bool, str]:
    return wait_for(lambda: streaming_state(lab, replica, leader_name, password), timeout)


def writes_reach(lab: Lab, password: str) -> str:
    """The node the writes endpoint reaches, failing the check if it is in recovery or silent."""
    host, port = lab.writes_endpoint()
    try:
        in_recovery, server = sql.server_state(host, port, password, lab.libpq_tls())
    except (OSError, psycopg.Error) as exc:
        raise AssertionError(f"the writes port {host}:{port} does not answer: {sql.first_line(exc)}") from None
    assert not in_recovery, f"the writes port {host}:{port} reaches {node_at(lab, server)}, which is in recovery"
    return node_at(lab, server)


def change_leader(lab: Lab, password: str, operation: Callable[..., Any]) -> dict[str, Any]:
    """Move the leader to a streaming replica with ``operation`` (switchover or failover) and
    remember what the checks compare afterwards."""
    rows = ensure_rows(lab, password)
    old = leader(lab)
    old_timeline = members(lab)[old].timeline
    target = a_streaming_replica(lab)
    result = operation(lab, to=target)
    return {"old": old, "target": target, "old_timeline": old_timeline, "rows": rows, "result": result}


# The virtual IP ------------------------------------------------------------------------------

# After `up` or a leader change: the primary's track script passes within a second, then VRRP
# waits about three adverts before the node takes the address.
VIP_GRACE = 15.0


def vip_serves(lab: Lab, password: str, pooled: bool) -> tuple[bool, str]:
    """Whether a session at the virtual IP (PgBouncer's port or PostgreSQL's) reaches a primary,
    and the node it reached, by the first of its listen_addresses (the node's own address), or why not."""
    host, port = lab.vip_endpoint(pooled)
    try:
        rows = sql.query(host, port, password,
                         "SELECT pg_is_in_recovery(), split_part(current_setting('listen_addresses'), ',', 1)",
                         tls=lab.libpq_tls())
    except psycopg.Error as exc:
        return False, f"{host}:{port} does not answer: {sql.first_line(exc)}"
    in_recovery, address = rows[0]
    node = node_at(lab, address)
    return (not in_recovery), node if not in_recovery else f"{host}:{port} reaches {node}, a replica"
