"""HA stack clients: what pglab asks of a running cluster (members, health, switchover ...).

One client per stack, looked up by the topology's ``stack:`` (:func:`stack_class`):
:mod:`pglab.stacks.patroni` (Patroni's REST API, HAProxy) and :mod:`pglab.stacks.pgaf`
(the pg_auto_failover monitor).
"""

from __future__ import annotations

import importlib

from pglab.stacks.base import Stack, StackSite

__all__ = ["STACKS", "Stack", "StackSite", "stack_class"]

# The topology's stack name -> "module:class" of its client (imported only when used).
STACKS = {
    "patroni": "pglab.stacks.patroni:PatroniStack",
    "pg_auto_failover": "pglab.stacks.pgaf:PgAutoFailoverStack",
}


def stack_class(name: str) -> type[Stack]:
    """The client class of the stack called ``name`` (the topology's ``stack:``)."""
    module, _, cls = STACKS[name].partition(":")
    return getattr(importlib.import_module(module), cls)  # type: ignore[no-any-return]
