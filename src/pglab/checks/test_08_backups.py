"""Check 8, backups (labs with a backup: section): WAL reaches the repository from whichever node is
primary now (after the switchover and failover checks), pgBackRest's own check passes, a full
backup exists, and the latest backup restores: a copy started from it in a scratch directory on the
repository node holds a marker row written just before that backup. The pgBackRest component
declares it as its check: only labs that run it get it."""

from __future__ import annotations

import datetime
import secrets
import shlex
import time
from typing import Any

from pglab import sql, waiting
from pglab.backups import backup, scratch_restore
from pglab.checks import DATABASE
from pglab.errors import PglabError
from pglab.lab import Lab

ARCHIVE_TIMEOUT = 10.0
MARKER_TABLE = "backup_marker"


def _primary(lab: Lab, password: str, statement: str, params: Any = None,
             dbname: str = "postgres") -> list[tuple[Any, ...]]:
    host, port = lab.writes_endpoint()
    with sql.connect(host, port, password, dbname, tls=lab.libpq_tls()) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []  # CREATE ... has no rows to fetch


def test_a_forced_wal_switch_is_archived_within_seconds(lab: Lab, password: str) -> None:
    # A write first: a switch with nothing written since the last one switches nothing.
    _primary(lab, password, "SELECT txid_current()")
    # The name of the segment the switch completed.
    segment = _primary(lab, password, "SELECT pg_walfile_name(pg_switch_wal())")[0][0]
    timeout = ARCHIVE_TIMEOUT * waiting.timeout_scale()  # emulated VMs push slower
    deadline = time.monotonic() + timeout
    archived = ""
    while time.monotonic() < deadline:
        archived = _primary(lab, password, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")[0][0]
        # Segment names order by timeline, then position (a .history or .partial name is not one).
        if len(archived) == 24 and archived >= segment:
            return
        time.sleep(0.2)
    failed, failed_wal, failed_at = _primary(
        lab, password, "SELECT failed_count, last_failed_wal, last_failed_time FROM pg_stat_archiver")[0]
    raise AssertionError(f"WAL segment {segment} was not archived within {timeout:.0f} s of a forced "
                         f"switch (last archived: {archived or 'none'}; {failed} failures, the last for "
                         f"{failed_wal or 'none'} at {failed_at or '-'}); pgBackRest's errors on the primary: "
                         f"{_push_errors(lab)}")


def _push_errors(lab: Lab) -> str:
    """The last errors of pgBackRest on the primary: archive_command's own (in the services' logs,
    where PostgreSQL writes what the command printed) and the asynchronous push's (its log)."""
    leader = lab.stack().leader()
    if leader is None:
        return "(no leader to ask)"
    node = lab.node(leader)
    try:
        command = [line.strip() for line in lab.provider.logs(node, None, 400).splitlines() if "ERROR: [" in line]
        log_dir = scratch_restore.node_settings(lab, node)["log-path"]
        log = f"{log_dir}/{lab.topology.postgres.scope}-archive-push-async.log"
        grep = f"grep -A2 ERROR {shlex.quote(log)} | tail -n 6"
        tail = lab.provider.run_as_service_user(node, ["sh", "-c", grep], timeout=60)
    except (OSError, NotImplementedError, PglabError, KeyError) as exc:
        return f"(could not read pgBackRest's logs on {leader}: {exc})"
    pushed = " ".join(tail.stdout.split())[-1200:] or "none"
    return f"archive_command: {' | '.join(command[-2:])[-600:] or 'none'}; asynchronous push ({log}): {pushed}"


def test_no_archive_failures(lab: Lab, password: str) -> None:
    failed, last_failed, wal, last_ok = _primary(
        lab, password, "SELECT failed_count, last_failed_time, last_failed_wal, last_archived_time "
        "FROM pg_stat_archiver")[0]
    # A failure that a later success followed (a repository briefly away) is history, not a fault.
    assert last_failed is None or (last_ok is not None and last_ok > last_failed), (
        f"the primary's archiver fails: {failed} failures, the last for {wal} at {last_failed}, after the "
        f"last success ({last_ok or 'none'}); see pgBackRest's log on the primary")


def test_pgbackrest_check_passes(lab: Lab) -> None:
    backup.command(lab, "check")


def test_a_full_backup_exists(lab: Lab) -> None:
    listing = backup.list_backups(lab)
    assert any(b.type == "full" for b in listing.backups), (
        f"the repository holds no full backup ({len(listing.backups)} backups); run `pglab backup --type full`")


def test_the_latest_backup_restores_and_holds_a_marker_written_before_it(lab: Lab, password: str) -> None:
    marker = f"verify {datetime.datetime.now(datetime.UTC).isoformat()} {secrets.token_hex(4)}"
    if not _primary(lab, password, "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)):
        _primary(lab, password, f"CREATE DATABASE {DATABASE}")
    _primary(lab, password, f"CREATE TABLE IF NOT EXISTS {MARKER_TABLE} (marker text)", dbname=DATABASE)
    _primary(lab, password, f"INSERT INTO {MARKER_TABLE} VALUES (%s) RETURNING marker", (marker,), dbname=DATABASE)
    # An incremental backup: the latest one, and quick; it needs the full one before it.
    backup.take_backup(lab, "incr")
    probe = scratch_restore.restore_latest(lab, f"SELECT count(*) FROM {MARKER_TABLE} WHERE marker = '{marker}'",
                                        dbname=DATABASE)
    assert probe.answer == "1", (
        f"the copy restored from the latest backup does not hold the marker row written before it "
        f"(found {probe.answer!r}); restore took {probe.restore_s} s")
