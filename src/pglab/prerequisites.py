"""What a machine needs to run a lab's components, and which package brings each: the value a
stack or provider declares, and the small probes that tell whether it is there.

The local provider's nodes run here, so pglab checks (and, as root, installs) these before `up`;
on VMs and servers each role installs its own packages instead. :mod:`pglab.catalog` gathers
what the registered stacks need.
"""

from __future__ import annotations

import pwd
import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Prerequisite:
    """Something a node on this machine needs, and the package that brings it."""

    what: str
    package: str
    present: bool
    # Whether a user without root can install it (Patroni's venv in their home); apt needs root.
    user_installable: bool = False


def has_binary(name: str, *fallbacks: str) -> bool:
    """Whether ``name`` is on the PATH (or at one of ``fallbacks``)."""
    return shutil.which(name) is not None or any(Path(f).exists() for f in fallbacks)


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
