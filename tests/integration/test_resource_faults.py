"""The resource fault drills on the session lab: each data node's data on a filesystem of its own,
a slow disk, a starved CPU, a full disk and an OOM-killed backend, each measured and each undone
(no throttle, quota, memory group or ballast left). That `destroy` unmounts and detaches the disks,
test_destroy.py proves on a lab of its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pglab import waiting
from pglab.lab import Lab
from pglab.providers import limits
from pglab.providers.local import LocalProvider


@pytest.fixture(autouse=True)
def as_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("resource faults need root (loop devices, cgroups)")


def _drill(lab: Lab, out: Path, *args: str, expect: int | None = 0) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "pglab.cli", "drill", *args, "--out", str(out), "--json", "-f", str(lab.topology_file)],
        capture_output=True, text=True, timeout=400,
    )
    if expect is not None:
        assert done.returncode == expect, done.stderr[-3000:]
    [drilled] = json.loads(done.stdout)["drills"]
    return dict(drilled)


def _provider(lab: Lab) -> LocalProvider:
    assert isinstance(lab.provider, LocalProvider)
    return lab.provider


def _nothing_left(lab: Lab) -> None:
    provider = _provider(lab)
    for node in lab.topology.nodes:
        groups = provider._groups(node.name)
        if "io" in groups:
            assert not groups["io"].unthrottle_io(), f"{node.name}: a disk throttle was left"
        if "cpu" in groups:
            assert not groups["cpu"].unlimit_cpu(), f"{node.name}: a CPU quota was left"
        if "memory" in groups:
            assert not groups["memory"].postgres_path.exists(), f"{node.name}: a memory group was left"
        if "postgres" in node.roles:
            assert not provider.disk(node).ballast(), f"{node.name}: ballast was left"
    assert provider.undo_faults() == []


def test_every_data_node_has_a_filesystem_of_its_own(lab: Lab) -> None:
    provider = _provider(lab)
    devices = {provider.disk(n).device() for n in lab.topology.with_role("postgres")}
    assert None not in devices and len(devices) == len(lab.topology.with_role("postgres"))
    for node in lab.topology.with_role("postgres"):
        image = provider.disk(node).image
        assert image.stat().st_blocks * 512 < image.stat().st_size / 4  # sparse: it costs what is written


def test_cpu_starve_slows_the_leader_and_lifts_its_quota(lab: Lab, tmp_path: Path) -> None:
    lab.wait_healthy(60)
    drilled = _drill(lab, tmp_path, "cpu-starve", "--percent", "5", "--for", "5", "--clients", "2")
    assert drilled["ok"] and drilled["lost"] == 0
    assert drilled["held_s"] >= 5 and "5 % of one core" in drilled["limit"]
    assert drilled["commit_latency"]["before"]["acknowledged"] > 0
    assert drilled["commit_latency"]["after"]["acknowledged"] > 0
    _nothing_left(lab)


def test_slow_disk_raises_commit_latency_on_the_leader(lab: Lab, tmp_path: Path) -> None:
    lab.wait_healthy(60)
    drilled = _drill(lab, tmp_path, "slow-disk", "--iops", "10", "--for", "6")
    assert drilled["ok"] and drilled["lost"] == 0
    latency = drilled["commit_latency"]
    during = latency["during"]
    # a commit waits for its WAL flush: at 10 IOPS it waits (or times out) far longer than before
    assert during["failed"] > 0 or during["p50_ms"] > 3 * latency["before"]["p50_ms"], latency
    _nothing_left(lab)


def test_disk_full_refuses_writes_until_the_ballast_goes(lab: Lab, tmp_path: Path) -> None:
    lab.wait_healthy(60)
    drilled = _drill(lab, tmp_path, "disk-full", "--for", "8")
    assert drilled["lost"] == 0 and drilled["recovered"], drilled["problem"]
    assert drilled["first_failure_s"] is not None and "space" in drilled["first_error"].lower()
    assert drilled["commit_latency"]["after"]["acknowledged"] > 0
    _nothing_left(lab)


def test_memory_limit_ends_a_growing_backend(lab: Lab, tmp_path: Path) -> None:
    lab.wait_healthy(60)
    drilled = _drill(lab, tmp_path, "memory", "--limit", "128", expect=None)
    assert drilled["oom_kills"] >= 1 and drilled["backend"].startswith("ended"), drilled
    assert drilled["postmaster"] != "unknown" and drilled["lost"] == 0
    _nothing_left(lab)


def test_a_drill_the_machine_cannot_run_exits_2(lab: Lab, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pglab.cli", "drill", "slow-disk", "--for", "1", "-f",
                           str(lab.topology_file)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--iops" in done.stderr


def test_an_interrupted_drill_lifts_its_limit(lab: Lab) -> None:
    """Ctrl-C while the disk is throttled: the drill lifts the throttle on its way out."""
    provider = _provider(lab)
    leader = lab.node(lab.wait_healthy(60).leader or "pg1")
    io = provider._groups(leader.name)["io"]
    drill = subprocess.Popen([sys.executable, "-m", "pglab.cli", "drill", "slow-disk", "--iops", "50", "--for", "60",
                              "-f", str(lab.topology_file)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
    try:
        throttled = waiting.poll(lambda: (_throttled(io), "not yet"), 60, 0.2)[0]
        assert throttled, "the drill never throttled the leader's disk"
        drill.send_signal(signal.SIGINT)
        drill.communicate(timeout=120)
    finally:
        if drill.poll() is None:
            drill.kill()
    assert not _throttled(io)
    _nothing_left(lab)


def _throttled(io: limits.ControllerGroup) -> bool:
    """Whether a limit is set in the node's I/O group (read only: v2's io.max, v1's blkio files)."""
    if io.v2:
        lines = (io.path / "io.max").read_text().splitlines()
        return any(not value.endswith("=max") for line in lines for value in line.split()[1:])
    return any(not line.endswith(" 0") for f in io.path.glob("blkio.throttle.*_device")
               for line in f.read_text().splitlines())


def test_up_and_destroy_undo_what_an_interrupted_drill_left(lab: Lab) -> None:
    """`up` and `destroy` call undo_faults: every limit and the ballast a killed drill left go."""
    provider = _provider(lab)
    leader = lab.node(lab.wait_healthy(60).leader or "pg1")
    provider.throttle_disk(leader, 1000, None)
    provider.limit_cpu(leader, 50)
    provider.fill_disk(leader)
    try:
        undone = provider.undo_faults()
    finally:
        provider.undo_faults()
    assert any("disk throttle and CPU limit" in u for u in undone) and any("ballast" in u for u in undone), undone
    _nothing_left(lab)
