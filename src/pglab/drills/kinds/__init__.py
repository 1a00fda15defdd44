"""The drill kinds by name: `pglab drill` offers one subcommand per entry. A new kind is one module
here and one line in :data:`KINDS`."""

from __future__ import annotations

from typing import Any

from pglab.drills.kind import DrillKind
from pglab.drills.kinds import (
    certs,
    cpu_starve,
    dcs_loss,
    disk_full,
    failover,
    memory,
    network,
    node_faults,
    pgdata_lost,
    pooler_kill,
    postgres_kill,
    restart,
    restore,
    site_loss,
    slow_disk,
    switchover,
)
from pglab.errors import InputError

KINDS: dict[str, type[DrillKind]] = {kind.name: kind for kind in (
    switchover.Switchover,
    failover.Failover,
    node_faults.Crash,
    node_faults.Hang,
    node_faults.Partition,
    restart.Restart,
    certs.Certs,
    certs.CertsCa,
    restore.Restore,
    network.Loss,
    network.Latency,
    dcs_loss.DcsLoss,
    site_loss.SiteLoss,
    postgres_kill.PostgresKill,
    pgdata_lost.PgdataLost,
    disk_full.DiskFull,
    slow_disk.SlowDisk,
    cpu_starve.CpuStarve,
    memory.Memory,
    pooler_kill.PoolerKill,
)}


def make(name: str, **options: Any) -> DrillKind:
    """A drill of kind ``name`` with its own options (``node="pg2"`` ...)."""
    if name not in KINDS:
        raise InputError(f"unknown drill {name!r}; choose one of: {', '.join(KINDS)}")
    return KINDS[name](**options)
