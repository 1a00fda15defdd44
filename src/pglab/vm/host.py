"""A private VM host on a machine without systemd: a network namespace with its own libvirtd.

virtlogd and libvirtd run inside the namespace, so libvirt's bridges, NAT and dnsmasq (and so
every packet to the VMs) stay in it; vagrant, Ansible and pglab then run there too
(``ip netns exec``). While it lasts, the root namespace routes the VMs' subnets to `unreachable`,
so a command run outside fails instead of sending packets to the real network.

libvirt's state (/etc/libvirt, /var/lib/libvirt, /run/libvirt) is shared by every namespace:
there is one libvirtd at a time, and :meth:`VmHost.start` first clears what a killed run left.

    python -m pglab.vm.host start [--subnet 192.168.11.0/24]   # then: ip netns exec pglab-vms pglab up
    python -m pglab.vm.host stop [--lab NAME]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from pglab.errors import PglabError
from pglab.vm import libvirt

NAMESPACE = "pglab-vms"
# vagrant-libvirt's management network (DHCP + NAT for vagrant's SSH).
MANAGEMENT_SUBNET = "192.168.121.0/24"
DAEMONS = ("virtlogd", "libvirtd")  # started in this order, stopped in the reverse one
PID_DIR = Path("/run")


@dataclass(frozen=True)
class VmHost:
    namespace: str = NAMESPACE
    subnets: tuple[str, ...] = (MANAGEMENT_SUBNET,)
    pid_dir: Path = PID_DIR
    labs: tuple[str, ...] = field(default=())
    # Where /dev/kvm exists but cannot run the guests (a paravirtual KVM), libvirtd must not see
    # it: libvirt would re-probe QEMU (tens of seconds) on every domain it defines or starts.
    hide_kvm: bool = False

    # Plans (pure: what start and stop run, unit-tested) -----------------------------------------
    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.namespace]

    def pid_file(self, daemon: str) -> Path:
        return self.pid_dir / f"{daemon}.pid"

    @property
    def subnets_file(self) -> Path:
        """The subnets a start routed away, so that any later stop removes exactly those routes."""
        return self.pid_dir / f"{self.namespace}.subnets"

    def with_recorded_subnets(self) -> VmHost:
        try:
            recorded = self.subnets_file.read_text().split()
        except OSError:
            return self
        subnets = tuple(dict.fromkeys([*self.subnets, *recorded]))
        return VmHost(self.namespace, subnets, self.pid_dir, self.labs, self.hide_kvm)

    def setup_commands(self) -> list[list[str]]:
        commands = [["ip", "netns", "add", self.namespace],
                    ["ip", "-n", self.namespace, "link", "set", "lo", "up"]]
        commands += [["ip", "route", "replace", "unreachable", subnet] for subnet in self.subnets]
        for daemon in DAEMONS:
            start = [daemon, "--daemon", "--pid-file", str(self.pid_file(daemon))]
            if daemon == "libvirtd" and self.hide_kvm:
                # A mount namespace of its own (inherited by qemu) where /dev/kvm is /dev/null.
                start = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                         "mount --bind /dev/null /dev/kvm && exec " + " ".join(start)]
            commands.append([*self.exec_prefix(), *start])
        return commands

    def teardown_commands(self) -> list[list[str]]:
        return [["ip", "netns", "delete", self.namespace],
                *(["ip", "route", "del", "unreachable", subnet] for subnet in self.subnets)]

    # State -------------------------------------------------------------------------------------
    def namespace_exists(self) -> bool:
        return Path("/run/netns", self.namespace).exists()

    def routes(self) -> list[str]:
        """The unreachable routes of this host's subnets present in the root namespace."""
        out = subprocess.run(["ip", "route", "show", "type", "unreachable"], capture_output=True, text=True).stdout
        present = {line.split()[1] for line in out.splitlines() if len(line.split()) > 1}
        return [s for s in self.subnets if s in present]

    def processes(self) -> list[int]:
        """PIDs of every process inside the namespace (daemons, dnsmasq, qemu ...)."""
        try:
            target = os.stat(f"/run/netns/{self.namespace}").st_ino
        except OSError:
            return []
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and entry.name != str(os.getpid()):
                with suppress(OSError):
                    if os.stat(entry / "ns" / "net").st_ino == target:
                        pids.append(int(entry.name))
        return pids

    def daemon_pid(self, daemon: str) -> int | None:
        """The PID in the daemon's pid file, if that process still runs this daemon."""
        try:
            pid = int(self.pid_file(daemon).read_text().strip())
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except (OSError, ValueError):
            return None
        return pid if comm == daemon else None

    # Lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Make the namespace and start the daemons in it, after clearing a killed run's leftovers."""
        self._require_root()
        for daemon in DAEMONS:
            pid = self.daemon_pid(daemon)
            if pid and pid not in self.processes():
                raise PglabError(
                    f"{daemon} (pid {pid}) already runs outside namespace {self.namespace}; libvirt's state is "
                    f"shared, so only one libvirtd may run. Stop it first (kill {pid}), then run again.")
        if self.namespace_exists() or self.routes() or self.subnets_file.exists():
            self.stop()  # a killed run: its domains, daemons and namespace go before a fresh start
        for pid_file in map(self.pid_file, DAEMONS):
            pid_file.unlink(missing_ok=True)  # stale: their daemons are gone
        self.subnets_file.write_text("\n".join(self.subnets) + "\n")
        try:
            for command in self.setup_commands():
                _run(command)
            self._wait_for_libvirtd()
            for lab in self.labs:  # domains a killed run left defined would block `vagrant up`
                libvirt.purge(lab)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Remove the labs' leftovers, stop every process in the namespace, remove it and the routes."""
        self._require_root()
        if self.subnets_file.exists():
            self.with_recorded_subnets()._stop()
            self.subnets_file.unlink(missing_ok=True)
        else:
            self._stop()

    def _stop(self) -> None:
        if self.namespace_exists():
            if self.daemon_pid("libvirtd") in self.processes():
                for lab in self.labs:
                    libvirt.purge(lab)
                # Networks of any lab live in this namespace only: stop them so dnsmasq exits cleanly.
                for network in _active_networks():
                    libvirt.virsh("net-destroy", network)
            self._kill_all()
            subprocess.run(self.teardown_commands()[0], capture_output=True)
        for command in self.teardown_commands()[1:]:
            subprocess.run(command, capture_output=True)
        for pid_file in map(self.pid_file, DAEMONS):
            if not self.daemon_pid(pid_file.stem):
                pid_file.unlink(missing_ok=True)

    def run(self, command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        """Run ``command`` inside the namespace."""
        return subprocess.run([*self.exec_prefix(), *command], text=True, **kwargs)  # type: ignore[call-overload,no-any-return]  # kwargs are subprocess.run's, passed through

    @contextmanager
    def running(self) -> Iterator[VmHost]:
        self.start()
        try:
            yield self
        finally:
            self.stop()

    # Internals ---------------------------------------------------------------------------------
    def _require_root(self) -> None:
        if os.geteuid() != 0:
            raise PglabError("a private VM host needs root (network namespaces, libvirtd); run it as root.")

    def _wait_for_libvirtd(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if libvirt.available():
                return
            time.sleep(0.5)
        raise PglabError(f"libvirtd did not answer within {timeout:.0f} s; see /var/log/libvirt/ and "
                         f"`ip netns exec {self.namespace} libvirtd -v` for why.")

    def _kill_all(self, timeout: float = 20) -> None:
        """TERM (then KILL) every process of the namespace: the daemons last, qemu and dnsmasq first."""
        daemons = {self.daemon_pid(d) for d in DAEMONS} - {None}
        waves: tuple[Callable[[int], bool], ...] = (lambda p: p not in daemons, lambda p: p in daemons)
        for wave in waves:
            pids = [p for p in self.processes() if wave(p)]
            for sig in (signal.SIGTERM, signal.SIGKILL):
                for pid in pids:
                    with suppress(ProcessLookupError):
                        os.kill(pid, sig)
                deadline = time.monotonic() + timeout / 2
                while time.monotonic() < deadline and any(_alive(p) for p in pids):
                    time.sleep(0.2)
                pids = [p for p in pids if _alive(p)]
                if not pids:
                    break


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _active_networks() -> list[str]:
    done = libvirt.virsh("net-list", "--name")
    return [n.strip() for n in done.stdout.splitlines() if n.strip()]


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise PglabError(f"`{' '.join(command)}` failed (exit {done.returncode}): {done.stderr.strip()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pglab.vm.host", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--subnet", action="append", default=[], help="a lab subnet to keep off the real network")
    parser.add_argument("--lab", action="append", default=[], help="a lab whose libvirt objects stop removes")
    parser.add_argument("--hide-kvm", action="store_true",
                        help="libvirtd does not see /dev/kvm (where it cannot boot guests: vagrant.driver qemu)")
    args = parser.parse_args(argv)
    host = VmHost(subnets=(MANAGEMENT_SUBNET, *args.subnet), labs=tuple(args.lab), hide_kvm=args.hide_kvm)
    try:
        host.start() if args.action == "start" else host.stop()
    except PglabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
