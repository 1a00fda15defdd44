"""Resource limits on a local node's processes, one cgroup controller at a time: its disk's I/O
(``io``, v1 ``blkio``), its CPU time (``cpu``) and its PostgreSQL's memory (``memory``).

Each controller is used from cgroup v2 where the host lists it in the v2 root's
``cgroup.controllers``, else from its own v1 hierarchy (/sys/fs/cgroup/blkio ...), else not at all.
A node's group in a controller is ``pglab/<lab>/<node>`` of that hierarchy: on v2 the node's own
cgroup (:mod:`pglab.providers.cgroups`), on v1 a group ``pglab-exec`` joins beside it. PostgreSQL's
memory is limited in a sibling group, ``<node>.postgres``, the postmaster and its children moved in
for the drill and back after it: a v2 cgroup with processes of its own cannot hold a limited child.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from pglab.errors import PglabError

# Controller (v2 name) -> its v1 hierarchy's name.
V1_NAMES = {"io": "blkio", "cpu": "cpu", "memory": "memory"}
CPU_PERIOD_US = 100_000


def hierarchy(controller: str, v2_root: Path | None, mounts: str | None = None) -> tuple[Path, bool] | None:
    """Where ``controller`` is managed: (the hierarchy's root, whether it is v2), or None."""
    if v2_root is not None:
        with contextlib.suppress(OSError):
            if controller in (v2_root / "cgroup.controllers").read_text().split():
                return v2_root, True
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text()
        except OSError:
            return None
    v1 = V1_NAMES[controller]
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[2] == "cgroup" and v1 in fields[3].split(","):
            return Path(fields[1]), False
    return None


@dataclass(frozen=True)
class ControllerGroup:
    """A node's group in one controller's hierarchy."""

    controller: str
    root: Path
    v2: bool
    lab_key: str
    node: str

    @property
    def path(self) -> Path:
        return self.root / "pglab" / self.lab_key / self.node

    @property
    def postgres_path(self) -> Path:
        """The group that holds only the node's PostgreSQL while its memory is limited."""
        return self.root / "pglab" / self.lab_key / f"{self.node}.postgres"

    def create(self) -> None:
        """Make the node's group (v1; v2's is the node's cgroup) and let v2 limit its children."""
        if self.v2:
            self._enable_v2(self.path.parent)
        self.path.mkdir(parents=True, exist_ok=True)

    def _enable_v2(self, parent: Path) -> None:
        """Turn the controller on from the v2 root down to ``parent`` (each holds no process)."""
        chain = [parent, *parent.parents]
        for directory in reversed([d for d in chain if d == self.root or self.root in d.parents]):
            directory.mkdir(exist_ok=True)
            control = directory / "cgroup.subtree_control"
            if self.controller not in control.read_text().split():
                try:
                    control.write_text(f"+{self.controller}")
                except OSError as exc:
                    raise PglabError(f"cannot enable the {self.controller} controller in {directory}: {exc}") from exc

    def join(self, pids: list[int], path: Path | None = None) -> None:
        """Move processes into the node's group (or ``path``); gone ones are skipped."""
        procs = (path or self.path) / "cgroup.procs"
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, FileNotFoundError):
                try:
                    procs.write_text(str(pid))
                except OSError as exc:
                    if exc.errno != 3:  # ESRCH: it exited meanwhile
                        raise

    def pids(self, path: Path | None = None) -> list[int]:
        try:
            return [int(p) for p in ((path or self.path) / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    # Limits ------------------------------------------------------------------------------------------
    def throttle_io(self, device: str, iops: int | None, bps: int | None) -> None:
        """Reads and writes of the node's processes on ``device`` (MAJOR:MINOR) limited."""
        if self.v2:
            parts = [f"{k}={v}" for k, v in (("riops", iops), ("wiops", iops), ("rbps", bps), ("wbps", bps))
                     if v is not None]
            self._write(self.path / "io.max", f"{device} {' '.join(parts)}")
            return
        for what, value in (("iops", iops), ("bps", bps)):
            if value is not None:
                for direction in ("read", "write"):
                    self._write(self.path / f"blkio.throttle.{direction}_{what}_device", f"{device} {value}")

    def unthrottle_io(self, device: str | None = None) -> bool:
        """Every I/O limit of the group lifted (``device``: only that one); True when one was set."""
        lifted = False
        if self.v2:
            for line in _lines(self.path / "io.max"):
                dev = line.split()[0]
                if device in (None, dev) and "=" in line and any(not v.endswith("=max") for v in line.split()[1:]):
                    self._write(self.path / "io.max", f"{dev} riops=max wiops=max rbps=max wbps=max")
                    lifted = True
            return lifted
        for what in ("iops", "bps"):
            for direction in ("read", "write"):
                limit = self.path / f"blkio.throttle.{direction}_{what}_device"
                for line in _lines(limit):
                    dev = line.split()[0]
                    if device in (None, dev):
                        self._write(limit, f"{dev} 0")
                        lifted = True
        return lifted

    def limit_cpu(self, percent: float) -> None:
        quota = max(1000, round(CPU_PERIOD_US * percent / 100))
        if self.v2:
            self._write(self.path / "cpu.max", f"{quota} {CPU_PERIOD_US}")
        else:
            self._write(self.path / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            self._write(self.path / "cpu.cfs_quota_us", str(quota))

    def unlimit_cpu(self) -> bool:
        if self.v2:
            current = _lines(self.path / "cpu.max")
            if current and not current[0].startswith("max"):
                self._write(self.path / "cpu.max", f"max {CPU_PERIOD_US}")
                return True
            return False
        current = _lines(self.path / "cpu.cfs_quota_us")
        if current and current[0] != "-1":
            self._write(self.path / "cpu.cfs_quota_us", "-1")
            return True
        return False

    def limit_postgres_memory(self, megabytes: int, pids: list[int]) -> None:
        """The given processes (a postmaster and its children) moved into a group of their own
        limited to ``megabytes`` (without swap)."""
        group = self.postgres_path
        if self.v2:
            self._enable_v2(group.parent)
        group.mkdir(parents=True, exist_ok=True)
        limit = str(megabytes * 2**20)
        if self.v2:
            self._write(group / "memory.max", limit)
            with contextlib.suppress(OSError):
                self._write(group / "memory.swap.max", "0")
        else:
            self._write(group / "memory.limit_in_bytes", limit)
            with contextlib.suppress(OSError):  # only with swap accounting
                self._write(group / "memory.memsw.limit_in_bytes", limit)
        for _ in range(5):  # children forked while moving land outside: move until none is left behind
            self.join(pids, group)
            if set(pids) <= set(self.pids(group)):
                break

    def oom_kills(self) -> int:
        """Processes the OOM killer ended in the PostgreSQL group so far."""
        group = self.postgres_path
        for name, key in (("memory.events", "oom_kill"), ("memory.oom_control", "oom_kill")):
            for line in _lines(group / name):
                fields = line.split()
                if len(fields) == 2 and fields[0] == key:
                    return int(fields[1])
        return 0

    def unlimit_postgres_memory(self) -> bool:
        """Move PostgreSQL's processes back into the node's group and remove the limited one."""
        group = self.postgres_path
        if not group.exists():
            return False
        for _ in range(20):
            pids = self.pids(group)
            if not pids:
                break
            self.join(pids)
        with contextlib.suppress(OSError):
            group.rmdir()
        return True

    def remove(self) -> None:
        """The node's group (v1 only; v2's is the node's cgroup), then the lab's and pglab's once empty."""
        self.unlimit_postgres_memory()
        directories = [self.path.parent, self.path.parent.parent]
        if not self.v2:
            directories.insert(0, self.path)
        for directory in directories:
            with contextlib.suppress(OSError):
                directory.rmdir()

    def _write(self, path: Path, text: str) -> None:
        try:
            path.write_text(text)
        except OSError as exc:
            raise PglabError(f"cannot write {text!r} to {path}: {exc.strerror or exc}") from exc


def _lines(path: Path) -> list[str]:
    try:
        return [line for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        return []
