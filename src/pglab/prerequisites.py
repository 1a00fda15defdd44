"""What the lab's components need on a machine that runs them, and which package brings each.

The local provider's nodes run here, so pglab checks (and, as root, installs) these before `up`;
on VMs and servers each role installs its own packages instead. What a stack needs comes from
its declaration (:class:`pglab.stacks.StackSpec`).
"""

from __future__ import annotations

import pwd
import shutil
from pathlib import Path
from typing import Any

from pglab import paths, stacks
from pglab.components import pgbackrest
from pglab.providers.base import Prerequisite
from pglab.topology import Topology


def has_binary(name: str, *fallbacks: str) -> bool:
    """Whether ``name`` is on the PATH (or at one of ``fallbacks``)."""
    return shutil.which(name) is not None or any(Path(f).exists() for f in fallbacks)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def on_this_machine(topology: Topology) -> list[Prerequisite]:
    bin_dir = Path(paths.postgres_bin_dir(topology.postgres.version))
    needed = [
        Prerequisite(str(bin_dir / "postgres"), f"postgresql-{topology.postgres.version}",
                     (bin_dir / "postgres").exists()),
        *stacks.spec(topology.stack).prerequisites(topology),
    ]
    if pgbackrest.enabled(topology):
        needed.append(Prerequisite("pgbackrest", "pgbackrest", has_binary("pgbackrest", pgbackrest.BINARY)))
    if paths.is_root():
        needed.append(Prerequisite("user postgres", "postgresql-common", _user_exists("postgres")))
        # `stop --partition` and `drill partition` cut a node off with nftables (root only).
        needed.append(Prerequisite("nft", "nftables", has_binary("nft", "/usr/sbin/nft")))
    return needed


def prepare_roles(topology: Topology) -> list[str]:
    """The roles whose package tasks playbooks/prepare.yml runs on this machine."""
    roles = ["postgresql", *stacks.spec(topology.stack).package_roles(topology),
             *([pgbackrest.ROLE] if pgbackrest.enabled(topology) else [])]
    if paths.is_root():
        roles.append("pglab")  # nftables, for network partitions
    return roles


def machine_variables(topology: Topology) -> dict[str, Any]:
    """Inventory variables for components that run on this machine (every stack's, so one
    inventory serves whichever plays run)."""
    variables: dict[str, Any] = {}
    for spec in stacks.specs():
        variables.update(spec.machine_variables())
    return {**variables, "pglab_prepare_roles": prepare_roles(topology)}
