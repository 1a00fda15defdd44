"""HA stacks by name: the topology's ``stack:`` picks one.

Each stack module declares everything that is the stack's in one :class:`StackSpec` (its
``SPEC``): its roles, its topology section, its default nodes, packages, services, ports,
inventory variables, its client (:class:`Stack`) and its own checks. Registering a stack is one
line below; everyone else loops over :func:`specs`.
"""

from __future__ import annotations

import importlib

from pglab.stacks.base import DefaultNode, Stack, StackSite, StackSpec

__all__ = ["STACKS", "DefaultNode", "Stack", "StackSite", "StackSpec", "default_name", "roles", "spec", "specs",
           "stack_class"]

# The topology's stack name -> the module whose SPEC declares it (imported only when used). The
# first one is the default.
STACKS = {
    "patroni": "pglab.stacks.patroni",
    "pg_auto_failover": "pglab.stacks.pgaf",
}


def spec(name: str) -> StackSpec:
    """The declaration of the stack called ``name`` (the topology's ``stack:``)."""
    found = getattr(importlib.import_module(STACKS[name]), "SPEC", None)
    if not isinstance(found, StackSpec) or found.name != name:
        raise TypeError(f"{STACKS[name]}.SPEC must be the StackSpec of stack {name!r}")
    return found


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
