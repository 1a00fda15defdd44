"""What the lab's components need on a machine that runs them, and which package brings each.

The local provider's nodes run here, so pglab checks (and, as root, installs) these before `up`;
on VMs and servers each role installs its own packages instead.
"""

from __future__ import annotations

import pwd
import shutil
from pathlib import Path

from pglab import paths
from pglab.providers.base import Prerequisite
from pglab.topology import Topology

VENV_PACKAGE = "patroni (PyPI, in a venv: python3-venv)"


def _binary(name: str, *fallbacks: str) -> bool:
    return shutil.which(name) is not None or any(Path(f).exists() for f in fallbacks)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def on_this_machine(topology: Topology) -> list[Prerequisite]:
    bin_dir = Path(f"/usr/lib/postgresql/{topology.postgres.version}/bin")
    venv = paths.services_venv()
    needed = [
        Prerequisite(str(bin_dir / "postgres"), f"postgresql-{topology.postgres.version}",
                     (bin_dir / "postgres").exists()),
        Prerequisite(f"{venv}/bin/patroni", VENV_PACKAGE, (venv / "bin" / "patroni").exists()),
    ]
    if topology.with_role("dcs"):
        needed.append(Prerequisite("etcd", "etcd-server", _binary("etcd")))
    if topology.with_role("haproxy"):
        needed.append(Prerequisite("haproxy", "haproxy", _binary("haproxy", "/usr/sbin/haproxy")))
    if paths.is_root():
        needed.append(Prerequisite("user postgres", "postgresql-common", _user_exists("postgres")))
        # `stop --partition` and `drill partition` cut a node off with nftables (root only).
        needed.append(Prerequisite("nft", "nftables", _binary("nft", "/usr/sbin/nft")))
    return needed


def prepare_roles(topology: Topology) -> list[str]:
    """The roles whose package tasks playbooks/prepare.yml runs on this machine."""
    roles = ["etcd"] if topology.with_role("dcs") else []
    roles += ["postgresql", "patroni"]
    if paths.is_root():
        roles.append("pglab")  # nftables, for network partitions
    return roles + (["haproxy"] if topology.with_role("haproxy") else [])


def machine_variables(topology: Topology) -> dict[str, object]:
    """Inventory variables for components that run on this machine."""
    return {"patroni_venv": str(paths.services_venv()), "pglab_prepare_roles": prepare_roles(topology)}
