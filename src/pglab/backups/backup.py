"""Backups of a lab: take one, list them with the window a restore can reach.

pgBackRest's commands run on the repository node, as the service user, with the configuration the
pgbackrest role wrote there; the window's end is the last WAL the primary archived.
"""

from __future__ import annotations

import datetime
import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from pglab import sql
from pglab.components import pgbackrest
from pglab.errors import PglabError
from pglab.lab import Lab

BackupType = Literal["full", "diff", "incr"]


class BackupError(PglabError):
    """pgBackRest refused or failed."""


@dataclass(frozen=True)
class Backup:
    label: str
    type: str
    start: datetime.datetime
    stop: datetime.datetime
    size_bytes: int  # the database's size
    repository_bytes: int  # what this backup added to the repository (compressed, deduplicated)
    wal_start: str
    wal_stop: str


@dataclass(frozen=True)
class BackupResult:
    backup: Backup
    duration_s: float
    summary: str


@dataclass(frozen=True)
class Window:
    """The earliest and latest moments a restore can reach."""

    earliest: datetime.datetime | None
    latest: datetime.datetime | None


@dataclass
class BackupList:
    stanza: str
    backups: list[Backup] = field(default_factory=list)
    window: Window = Window(None, None)


def _require_backups(lab: Lab) -> None:
    if not pgbackrest.enabled(lab.topology):
        raise BackupError(f"lab {lab.topology.name} has no backups: its topology ({lab.topology_file}) has no "
                          "backup: section with enabled: true and a node with the role backup; add them and "
                          "run `pglab up`")


def command(lab: Lab, *args: str, timeout: float = 1800.0) -> str:
    """Run one pgBackRest command on the repository node; its stdout."""
    _require_backups(lab)
    node = pgbackrest.repository_node(lab.topology)
    argv = pgbackrest.command(pgbackrest.config_file(lab.provider.node_root(node)), lab.topology.postgres.scope,
                              *args)
    return lab.provider.check_as_service_user(node, argv, f"pgbackrest {' '.join(args)}", BackupError, timeout)


def _time(epoch: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC)


def _backup(entry: dict[str, Any]) -> Backup:
    return Backup(label=entry["label"], type=entry["type"], start=_time(entry["timestamp"]["start"]),
                  stop=_time(entry["timestamp"]["stop"]), size_bytes=entry["info"]["size"],
                  repository_bytes=entry["info"]["repository"]["delta"], wal_start=entry["archive"]["start"],
                  wal_stop=entry["archive"]["stop"])


def last_archived(lab: Lab) -> datetime.datetime | None:
    """When the primary last archived a WAL segment (pg_stat_archiver)."""
    host, port = lab.writes_endpoint()
    rows = sql.query(host, port, lab.superuser_password(), "SELECT last_archived_time FROM pg_stat_archiver",
                     tls=lab.libpq_tls())
    value = rows[0][0] if rows else None
    return value if isinstance(value, datetime.datetime) else None


def list_backups(lab: Lab) -> BackupList:
    """Every backup in the repository, oldest first, and the restorable window: from the end of the
    oldest backup to the last archived WAL."""
    info = json.loads(command(lab, "--output=json", "info") or "[]")
    stanza: dict[str, Any] = info[0] if info else {"name": lab.topology.postgres.scope, "backup": []}
    backups = [_backup(b) for b in stanza.get("backup", [])]
    earliest = backups[0].stop if backups else None
    latest = None
    if backups:
        archived = last_archived(lab)
        latest = max(filter(None, [archived, backups[-1].stop]))
    return BackupList(stanza=str(stanza["name"]), backups=backups, window=Window(earliest, latest))


def take_backup(lab: Lab, kind: BackupType = "full") -> BackupResult:
    """Take a backup of the cluster from its primary; the new backup and how long it took."""
    before = {b.label for b in list_backups(lab).backups}
    started = time.monotonic()
    command(lab, f"--type={kind}", "backup")
    duration = time.monotonic() - started
    new = [b for b in list_backups(lab).backups if b.label not in before]
    if not new:
        raise BackupError("pgbackrest backup succeeded but the repository shows no new backup")
    backup = new[-1]
    summary = (f"{backup.type} backup {backup.label} in {duration:.1f} s: database {_size(backup.size_bytes)}, "
               f"{_size(backup.repository_bytes)} stored; WAL {backup.wal_start} .. {backup.wal_stop}")
    return BackupResult(backup=backup, duration_s=round(duration, 2), summary=summary)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{n} B"
        value /= 1024
    return f"{n} B"
