"""The pure parts of the resource fault drills: disk sizes, commit latency windows, where each
cgroup controller lives and what its limits write, the local provider's refusals (exit 2 before
anything is touched) and the kinds' options."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from pglab import catalog, cli
from pglab.drills import commit_latency, kinds, targets
from pglab.drills.probe import Attempt
from pglab.errors import InputError, PglabError
from pglab.lab import Lab
from pglab.providers import disks, limits
from pglab.providers.local import LocalProvider
from pglab.topology import TopologyError
from tests.conftest import write_topology

V1_MOUNTS = """cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0
cgroup /sys/fs/cgroup/blkio cgroup rw,nosuid,blkio 0 0
cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0
"""


def test_disk_sizes_are_binary() -> None:
    assert disks.size_bytes("512M") == 512 * 2**20 and disks.size_bytes("4G") == 4 * 2**30


def test_the_local_section_takes_a_disk_size_and_refuses_a_tiny_one(tmp_path: Path) -> None:
    text = catalog.default_yaml()
    assert "\nlocal:" in text and "disk_size: 4G" in text
    topo = catalog.parse(text.replace("disk_size: 4G", "disk_size: 512M"))
    assert topo.section("local", type(topo.local)).disk_size == "512M"  # type: ignore[attr-defined]
    with pytest.raises(TopologyError, match="256M"):
        catalog.parse(text.replace("disk_size: 4G", "disk_size: 100M"))
    with pytest.raises(TopologyError):
        catalog.parse(text.replace("disk_size: 4G", "disk_size: lots"))


def _attempt(started: float, took: float, ok: bool = True) -> Attempt:
    return Attempt(id=int(started * 1000), started=started, ended=started + took, ok=ok)


def test_commit_latency_windows() -> None:
    attempts = ([_attempt(t / 10, 0.002) for t in range(10)] + [_attempt(1 + t / 10, 0.050) for t in range(10)]
                + [_attempt(2.0, 1.0, ok=False)] + [_attempt(3 + t / 10, 0.003) for t in range(10)])
    windows = commit_latency.before_during_after(attempts, 1.0, 2.5)
    assert windows["before"] == {"p50_ms": 2.0, "p99_ms": 2.0, "acknowledged": 10, "failed": 0}
    assert windows["during"]["p50_ms"] == 50.0 and windows["during"]["failed"] == 1
    assert windows["after"]["acknowledged"] == 10
    assert commit_latency.window([], 0, 1) == {"p50_ms": None, "p99_ms": None, "acknowledged": 0, "failed": 0}
    assert commit_latency.percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert commit_latency.percentile([float(i) for i in range(1, 101)], 0.99) == 99.0


def test_a_controller_is_used_from_v2_when_listed_else_from_v1(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu io\n")
    assert limits.hierarchy("cpu", tmp_path, V1_MOUNTS) == (tmp_path, True)
    assert limits.hierarchy("memory", tmp_path, V1_MOUNTS) == (Path("/sys/fs/cgroup/memory"), False)
    assert limits.hierarchy("memory", None, V1_MOUNTS) == (Path("/sys/fs/cgroup/memory"), False)
    assert limits.hierarchy("io", None, V1_MOUNTS) == (Path("/sys/fs/cgroup/blkio"), False)
    assert limits.hierarchy("io", None, "") is None


def test_v1_limits_write_the_v1_files_and_lift_them(tmp_path: Path) -> None:
    group = limits.ControllerGroup("io", tmp_path, False, "lab-1", "pg1")
    group.create()
    group.throttle_io("7:3", 20, None)
    assert (group.path / "blkio.throttle.write_iops_device").read_text() == "7:3 20"
    assert (group.path / "blkio.throttle.read_iops_device").read_text() == "7:3 20"
    assert group.unthrottle_io()
    assert (group.path / "blkio.throttle.write_iops_device").read_text() == "7:3 0"
    cpu = limits.ControllerGroup("cpu", tmp_path, False, "lab-1", "pg1")
    cpu.limit_cpu(5)
    assert (cpu.path / "cpu.cfs_quota_us").read_text() == "5000"
    assert cpu.unlimit_cpu() and (cpu.path / "cpu.cfs_quota_us").read_text() == "-1"


def test_v2_limits_write_io_max_and_cpu_max(tmp_path: Path) -> None:
    for directory in (tmp_path, tmp_path / "pglab", tmp_path / "pglab" / "lab-1"):
        directory.mkdir(exist_ok=True)
        (directory / "cgroup.subtree_control").write_text("")
    group = limits.ControllerGroup("io", tmp_path, True, "lab-1", "pg1")
    group.create()
    assert (tmp_path / "pglab" / "lab-1" / "cgroup.subtree_control").read_text() == "+io"
    group.throttle_io("7:3", None, 1_000_000)
    assert (group.path / "io.max").read_text() == "7:3 rbps=1000000 wbps=1000000"
    cpu = limits.ControllerGroup("cpu", tmp_path, True, "lab-1", "pg1")
    cpu.limit_cpu(50)
    assert (cpu.path / "cpu.max").read_text() == "50000 100000"


@pytest.fixture
def provider(tmp_path: Path) -> LocalProvider:
    lab = Lab.from_file(write_topology(tmp_path))
    assert isinstance(lab.provider, LocalProvider)
    return lab.provider


def test_without_cgroups_the_local_provider_refuses_each_resource_fault(provider: LocalProvider) -> None:
    provider.cgroup_root = None
    for fault in ("disk-full", "slow-disk", "cpu-starve", "memory"):
        assert "needs root" in (provider.cannot(fault) or "")
    assert "cannot produce" in (provider.cannot("meteor") or "")


def test_without_its_own_filesystem_a_node_cannot_fill_up(provider: LocalProvider, tmp_path: Path) -> None:
    provider.cgroup_root = tmp_path  # cgroups, but no mounted disks: plain directories
    assert "plain directories" in (provider.cannot("disk-full") or "")


def test_the_kinds_are_offered_with_their_own_options() -> None:
    runner = CliRunner()
    listed = runner.invoke(cli.main, ["drill", "--help"]).output
    for name in ("disk-full", "slow-disk", "cpu-starve", "memory"):
        assert name in listed and name in kinds.KINDS
    slow = runner.invoke(cli.main, ["drill", "slow-disk", "--help"]).output
    assert "--iops" in slow and "--bps" in slow and "--for" in slow
    assert "--percent" in runner.invoke(cli.main, ["drill", "cpu-starve", "--help"]).output
    assert "--limit" in runner.invoke(cli.main, ["drill", "memory", "--help"]).output


def test_slow_disk_needs_a_throttle(tmp_path: Path) -> None:
    lab: Any = SimpleNamespace(provider=SimpleNamespace(cannot=lambda fault: None))
    with pytest.raises(InputError, match="--iops"):
        kinds.make("slow-disk").check(lab)


def _health(*members: tuple[str, str, str]) -> Any:
    return SimpleNamespace(members=[SimpleNamespace(name=n, role=r, state=s) for n, r, s in members])


def test_a_role_names_the_node_that_holds_it_now(monkeypatch: pytest.MonkeyPatch) -> None:
    health = _health(("pg1", "leader", "running"), ("pg2", "replica", "streaming"),
                     ("pg3", "sync_standby", "streaming"))
    lab: Any = SimpleNamespace(stack=lambda: SimpleNamespace(health=lambda: health))
    assert targets.resolve(lab, None, "pg1") == "pg1" and targets.resolve(lab, "leader", "pg1") == "pg1"
    assert targets.resolve(lab, "sync-standby", "pg1") == "pg3"
    assert targets.resolve(lab, "replica", "pg1") == "pg2"
    assert targets.resolve(lab, "pg2", "pg1") == "pg2"
    asynchronous = _health(("pg1", "leader", "running"), ("pg2", "replica", "streaming"))
    lab = SimpleNamespace(stack=lambda: SimpleNamespace(health=lambda: asynchronous))
    monkeypatch.setattr(targets, "synchronous_standbys", lambda lab, leader: set())
    with pytest.raises(InputError, match="synchronous"):
        targets.resolve(lab, "sync-standby", "pg1")
    # pg_auto_failover's members do not say which is synchronous: the leader's pg_stat_replication does
    monkeypatch.setattr(targets, "synchronous_standbys", lambda lab, leader: {"pg2"})
    assert targets.resolve(lab, "sync-standby", "pg1") == "pg2"


def test_a_plain_directory_is_never_filled(tmp_path: Path) -> None:
    disk = disks.NodeDisk(tmp_path / "pg1.img", tmp_path / "pg1" / "15")
    assert not disk.occupied() and not disk.mounted()
    (tmp_path / "pg1" / "15" / "main").mkdir(parents=True)
    assert disk.occupied()  # a lab made before its nodes had disks: left as it is
    with pytest.raises(PglabError, match="fill the host"):
        disk.fill()


def test_without_a_free_loop_device_every_data_node_keeps_plain_directories(
        provider: LocalProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []
    removed: list[str] = []

    class ThirdFails(disks.NodeDisk):
        def mounted(self) -> bool:
            return False

        def make(self, size: int) -> None:
            if len(made) == 2:
                raise disks.NoLoopDevice("no free loop device: losetup failed")
            made.append(self.image.name)

        def remove(self) -> bool:
            removed.append(self.image.name)
            return True

    monkeypatch.setattr(disks, "NodeDisk", ThirdFails)
    monkeypatch.setattr(disks, "cannot_make", lambda: None)
    said: list[str] = []
    provider.report = said.append  # type: ignore[method-assign]
    provider._make_disks()
    assert sorted(removed) == sorted([*made, "pg3.img"]) and len(made) == 2
    assert said and "plain directories" in said[-1] and "no free loop device" in said[-1]
