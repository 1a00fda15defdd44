"""Components that serve every stack (HAProxy, the pgBackRest repository), by name.

Each component module declares what the rest of pglab needs to know of it in one
:class:`~pglab.components.base.Component` (its ``COMPONENT``): its services and ports, its TLS
services and how they take up new certificates, its role's variables, its checks. Registering a
component is one line below (beside its module and its Ansible role); everyone else loops over
:func:`components`.
"""

from __future__ import annotations

from pglab import registry
from pglab.components.base import Component

__all__ = ["COMPONENTS", "Component", "component", "components"]

# The component's name -> the module whose COMPONENT declares it (imported only when used).
COMPONENTS = {
    "haproxy": "pglab.components.haproxy",
    "pgbackrest": "pglab.components.pgbackrest",
    "pooler": "pglab.components.pooler",
    "vip": "pglab.components.vip",
}


def component(name: str) -> Component:
    """The declaration of the component called ``name``."""
    return registry.declared(COMPONENTS[name], "COMPONENT", Component, name)


def components() -> list[Component]:
    """Every registered component, in registration order."""
    return [component(name) for name in COMPONENTS]
