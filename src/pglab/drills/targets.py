"""Which node a drill's ``--node`` names: a node of the lab, or a role the cluster gives one now
(``leader``, ``sync-standby``, ``replica``)."""

from __future__ import annotations

import psycopg

from pglab import sql
from pglab.errors import InputError, PglabError
from pglab.lab import Lab

ROLES = ("leader", "sync-standby", "replica")


def check(lab: Lab, node: str | None) -> None:
    """Refuse (InputError) a name that is neither a node of the lab nor a role."""
    if node is not None and node not in ROLES:
        lab.node(node)  # an InputError naming the lab's nodes


def resolve(lab: Lab, node: str | None, leader: str | None) -> str | None:
    """The node ``node`` names now (None or ``leader``: the leader)."""
    if node is None or node == "leader":
        return leader
    if node not in ROLES:
        return node
    streaming = [m for m in lab.stack().health().members if m.name != leader and m.state == "streaming"]
    synchronous = [m.name for m in streaming if "sync" in m.role or "quorum" in m.role]
    if node == "sync-standby":
        if not synchronous:  # a stack whose members do not say (pg_auto_failover): the leader does
            standbys = synchronous_standbys(lab, leader)
            synchronous = [m.name for m in streaming if m.name in standbys]
        if not synchronous:
            raise InputError("no synchronous standby streams now: name a node, or turn synchronous replication on")
        return synchronous[0]
    chosen = [m.name for m in streaming if m.name not in synchronous] or [m.name for m in streaming]
    if not chosen:
        raise InputError("no replica streams now: name a node with --node")
    return chosen[0]


def synchronous_standbys(lab: Lab, leader: str | None) -> set[str]:
    """The members the leader's PostgreSQL replicates to synchronously (sync or quorum in its
    pg_stat_replication), by member name, whatever the stack calls them."""
    if leader is None:
        return set()
    stack = lab.stack()
    try:
        rows = sql.query(lab.address(leader), lab.topology.ports.postgres, lab.superuser_password(),
                         "SELECT application_name FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum')",
                         tls=lab.libpq_tls())
    except (OSError, psycopg.Error) as exc:
        raise PglabError(f"the leader {leader} does not say which standbys are synchronous: "
                         f"{sql.first_line(exc)}") from None
    names = {row[0] for row in rows}
    return {m.name for m in stack.members() if stack.application_name(m.name) in names}
