"""The virtual IP that follows the leader (the topology's ``vip:``): keepalived on every data node
holds the address on the primary's node, so clients reach the primary at one address, whichever
node leads: ``VIP:5432`` (PostgreSQL) and ``VIP:6432`` (PgBouncer, with the pooler on).

Each node's track script asks the node's own stack whether it is the primary (the stack declares
the question: :attr:`pglab.components.base.ComponentSite.primary_check`); nodes speak VRRP to each
other by unicast; all are BACKUP with one base priority, and the primary's node alone adds the
script's weight, so the script decides: the new primary's node takes the address from a demoted
leader's at once, and no two nodes fight over it. PostgreSQL and PgBouncer listen on the address on every
data node before it arrives (the kernel's ``ip_nonlocal_bind``), and its certificates name it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pglab.components.base import Component, ComponentSite
from pglab.topology import Node, Topology

NAME = "vip"
ROLE = "keepalived"
SERVICE = "keepalived"
# Debian 12's keepalived 2.2.7; curl for track scripts that ask an HTTPS API (Patroni's).
PACKAGES = ("keepalived", "curl")


def enabled(topology: Topology) -> bool:
    """Whether the lab has a virtual IP (and data nodes to hold it)."""
    return topology.vip is not None and bool(topology.with_role("postgres"))


def address(topology: Topology) -> str | None:
    """The virtual IP, or None when the lab has none."""
    return str(topology.vip.address) if topology.vip is not None else None


def runs_on(topology: Topology, node: Node) -> bool:
    return enabled(topology) and "postgres" in node.roles


def router_id(topology: Topology) -> int:
    """VRRP's virtual router id (1-255): the same on every node of a lab, and from the lab's name,
    so that two labs on one network rarely share one."""
    return int(hashlib.sha256(topology.name.encode()).hexdigest(), 16) % 255 + 1


def listen_addresses(topology: Topology) -> list[str]:
    """What data nodes' services listen on beside their own address: the virtual IP, if any."""
    found = address(topology)
    return [found] if found and enabled(topology) else []


class VipComponent(Component):
    name = NAME
    role = ROLE
    checks = ("test_03_vip", "test_04_switchover_vip")
    packages = PACKAGES

    def enabled(self, topology: Topology) -> bool:
        return enabled(topology)

    def services(self, topology: Topology, node: Node) -> list[str]:
        return [SERVICE] if runs_on(topology, node) else []

    def inventory_vars(self, topology: Topology, site: ComponentSite) -> dict[str, Any]:
        vip = topology.vip
        return {
            "keepalived_enabled": enabled(topology),
            "keepalived_address": address(topology) or "",
            "keepalived_interface": vip.interface if vip is not None else "",
            "keepalived_router_id": router_id(topology),
            "keepalived_primary_check": site.primary_check or "false",
            # PostgreSQL's and PgBouncer's roles add these to the addresses they listen on.
            "pglab_vip_listen_addresses": listen_addresses(topology),
        }


COMPONENT = VipComponent()
