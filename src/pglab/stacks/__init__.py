"""HA stacks by name: the topology's ``stack:`` picks one.

Each stack module declares everything that is the stack's in one :class:`StackSpec` (its
``SPEC``): its roles, its topology section, its default nodes, packages, services, ports,
inventory variables, its client (:class:`Stack`) and its own checks. Registering a stack is one
line below; everyone else loops over :func:`specs`.
"""

from __future__ import annotations

from typing import Any

from pglab import registry
from pglab.components import components
from pglab.components.base import Rotation, TlsService
from pglab.stacks.base import DefaultNode, Stack, StackSite, StackSpec
from pglab.topology import Topology

__all__ = ["STACKS", "DefaultNode", "Stack", "StackSite", "StackSpec", "default_name", "roles",
           "slow_machine_variables", "spec", "specs", "stack_class", "tls_rotation", "tls_services"]

# The topology's stack name -> the module whose SPEC declares it (imported only when used). The
# first one is the default.
STACKS = {
    "patroni": "pglab.stacks.patroni",
    "pg_auto_failover": "pglab.stacks.pgaf",
}


def spec(name: str) -> StackSpec:
    """The declaration of the stack called ``name`` (the topology's ``stack:``)."""
    return registry.declared(STACKS[name], "SPEC", StackSpec, name)  # type: ignore[type-abstract]  # isinstance works on abstract classes


def specs() -> list[StackSpec]:
    """Every registered stack, in registration order."""
    return [spec(name) for name in STACKS]


def default_name() -> str:
    return next(iter(STACKS))


def stack_class(name: str) -> type[Stack]:
    """The client class of the stack called ``name``."""
    return spec(name).client()


def roles() -> list[str]:
    """Every node role a registered stack uses, in registration order."""
    return list(dict.fromkeys(role for s in specs() for role in s.roles))


def tls_services(topology: Topology) -> list[TlsService]:
    """Every service of the lab that serves its node's certificate: its stack's, then each
    enabled component's."""
    return [*spec(topology.stack).tls_services(topology),
            *(s for c in components() if c.enabled(topology) for s in c.tls_services(topology))]


def tls_rotation(topology: Topology) -> list[Rotation]:
    """How every running service of the lab takes up new certificates: its stack's, then each
    enabled component's."""
    return [*spec(topology.stack).tls_rotation(topology),
            *(r for c in components() if c.enabled(topology) for r in c.tls_rotation(topology))]


def slow_machine_variables() -> dict[str, Any]:
    """Every registered stack's and component's settings for machines far slower than the host
    (emulated VMs): each stack's section of the inventory is there in any lab."""
    variables: dict[str, Any] = {}
    for stack in specs():
        variables.update(stack.slow_machine_variables)
    for component in components():
        variables.update(component.slow_machine_variables)
    return variables
