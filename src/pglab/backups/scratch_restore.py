"""Prove that the latest backup restores: restore it into a scratch directory on the repository node,
start that copy on a spare port (its own Unix socket only, as the service user), run one query in
it, then stop and remove it, even when a step fails.

The copy must never touch the lab: archiving off (it would push a new timeline into the stanza), no
TCP listener, its own pg_hba.conf, no TLS files of the data node it came from. pgBackRest restores
with a scratch configuration that reads the repository directly (the repository node's own
configuration names the data nodes as remote hosts).
"""

from __future__ import annotations

import configparser
import shlex
import subprocess
import time
from dataclasses import dataclass

from pglab import paths
from pglab.backups.backup import BackupError
from pglab.components import pgbackrest
from pglab.lab import Lab
from pglab.topology import Node

# Below the repository node's spool directory (the service user's, on every provider).
SCRATCH = "scratch-restore"
# The copy's port: only its socket file in the scratch directory carries it, so it never collides.
SPARE_PORT = 6432
START_TIMEOUT_S = 60


@dataclass(frozen=True)
class ProbeResult:
    answer: str  # what the query printed
    restore_s: float
    start_s: float  # started and answering: recovery, replay of archived WAL, promotion


def _run(lab: Lab, script: str, timeout: float = 600.0, node: Node | None = None) -> subprocess.CompletedProcess[str]:
    node = node or pgbackrest.repository_node(lab.topology)
    return lab.provider.run_as_service_user(node, ["sh", "-c", script], timeout=timeout)


def _checked(lab: Lab, what: str, script: str, timeout: float = 600.0, node: Node | None = None) -> str:
    """``script``'s output on ``node`` (the repository node by default), as the service user."""
    node = node or pgbackrest.repository_node(lab.topology)
    return lab.provider.check_as_service_user(node, ["sh", "-c", script], what, BackupError, timeout)


def node_settings(lab: Lab, node: Node) -> dict[str, str]:
    """The [global] section of the pgBackRest configuration on ``node``."""
    path = pgbackrest.config_file(lab.provider.node_root(node))
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.read_string(_checked(lab, "reading the pgBackRest configuration", f"cat {shlex.quote(path)}", 60, node))
    return dict(parser["global"])


def repository_settings(lab: Lab) -> dict[str, str]:
    """The [global] section of the pgBackRest configuration on the repository node."""
    return node_settings(lab, pgbackrest.repository_node(lab.topology))


def restore_latest(lab: Lab, sql: str, dbname: str = "postgres", replay_archive: bool = False) -> ProbeResult:
    """Restore the latest backup in a scratch directory, start it, run ``sql`` (its output is the
    answer), stop and remove it. The copy ends where the backup became consistent, or with
    ``replay_archive`` at the last archived WAL (the latest point a restore can reach)."""
    settings = repository_settings(lab)
    scratch = f"{settings['spool-path']}/{SCRATCH}"
    data = f"{scratch}/data"
    bin_dir = paths.postgres_bin_dir(lab.topology.postgres.version)
    config = "\n".join([
        "[global]", f"repo1-path={settings['repo1-path']}", f"log-path={scratch}", f"lock-path={scratch}",
        "log-level-console=warn", "log-level-file=off",
        f"process-max={settings.get('process-max', '1')}",
        f"[{lab.topology.postgres.scope}]", f"pg1-path={data}", ""])
    q = shlex.quote
    # Settings given on the command line win over every configuration file the copy brings along.
    options = " ".join([
        f"-c port={SPARE_PORT}", "-c listen_addresses=''", f"-c unix_socket_directories={scratch}",
        "-c archive_mode=off", "-c ssl=off", f"-c hba_file={scratch}/pg_hba.conf",
        f"-c ident_file={scratch}/pg_ident.conf", "-c logging_collector=off", "-c shared_buffers=32MB",
        # Connections only once promoted (pg_ctl -w waits for that): hot standby would demand the
        # primary's max_connections and other limits.
        "-c hot_standby=off"])
    stop = f"{bin_dir}/pg_ctl -D {q(data)} -m immediate stop >/dev/null 2>&1; rm -rf {q(scratch)}"
    _checked(lab, "removing an earlier scratch restore", stop)
    try:
        _checked(lab, "preparing the scratch directory", "set -e; umask 077; "
                 f"mkdir -p {q(data)}; printf %s {q(config)} > {q(scratch)}/pgbackrest.conf; "
                 f"echo 'local all all trust' > {q(scratch)}/pg_hba.conf; : > {q(scratch)}/pg_ident.conf")
        started = time.monotonic()
        target = ["--type=default"] if replay_archive else ["--type=immediate", "--target-action=promote"]
        _checked(lab, "pgbackrest restore of the latest backup", shlex.join(pgbackrest.command(
            f"{scratch}/pgbackrest.conf", lab.topology.postgres.scope, *target, "restore")))
        restored = time.monotonic()
        _checked(lab, "starting the restored copy",
                 f"{bin_dir}/pg_ctl -D {q(data)} -l {q(scratch)}/postgresql.log -w -t {START_TIMEOUT_S} "
                 f"-o {q(options)} start >/dev/null || {{ tail -20 {q(scratch)}/postgresql.log >&2; exit 1; }}",
                 timeout=START_TIMEOUT_S + 30)
        answered = time.monotonic()
        # pg_ctl -w may return before the promotion lets connections in (hot standby is off): ask
        # again each second until it answers, the last try's error if it never does.
        psql = f"{bin_dir}/psql -h {q(scratch)} -p {SPARE_PORT} -d {q(dbname)} -XAtc {q(sql)}"
        answer = _checked(lab, "querying the restored copy",
                          f"for i in $(seq {START_TIMEOUT_S}); do {psql} 2>/dev/null && exit 0; sleep 1; done; {psql}",
                          timeout=START_TIMEOUT_S + 30)
        return ProbeResult(answer=answer.strip(), restore_s=round(restored - started, 2),
                           start_s=round(answered - restored, 2))
    finally:
        _run(lab, stop)
