"""Per-lab secrets: generated once, stored 0600, reused by every later run."""

from __future__ import annotations

import os
import secrets as _random
from pathlib import Path

import yaml

# Inventory variable -> what it protects. Ansible reads the file as group_vars/all/secrets.yml.
SECRET_VARIABLES = {
    "patroni_superuser_password": "PostgreSQL superuser (postgres)",
    "patroni_replication_password": "replication user (replicator)",
    "patroni_rewind_password": "pg_rewind user (rewinder)",
    "patroni_restapi_password": "Patroni REST API (patroni)",
    "haproxy_stats_password": "HAProxy stats page (admin)",
    "pg_auto_failover_monitor_password": "pg_auto_failover monitor (autoctl_node)",
    "pg_auto_failover_replication_password": "pg_auto_failover replication user (pgautofailover_replicator)",
}


def _new_password() -> str:
    return _random.token_urlsafe(18)


def load_or_create(path: Path) -> dict[str, str]:
    """Read the lab's secrets, adding any that are missing, and keep the file mode 0600."""
    current: dict[str, str] = {}
    if path.exists():
        current = yaml.safe_load(path.read_text()) or {}
    wanted = {name: str(current.get(name) or _new_password()) for name in SECRET_VARIABLES}
    if wanted != current:
        write_private(path, "# pglab: this lab's passwords. Keep this file private.\n"
                      + yaml.safe_dump(wanted, sort_keys=True))
    os.chmod(path, 0o600)
    return wanted


def write_private(path: Path, text: str) -> None:
    """Write a file that is mode 0600 from its first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(path, 0o600)
