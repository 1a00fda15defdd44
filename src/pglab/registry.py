"""Registries by name (stacks, components): each entry a module that declares one object, imported
only when asked for, and checked to be what its registry says it is."""

from __future__ import annotations

import importlib
from typing import TypeVar

T = TypeVar("T")


def declared(module: str, attribute: str, kind: type[T], name: str) -> T:
    """``module.attribute``, which must be a ``kind`` called ``name``."""
    found = getattr(importlib.import_module(module), attribute, None)
    if not isinstance(found, kind) or getattr(found, "name", None) != name:
        raise TypeError(f"{module}.{attribute} must be the {kind.__name__} called {name!r}")
    return found
