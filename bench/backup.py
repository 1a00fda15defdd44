"""Backups against pg_basebackup, in one run of one lab.

Brings up the default lab (lab ``benchbackup``, on its own loopback range), fills it with
``pgbench -i -s SCALE`` (50: about 750 MB), then times, in this order: a full pgBackRest backup,
``pg_basebackup`` of the same cluster from the same primary (plain format, WAL streamed, fast
checkpoint: what a DBA would type), an incremental backup after updating 1 % of pgbench_accounts,
and a restore of the latest backup to the end of the archive in a scratch directory on the
repository node (restored, then started and answering). Prints the figures and the goals' ratios
(full / pg_basebackup <= 1.0, incremental / full <= 0.15); always destroys the lab.

    .venv/bin/python bench/backup.py [--scale 50] [--loopback 127.0.32.0/24] [--json]
        [--process-max 2] [--compress-type lz4] [--compress-level N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from _common import BenchFailure, TimeLimit, log, time_limit

from pglab import catalog, sql, stacks
from pglab.backups import backup, scratch_restore
from pglab.lab import Lab, PglabError
from pglab.secrets import SUPERUSER

LAB_NAME = "benchbackup"
DEFAULT_LOOPBACK = "127.0.32.0/24"  # never a user's lab (127.0.11.x) nor the tests (127.0.21-22.x)
RUN_LIMIT = 1800.0
UP_TIMEOUT = 300.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="pgBackRest backup and restore times against pg_basebackup.")
    parser.add_argument("--scale", type=int, default=50, help="pgbench scale factor (default 50, ~750 MB)")
    parser.add_argument("--loopback", default=DEFAULT_LOOPBACK, help=f"loopback range (default {DEFAULT_LOOPBACK})")
    parser.add_argument("--stack", choices=["patroni", "pg_auto_failover"], default="patroni")
    parser.add_argument("--process-max", type=int, help="pgBackRest processes (default: the topology's)")
    parser.add_argument("--compress-type", choices=["lz4", "zst", "gz", "bz2", "none"],
                        help="compression (default: the topology's, lz4)")
    parser.add_argument("--compress-level", type=int, help="compression level (default: pgBackRest's)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if not args.loopback.startswith("127."):
        parser.error("--loopback must be a 127.x.y.z range: the benchmark only uses loopback addresses")
    return args


def write_topology(directory: Path, args: argparse.Namespace) -> Path:
    data = yaml.safe_load(catalog.default_yaml(name=LAB_NAME, loopback=args.loopback, stack=args.stack))
    if args.process_max:
        data["backup"]["processes"] = args.process_max
    if args.compress_type:
        data["backup"]["compression"] = args.compress_type
    if args.compress_level is not None:
        data["backup"]["compression_level"] = args.compress_level
    path = directory / "pglab.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def libpq_env(lab: Lab) -> dict[str, str]:
    env = {**os.environ, "PGUSER": SUPERUSER.user, "PGPASSWORD": lab.superuser_password(), "PGCONNECT_TIMEOUT": "10"}
    if lab.ca_file is not None:
        env |= {"PGSSLMODE": "verify-full", "PGSSLROOTCERT": str(lab.ca_file)}
    return env


def bin_path(lab: Lab, program: str) -> str:
    return f"/usr/lib/postgresql/{lab.topology.postgres.version}/bin/{program}"


def primary(lab: Lab) -> str:
    # Through the writes endpoint (HAProxy's port, not PostgreSQL's): the primary names itself.
    host, port = lab.writes_endpoint()
    rows = sql.query(host, port, lab.superuser_password(),
                     "SELECT host(inet_server_addr())", tls=lab.libpq_tls())
    return str(rows[0][0])


def run(argv: list[str], env: dict[str, str], what: str) -> float:
    started = time.monotonic()
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise BenchFailure(f"{what} failed (exit {result.returncode}): {result.stderr.strip()[-1500:]}")
    return time.monotonic() - started


def timed_basebackup(lab: Lab, host: str) -> tuple[float, int]:
    """pg_basebackup of the primary into a temporary directory on this machine; seconds and bytes."""
    account = stacks.spec(lab.topology.stack).replication_account
    assert account is not None, f"stack {lab.topology.stack} declares no replication account"
    env = libpq_env(lab) | {"PGPASSWORD": lab.secrets()[account.password_variable]}
    user = account.user
    with tempfile.TemporaryDirectory(prefix="pglab-bench-basebackup-") as tmp:
        target = Path(tmp) / "data"
        seconds = run([bin_path(lab, "pg_basebackup"), "-h", host, "-p", str(lab.topology.ports.postgres),
                       "-U", user, "-D", str(target), "-X", "stream", "-c", "fast", "--no-sync"],
                      env, "pg_basebackup")
        size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
        shutil.rmtree(target, ignore_errors=True)
    return seconds, size


def measure(lab: Lab, scale: int) -> dict[str, Any]:
    env = libpq_env(lab)
    host = primary(lab)
    port = str(lab.topology.ports.postgres)
    log(f"pgbench -i -s {scale} on {host} ...")
    filled = run([bin_path(lab, "pgbench"), "-i", "-s", str(scale), "-q", "-h", host, "-p", port, "postgres"],
                 env, "pgbench -i")
    log(f"filled in {filled:.1f} s; full backup ...")
    full = backup.take_backup(lab, "full")
    log(f"{full.summary}; pg_basebackup ...")
    basebackup_s, basebackup_bytes = timed_basebackup(lab, host)
    log(f"pg_basebackup in {basebackup_s:.1f} s; updating 1 % of pgbench_accounts ...")
    updated = run([bin_path(lab, "psql"), "-h", host, "-p", port, "-d", "postgres", "-XAtc",
                   "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 100 = 0"], env, "the 1 % update")
    incr = backup.take_backup(lab, "incr")
    log(f"{incr.summary}; restore to the latest point ...")
    rows = scale * 100000
    probe = scratch_restore.restore_latest(lab, "SELECT count(*) FROM pgbench_accounts", replay_archive=True)
    if probe.answer != str(rows):
        raise BenchFailure(f"the restored copy counts {probe.answer!r} pgbench_accounts rows, not {rows}")
    return {
        "scale": scale,
        "database_bytes": full.backup.size_bytes,
        "fill_s": round(filled, 2),
        "full_s": full.duration_s,
        "full_stored_bytes": full.backup.repository_bytes,
        "pg_basebackup_s": round(basebackup_s, 2),
        "pg_basebackup_bytes": basebackup_bytes,
        "update_s": round(updated, 2),
        "incr_s": incr.duration_s,
        "incr_stored_bytes": incr.backup.repository_bytes,
        "restore_s": probe.restore_s,
        "restore_start_s": probe.start_s,
        "full_vs_pg_basebackup": round(full.duration_s / basebackup_s, 2),
        "incr_vs_full": round(incr.duration_s / full.duration_s, 2),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pglab-bench-backup-") as tmp:
        lab = Lab.from_file(write_topology(Path(tmp), args))
        missing = lab.missing_prerequisites()
        if missing:
            log("bench/backup.py needs the lab's packages: " + "; ".join(missing)
                + ". Install them first (as root: `pglab prepare`), then run it again.")
            return 1
        try:
            with time_limit(RUN_LIMIT):
                log("up ...")
                lab.up(timeout=UP_TIMEOUT)
                figures = measure(lab, args.scale)
        except TimeLimit:
            log(f"FAILED: not done within {RUN_LIMIT:.0f} s")
            return 1
        except (BenchFailure, PglabError) as exc:
            log(f"FAILED: {exc}")
            return 1
        finally:
            log("destroy")
            lab.destroy()
    settings = lab.topology.backup
    figures["settings"] = {"process_max": settings.processes, "compress_type": settings.compression,
                           "compress_level": settings.compression_level}
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    mb = 1024 * 1024
    print(f"pgbench scale {figures['scale']}: database {figures['database_bytes'] / mb:.0f} MB "
          f"(process-max {settings.processes}, compress {settings.compression}"
          f"{'' if args.compress_level is None else f' level {args.compress_level}'})")
    print(f"  full backup      {figures['full_s']:>7.1f} s   stored {figures['full_stored_bytes'] / mb:>6.0f} MB")
    copied = figures["pg_basebackup_bytes"] / mb
    print(f"  pg_basebackup    {figures['pg_basebackup_s']:>7.1f} s   copied {copied:>6.0f} MB")
    print(f"  incr after 1 %   {figures['incr_s']:>7.1f} s   stored {figures['incr_stored_bytes'] / mb:>6.0f} MB")
    print(f"  restore latest   {figures['restore_s']:>7.1f} s   "
          f"+ {figures['restore_start_s']:.1f} s to replay, start and answer")
    print(f"  full / pg_basebackup {figures['full_vs_pg_basebackup']:.2f} (goal <= 1.0);  "
          f"incr / full {figures['incr_vs_full']:.2f} (goal <= 0.15)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
