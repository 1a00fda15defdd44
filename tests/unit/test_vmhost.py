"""The private VM host's namespace: what start and stop run (plans), and, as root, a real
namespace made and removed with its routes (no libvirtd: that is the VM tests' part)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pglab.vm import host as vmhost
from pglab.vm.host import MANAGEMENT_SUBNET, VmHost


def test_setup_makes_the_namespace_routes_the_subnets_away_and_starts_the_daemons_inside(tmp_path: Path) -> None:
    host = VmHost(namespace="ns1", subnets=(MANAGEMENT_SUBNET, "192.168.11.0/24"), pid_dir=tmp_path)
    commands = host.setup_commands()
    assert commands[:2] == [["ip", "netns", "add", "ns1"], ["ip", "-n", "ns1", "link", "set", "lo", "up"]]
    assert ["ip", "route", "replace", "unreachable", "192.168.121.0/24"] in commands
    assert ["ip", "route", "replace", "unreachable", "192.168.11.0/24"] in commands
    daemons = [c for c in commands if c[:4] == ["ip", "netns", "exec", "ns1"]]
    assert [c[4] for c in daemons] == ["virtlogd", "libvirtd"]
    assert daemons[1][-2:] == ["--pid-file", str(tmp_path / "libvirtd.pid")]


def test_hiding_kvm_gives_libvirtd_its_own_mount_namespace(tmp_path: Path) -> None:
    libvirtd = VmHost(namespace="ns1", pid_dir=tmp_path, hide_kvm=True).setup_commands()[-1]
    assert libvirtd[4:7] == ["unshare", "--mount", "--propagation"]
    assert "mount --bind /dev/null /dev/kvm && exec libvirtd --daemon" in libvirtd[-1]


def test_teardown_removes_the_namespace_and_exactly_the_routes_it_added() -> None:
    host = VmHost(namespace="ns1", subnets=(MANAGEMENT_SUBNET, "10.9.0.0/16"))
    assert host.teardown_commands() == [
        ["ip", "netns", "delete", "ns1"],
        ["ip", "route", "del", "unreachable", "192.168.121.0/24"],
        ["ip", "route", "del", "unreachable", "10.9.0.0/16"],
    ]


def test_stop_knows_the_subnets_a_start_recorded(tmp_path: Path) -> None:
    host = VmHost(namespace="ns1", pid_dir=tmp_path)
    host.subnets_file.write_text("192.168.121.0/24\n10.9.0.0/16\n")
    assert host.with_recorded_subnets().subnets == (MANAGEMENT_SUBNET, "10.9.0.0/16")


def test_a_stale_pid_file_names_no_daemon(tmp_path: Path) -> None:
    host = VmHost(pid_dir=tmp_path)
    host.pid_file("libvirtd").write_text(f"{os.getpid()}\n")  # a live process, but not libvirtd
    assert host.daemon_pid("libvirtd") is None


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None, reason="network namespaces need root and ip")
def test_a_namespace_with_its_routes_is_made_and_removed(tmp_path: Path) -> None:
    host = VmHost(namespace=f"pglab-unit-{os.getpid()}", subnets=("10.254.253.0/24",), pid_dir=tmp_path)
    for command in host.setup_commands()[:3]:  # namespace, lo, routes: no daemons here
        subprocess.run(command, check=True)
    try:
        assert host.namespace_exists() and host.routes() == ["10.254.253.0/24"]
        sleeper = subprocess.Popen([*host.exec_prefix(), "sleep", "60"])
        try:
            assert vmhost._alive(sleeper.pid)
            deadline = 50
            while sleeper.pid not in host.processes() and deadline:
                deadline -= 1
                subprocess.run(["sleep", "0.1"])
            assert sleeper.pid in host.processes()  # found by its network namespace
            host._kill_all(timeout=5)
            assert sleeper.wait(5) is not None
        finally:
            sleeper.kill()
        # Outside the namespace, the lab subnet is unreachable instead of routed to the network.
        probe = subprocess.run(["ip", "route", "get", "10.254.253.7"], capture_output=True, text=True)
        assert probe.returncode != 0 and "No route to host" in probe.stderr
    finally:
        host.stop()
    assert not host.namespace_exists() and host.routes() == []
    assert not host.subnets_file.exists()


def test_slow_machines_scale_every_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    from pglab import waiting

    calls = []

    def never() -> tuple[bool, str]:
        calls.append(1)
        return False, "not yet"

    monkeypatch.setenv(waiting.TIMEOUT_SCALE_VARIABLE, "3")
    done, _detail, elapsed = waiting.poll(never, 0.1, interval=0.02)
    assert not done and elapsed >= 0.3
    monkeypatch.setenv(waiting.TIMEOUT_SCALE_VARIABLE, "nonsense")
    assert waiting.timeout_scale() == 1.0
