"""`--node` of the fault kinds: a node's name, or a role the cluster gives one right now (``leader``,
``sync-standby``, ``replica``), resolved when the drill starts. Synchronous standbys are the ones
the leader's PostgreSQL reports so (pg_stat_replication), whatever the stack."""

from __future__ import annotations

import psycopg

from pglab import sql
from pglab.errors import InputError, PglabError
from pglab.lab import Lab

ROLES = ("leader", "sync-standby", "replica")


def check(lab: Lab, wanted: str | None) -> None:
    """An InputError for a ``--node`` that is neither a role nor one of the lab's nodes."""
    if wanted is not None and wanted not in ROLES:
        lab.node(wanted)


def resolve(lab: Lab, wanted: str | None, leader: str | None, default: str = "leader") -> str | None:
    """The node ``wanted`` names now (``default`` when it is None), given the cluster's leader."""
    role = wanted or default
    if role not in ROLES:
        return role
    if role == "leader":
        return leader
    streaming = [m.name for m in lab.stack().members() if m.name != leader and m.state == "streaming"]
    sync = synchronous_standbys(lab, leader)
    picked = [name for name in streaming if name in sync] if role == "sync-standby" else (
        [name for name in streaming if name not in sync] or streaming)
    if not picked:
        raise InputError(f"the cluster has no {role.replace('-', ' ')} right now"
                         + (" (is synchronous replication on?)" if role == "sync-standby" else ""))
    return picked[0]


def synchronous_standbys(lab: Lab, leader: str | None) -> set[str]:
    """The members the leader replicates to synchronously (sync or quorum), by member name."""
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
