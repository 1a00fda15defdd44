"""What a lab needs, gathered from every registered stack and component: the accounts whose
passwords the lab generates, and what this machine must have to run the local provider's nodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pglab import paths, stacks
from pglab.components import components
from pglab.prerequisites import Prerequisite, has_binary, user_exists
from pglab.secrets import SUPERUSER, Account
from pglab.topology import Topology


# Accounts ----------------------------------------------------------------------------------------
def accounts() -> tuple[Account, ...]:
    """Every account a lab has: the superuser every stack shares, then each stack's and component's."""
    declared = [a for spec in stacks.specs() for a in spec.accounts] + [a for c in components() for a in c.accounts]
    return tuple(dict.fromkeys([SUPERUSER, *declared]))


def secret_variables() -> dict[str, str]:
    """Inventory variable -> what it protects. Ansible reads the file as group_vars/all/secrets.yml."""
    return {a.password_variable: f"{a.what} ({a.user})" for a in accounts()}


def user_variables() -> dict[str, str]:
    """The roles' variables naming each account's user."""
    return {a.user_variable: a.user for a in accounts()}


# This machine, for the local provider ------------------------------------------------------------
def on_this_machine(topology: Topology) -> list[Prerequisite]:
    bin_dir = Path(paths.postgres_bin_dir(topology.postgres.version))
    needed = [
        Prerequisite(str(bin_dir / "postgres"), f"postgresql-{topology.postgres.version}",
                     (bin_dir / "postgres").exists()),
        *stacks.spec(topology.stack).prerequisites(topology),
    ]
    needed += [p for component in components() for p in component.prerequisites(topology)]
    if paths.is_root():
        needed.append(Prerequisite("user postgres", "postgresql-common", user_exists("postgres")))
        # `stop --partition` and `drill partition` cut a node off with nftables (root only).
        needed.append(Prerequisite("nft", "nftables", has_binary("nft", "/usr/sbin/nft")))
    return needed


def prepare_roles(topology: Topology) -> list[str]:
    """The roles whose package tasks playbooks/prepare.yml runs on this machine."""
    roles = ["postgresql", *stacks.spec(topology.stack).package_roles(topology),
             *(role for component in components() for role in component.package_roles(topology))]
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
