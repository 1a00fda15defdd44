"""Where pglab's own files are (roles, playbooks, templates) and where a lab writes its own."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir() -> Path:
    """Roles, playbooks and templates: inside the wheel, or at the top of a source checkout."""
    bundled = _PACKAGE / "_data"
    if (bundled / "roles").is_dir():
        return bundled
    return _PACKAGE.parent.parent


def roles_dir() -> Path:
    return data_dir() / "roles"


def playbook(name: str) -> Path:
    return data_dir() / "playbooks" / name


def template(name: str) -> Path:
    return data_dir() / "templates" / name


def vagrantfile_template() -> Path:
    return data_dir() / "Vagrantfile.j2"


def postgres_bin_dir(version: int) -> str:
    """Where Debian installs PostgreSQL's programs (the postgresql role's postgresql_bin_dir)."""
    return f"/usr/lib/postgresql/{version}/bin"


def postgres_home(node_root: str) -> str:
    """The service user's home on a data node, below its root (the postgresql role's
    postgresql_home): pg_autoctl keeps its configuration and state there."""
    return f"{node_root}/var/lib/postgresql"


def postgres_data_dir(node_root: str, version: int) -> str:
    """A data node's PGDATA below its root (the postgresql role's postgresql_data_dir)."""
    return f"{postgres_home(node_root)}/{version}/main"


def node_tls_dir(node_root: str) -> str:
    """Where a node keeps its certificate, key and the lab's CA (the roles' pglab_tls_dir)."""
    return f"{node_root}/etc/pglab/tls"


def postgres_socket_dir(node_root: str) -> str:
    """A data node's Unix socket directory below its root (the postgresql role's
    postgresql_socket_dir)."""
    return f"{node_root}/run/postgresql"


def lab_dir(topology_file: Path, lab_name: str) -> Path:
    """``.pglab/<name>/`` beside the topology file."""
    return topology_file.resolve().parent / ".pglab" / lab_name


@dataclass(frozen=True)
class LabLayout:
    """The files of a lab directory (``.pglab/<name>/``): rendering writes them, the lab reads them.
    Providers add their own (the local provider's ``nodes`` link, the vagrant provider's
    Vagrantfile) under ``root``."""

    root: Path
    inventory: Path
    hosts: Path
    variables: Path  # the topology as the roles' variables
    secrets: Path  # the lab's generated passwords, mode 0600
    pgpass: Path  # a libpq password file for the superuser, mode 0600
    ansible: Path  # ansible-runner's private data directory: artifacts of the last runs
    drills: Path  # `pglab drill`'s JSON lines and timelines (unless --out)
    last_verify: Path  # the last `pglab verify` run, as its --json, for `pglab report`
    tls: Path  # the lab's CA and certificates (pglab.tls.certs), keys 0600
    restore_plan: Path  # a restore that stopped the cluster and has not ended: run again, it goes on

    @classmethod
    def at(cls, root: Path) -> LabLayout:
        inventory = root / "inventory"
        group_vars = inventory / "group_vars" / "all"
        return cls(root=root, inventory=inventory, hosts=inventory / "hosts.yml",
                   variables=group_vars / "pglab.yml", secrets=group_vars / "secrets.yml",
                   pgpass=root / "pgpass", ansible=root / "ansible", drills=root / "drills",
                   last_verify=root / "verify.json", tls=root / "tls",
                   restore_plan=root / "restore-plan.json")


def is_root() -> bool:
    return os.geteuid() == 0


def state_base() -> Path:
    """Where the local provider keeps nodes' data: readable by the postgres user when root
    (a lab under /root, mode 700, would not be), under the user's state directory otherwise."""
    if is_root():
        return Path("/var/lib/pglab")
    state_home = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state_home) / "pglab"


def runtime_dir(lab: Path, lab_name: str) -> Path:
    """One directory per lab, named so two labs with the same name never share it."""
    digest = hashlib.sha256(str(lab.resolve()).encode()).hexdigest()[:8]
    return state_base() / f"{lab_name}-{digest}"


def services_venv() -> Path:
    """Patroni's virtual environment for the local provider, shared by every lab on the machine."""
    if is_root():
        return Path("/opt/pglab/venv")
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "pglab" / "venv"
