"""The virtual IP, end to end on containers: the compact Patroni lab on podman with ``vip:`` (or,
with ``PGLAB_E2E_STACK=pg_auto_failover`` as for the other container test, a monitor and two data
nodes), `pglab verify` (the VIP's checks among the others: it sits on the leader's node, answers
there, moves after a switchover), `pglab drill switchover --via vip`, `pglab destroy` leaving nothing.

Opt-in as the other container test (``PGLAB_E2E_CONTAINERS=1``). Every packet stays in the
namespace the provider makes; this process never joins it, only the pglab commands it runs do.
The summary line (``vip-e2e: ...``) is printed and written to ``$PGLAB_E2E_SUMMARY``. Run it as root:
``PGLAB_E2E_CONTAINERS=1 .venv/bin/python -m pytest tests/e2e/test_containers_vip.py -s -p no:cacheprovider``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from pglab.vm import image
from tests.e2e import summary
from tests.e2e.test_containers import OPT_IN, cgroups_for_crun, leftovers, pglab

__all__ = ["cgroups_for_crun"]  # the fixture, used by name below

LAB = "vipe2e"
SUBNET = "10.100.100"
VIP = f"{SUBNET}.50"
TOPOLOGY = f"""\
name: {LAB}
provider: podman
postgres: {{scope: {LAB}}}
network: {{subnet: {SUBNET}.0/24}}
vip: {{address: {VIP}}}
nodes:
  - {{name: dcs, address: {SUBNET}.11, roles: [dcs, haproxy]}}
  - {{name: pg1, address: {SUBNET}.12, roles: [postgres]}}
  - {{name: pg2, address: {SUBNET}.13, roles: [postgres]}}
"""
# pg_auto_failover: the monitor on the first node instead of the DCS and HAProxy.
PGAF_TOPOLOGY = TOPOLOGY.replace("nodes:\n", "stack: pg_auto_failover\nnodes:\n").replace(
    "{name: dcs, address: " + SUBNET + ".11, roles: [dcs, haproxy]}",
    "{name: monitor, address: " + SUBNET + ".11, roles: [monitor]}")


def topology_text() -> str:
    """The lab under test, of the stack ``PGLAB_E2E_STACK`` names (Patroni by default)."""
    return PGAF_TOPOLOGY if os.environ.get("PGLAB_E2E_STACK", "patroni") == "pg_auto_failover" else TOPOLOGY
# What check 4 of the VIP prints: where PostgreSQL at the VIP answered as the primary, how soon.
MOVED = summary.VIP_MOVED

pytestmark = pytest.mark.skipif(os.environ.get("PGLAB_E2E_CONTAINERS") != "1", reason=OPT_IN)


def settled_status(lab_file: Path, attempts: int = 8) -> dict[str, Any]:
    """`pglab status --json` once the VIP sits on the leader's node, or the last answer: keepalived
    takes it a few seconds after `up` or a leader change."""
    for _ in range(attempts):
        status: dict[str, Any] = json.loads(pglab("status", "--json", lab_file=lab_file, check=False).stdout or "{}")
        if on_leader(status):
            break
        time.sleep(2)
    return status


def on_leader(status: dict[str, Any]) -> bool:
    return bool(status.get("leader")) and status.get("vip_node") == status.get("leader")


def test_vip_lab_up_verify_drill_via_vip_destroy(tmp_path: Path, cgroups_for_crun: list[str]) -> None:
    if os.geteuid() != 0 or not shutil.which("podman"):
        pytest.skip("the container test needs root and podman")
    figures: dict[str, object] = {}
    started = time.monotonic()
    built = image.build(report=lambda text: print(f"image: {text}", flush=True))
    if built.built:
        figures["image_s"] = round(time.monotonic() - started)
    lab_file = tmp_path / "pglab.yml"
    lab_file.write_text(topology_text())
    figures["stack"] = os.environ.get("PGLAB_E2E_STACK", "patroni")
    try:
        started = time.monotonic()
        pglab("up", lab_file=lab_file)
        figures["up_s"] = round(time.monotonic() - started)
        status = settled_status(lab_file)
        figures["vip_on_leader"] = on_leader(status)
        record = os.environ.get("PGLAB_E2E_RECORD_STATUS")
        if record:  # a live VIP lab's `status --json`, for the pinned shapes
            Path(record).write_text(json.dumps(status, indent=2) + "\n")
        verified = pglab("verify", lab_file=lab_file, check=False)
        figures["verify_exit"] = verified.returncode
        moved = MOVED.search(verified.stdout)
        figures["vip_move_s"] = moved.group(2) if moved else "none"  # after the switchover was acknowledged
        figures["vip_move_from_ask_s"] = moved.group(3) if moved else "none"
        drill = pglab("drill", "switchover", "--via", "vip", "--json", lab_file=lab_file, check=False)
        figures["drill_exit"] = drill.returncode
        try:
            result = json.loads(drill.stdout)["drills"][0]
            figures["drill_via"] = result["via"]
            figures["drill_unavailable_s"] = result["unavailable_s"]
            figures["stale_primary_errors"] = result["stale_primary_errors"]
        except (ValueError, KeyError, IndexError):
            pass
        after = settled_status(lab_file)
        figures["vip_on_leader_after_drill"] = on_leader(after)
    finally:
        started = time.monotonic()
        pglab("destroy", lab_file=lab_file, check=False)
        figures["destroy_s"] = round(time.monotonic() - started)
        line = "vip-e2e: " + " ".join(f"{k}={v}" for k, v in figures.items())
        summary.report(line)
    assert not leftovers(LAB), f"`pglab destroy` left {leftovers(LAB)}"
    assert figures["vip_on_leader"], "after `up` the virtual IP was not on the leader's node"
    assert figures["verify_exit"] == 0, "`pglab verify` failed on the VIP lab"
    assert moved, "check 4 of the virtual IP printed no move"
    assert figures["drill_exit"] == 0 and figures.get("drill_via") == "vip", "the drill through the VIP failed"
    assert figures["vip_on_leader_after_drill"], "after the drill the virtual IP was not on the leader's node"
