"""The ports a lab's node listens on, each with its owner: the node's roles', those its components
add, and its client entry points. A provider checks them before it makes anything (the local
provider on its loopback addresses, the hosts provider on the servers)."""

from __future__ import annotations

from pglab import stacks
from pglab.components import components
from pglab.topology import Node, Topology


def node_ports(topology: Topology, node: Node) -> dict[int, str]:
    """Port -> what listens on it on ``node`` (a role, a component, "client entry point"); a port
    shared by several owners is named after its first."""
    spec = stacks.spec(topology.stack)
    by_role = spec.role_ports(topology.ports)
    owners = {port: role for role in node.roles for port in by_role.get(role, [])}
    for component in components():
        for port in component.node_ports(topology, node):
            owners.setdefault(port, component.name)
    # Where clients connect beyond the roles' own ports: the router's direct listeners when the
    # pooler is on (5002 / 5003).
    for entry_node, port in spec.entry_points(topology):
        if entry_node.name == node.name:
            owners.setdefault(port, "client entry point")
    return owners
