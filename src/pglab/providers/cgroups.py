"""One cgroup (v2) per node of a local lab, so a fault hits every process of the node at once.

Each supervised program starts through ``pglab-exec`` (written by the local provider), which
joins the node's cgroup as root before dropping to the service user; every child, including a
postmaster that Patroni double-forks away from itself, stays in it. Freezing the cgroup freezes
them all in one write (``cgroup.freeze``), killing it kills them all (``cgroup.kill``), and
nftables can match their sockets (``socket cgroupv2``) to cut the node off the network.

cgroup v2 is mounted at /sys/fs/cgroup on most machines, and beside the v1 hierarchies (at
/sys/fs/cgroup/unified) on hybrid ones; either works. Without it, or without root, the provider
falls back to signalling the node's processes one by one.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

NFT_CGROUP_BASE = Path("/sys/fs/cgroup")  # nftables resolves `socket cgroupv2` paths below this


def v2_root() -> Path | None:
    """Where the cgroup v2 hierarchy is mounted, if it is and this process may manage it."""
    if os.geteuid() != 0:
        return None
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    for line in mounts:
        fields = line.split()
        if len(fields) > 2 and fields[2] == "cgroup2":
            root = Path(fields[1])
            if (root / "cgroup.procs").exists():
                return root
    return None


class NodeCgroup:
    """The cgroup of one node: ``<v2 root>/pglab/<lab directory name>/<node>``."""

    def __init__(self, root: Path, lab_key: str, node: str) -> None:
        self.root = root
        self.path = root / "pglab" / lab_key / node

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    def exists(self) -> bool:
        return (self.path / "cgroup.procs").exists()

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def freeze(self) -> None:
        (self.path / "cgroup.freeze").write_text("1")

    def thaw(self) -> None:
        if self.exists():
            (self.path / "cgroup.freeze").write_text("0")

    def frozen(self) -> bool:
        try:
            events = (self.path / "cgroup.events").read_text()
        except OSError:
            return False
        return "frozen 1" in events.splitlines()

    def kill(self) -> None:
        """SIGKILL to every process of the cgroup, atomically (``cgroup.kill``, Linux 5.14)."""
        kill_file = self.path / "cgroup.kill"
        if kill_file.exists():
            kill_file.write_text("1")
            return
        for pid in self.pids():  # older kernels: freeze first so nothing forks in between
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)

    def remove(self) -> None:
        """Remove the cgroup (empty by then), and its parents (the lab, pglab) once empty too."""
        for directory in (self.path, self.path.parent, self.path.parent.parent):
            with contextlib.suppress(OSError):
                directory.rmdir()

    def nft_match(self) -> str:
        """The nftables expression matching sockets of this cgroup's processes."""
        level = len(self.path.relative_to(self.root).parts)
        return f'socket cgroupv2 level {level} "{os.path.relpath(self.path, NFT_CGROUP_BASE)}"'
