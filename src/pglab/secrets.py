"""Per-lab secrets: generated once, stored 0600, reused by every later run."""

from __future__ import annotations

import os
import secrets as _random
from collections.abc import Iterable
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


# The superuser is every stack's (Patroni's and pg_auto_failover's alike): its variables are the
# postgresql role's, named after no stack. The other accounts are declared by the stacks and
# components that use them (``StackSpec.accounts``); :func:`pglab.catalog.accounts` gathers them.
SUPERUSER = Account("postgres", "postgresql_superuser", "postgresql_superuser_password", "PostgreSQL superuser")


def _new_password() -> str:
    return _random.token_urlsafe(18)


def load_or_create(path: Path, variables: Iterable[str]) -> dict[str, str]:
    """Read the lab's secrets, adding any of ``variables`` that are missing, and keep the file
    mode 0600."""
    current: dict[str, str] = {}
    if path.exists():
        current = yaml.safe_load(path.read_text()) or {}
    wanted = {name: str(current.get(name) or _new_password()) for name in variables}
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
