"""Per-lab secrets: generated once, stored 0600, reused by every later run."""

from __future__ import annotations

import os
import secrets as _random
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Account:
    """A user the lab's services know, and the inventory variables that carry its name and its
    generated password to the roles."""

    user: str
    user_variable: str
    password_variable: str
    what: str


# The one place the lab's user names are chosen: rendering passes them to the roles, and pglab's
# own clients (psql, psycopg, Patroni's REST API, HAProxy's stats page) log in with them.
# The superuser is every stack's (Patroni's and pg_auto_failover's alike): its variables are the
# postgresql role's, named after no stack.
SUPERUSER = Account("postgres", "postgresql_superuser", "postgresql_superuser_password", "PostgreSQL superuser")
REPLICATION = Account("replicator", "patroni_replication_user", "patroni_replication_password", "replication user")
REWIND = Account("rewinder", "patroni_rewind_user", "patroni_rewind_password", "pg_rewind user")
RESTAPI = Account("patroni", "patroni_restapi_user", "patroni_restapi_password", "Patroni REST API")
HAPROXY_STATS = Account("admin", "haproxy_stats_user", "haproxy_stats_password", "HAProxy stats page")
# pg_auto_failover names these two itself: keepers and pglab reach the monitor as autoctl_node, and
# standbys replicate (and rewind) as pgautofailover_replicator.
PGAF_MONITOR = Account("autoctl_node", "pg_auto_failover_monitor_user", "pg_auto_failover_monitor_password",
                       "pg_auto_failover monitor")
PGAF_REPLICATION = Account("pgautofailover_replicator", "pg_auto_failover_replication_user",
                           "pg_auto_failover_replication_password", "pg_auto_failover replication user")
ACCOUNTS = (SUPERUSER, REPLICATION, REWIND, RESTAPI, HAPROXY_STATS, PGAF_MONITOR, PGAF_REPLICATION)


def accounts() -> tuple[Account, ...]:
    """Every account a lab has: the ones above and those a registered stack declares."""
    from pglab import stacks

    return ACCOUNTS + tuple(a for spec in stacks.specs() for a in spec.accounts if a not in ACCOUNTS)


def secret_variables() -> dict[str, str]:
    """Inventory variable -> what it protects. Ansible reads the file as group_vars/all/secrets.yml."""
    return {a.password_variable: f"{a.what} ({a.user})" for a in accounts()}


def user_variables() -> dict[str, str]:
    """The roles' variables naming each account's user."""
    return {a.user_variable: a.user for a in accounts()}


def _new_password() -> str:
    return _random.token_urlsafe(18)


def load_or_create(path: Path) -> dict[str, str]:
    """Read the lab's secrets, adding any that are missing, and keep the file mode 0600."""
    current: dict[str, str] = {}
    if path.exists():
        current = yaml.safe_load(path.read_text()) or {}
    wanted = {name: str(current.get(name) or _new_password()) for name in secret_variables()}
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
