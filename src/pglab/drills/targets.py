"""Which node a drill's ``--node`` names: a node of the lab, or a role the cluster gives one now
(``leader``, ``sync-standby``, ``replica``)."""

from __future__ import annotations

from pglab.errors import InputError
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
        if not synchronous:
            raise InputError("no synchronous standby streams now: name a node, or turn synchronous replication on")
        return synchronous[0]
    chosen = [m.name for m in streaming if m.name not in synchronous] or [m.name for m in streaming]
    if not chosen:
        raise InputError("no replica streams now: name a node with --node")
    return chosen[0]
