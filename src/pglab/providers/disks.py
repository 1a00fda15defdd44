"""A data node's own small filesystem on the local provider: a sparse image, loop-mounted where the
node keeps its PostgreSQL data, so that filling it (``disk-full``) never touches the host's disk and
throttling its device (``slow-disk``) slows this node alone.

The image is sparse: it costs the host only what PostgreSQL writes into it. The ballast that fills it
is allocated (``fallocate``), not written, so a full node costs the host nothing more either. Making
one needs root and loop devices; elsewhere the node keeps plain directories.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from pathlib import Path

from pglab.errors import PglabError

BALLAST = "pglab-ballast"  # the files that fill the filesystem, at its top: BALLAST, BALLAST.1 ...
TAIL = 16 * 2**20  # allocated in one go up to this much short of full; the rest written until ENOSPC
CHUNK = 2**20


def size_bytes(text: str) -> int:
    """``512M`` or ``4G`` in bytes (binary units)."""
    return int(text[:-1]) * {"M": 2**20, "G": 2**30}[text[-1].upper()]


def cannot_make() -> str | None:
    """Why this machine cannot give a node a filesystem of its own, or None when it can."""
    if os.geteuid() != 0:
        return "it needs root"
    missing = [tool for tool in ("losetup", "mkfs.ext4", "mount", "umount") if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} missing"
    if not Path("/dev/loop-control").exists():
        return "no loop devices here (/dev/loop-control)"
    return None


class NoLoopDevice(PglabError):
    """Every loop device is taken (there are often only eight, and other labs may hold some)."""


class NodeDisk:
    """The image ``image`` mounted at ``mount_point`` (the directory holding the node's PGDATA)."""

    def __init__(self, image: Path, mount_point: Path) -> None:
        self.image = image
        self.mount_point = mount_point

    def make(self, size: int) -> None:
        """Create, format and mount the image (idempotent: a mounted disk is left as it is)."""
        if self.mounted():
            return
        self.mount_point.mkdir(parents=True, exist_ok=True)
        if any(self.mount_point.iterdir()):
            raise PglabError(f"{self.mount_point} already holds files: cannot mount the node's own disk over them")
        if not self.image.exists():
            self.image.parent.mkdir(parents=True, exist_ok=True)
            with self.image.open("wb") as f:
                f.truncate(size)  # sparse
            # No blocks reserved for root: the node fills up as PostgreSQL would see it.
            _run(["mkfs.ext4", "-q", "-F", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1",
                  str(self.image)])
        try:
            device = _run(["losetup", "--find", "--show", str(self.image)]).strip()
        except PglabError as exc:
            raise NoLoopDevice(f"no free loop device: {exc}") from exc
        try:
            _run(["mount", device, str(self.mount_point)])
        except PglabError:
            _run(["losetup", "--detach", device], check=False)
            raise

    def occupied(self) -> bool:
        """Whether the mount point holds files of a plain directory (nothing mounted there)."""
        return not self.mounted() and self.mount_point.is_dir() and any(self.mount_point.iterdir())

    def mounted(self) -> bool:
        return self.device() is not None

    def device(self) -> str | None:
        """The mounted filesystem's device as ``MAJOR:MINOR``, or None when nothing is mounted there."""
        return _mounted_devices().get(str(self.mount_point))

    def remove(self) -> bool:
        """Unmount, detach and delete the image; True when there was one."""
        found = self.image.exists() or self.mounted()
        if self.mounted():
            _run(["umount", str(self.mount_point)], check=False)
            if self.mounted():  # something still holds it open: let the kernel finish it later
                _run(["umount", "--lazy", str(self.mount_point)])
        for line in _run(["losetup", "--associated", str(self.image)], check=False).splitlines():
            _run(["losetup", "--detach", line.split(":", 1)[0]], check=False)
        with contextlib.suppress(FileNotFoundError):
            self.image.unlink()
        return found

    # Filling ---------------------------------------------------------------------------------------
    def fill(self) -> int:
        """Fill the filesystem with ballast until the kernel says it is full (ENOSPC); the bytes added."""
        if not self.mounted():
            raise PglabError(f"{self.mount_point} is no filesystem of its own: filling it would fill the host")
        free = _available(self.mount_point)
        added = 0
        first = self.mount_point / BALLAST
        if free > TAIL:
            with first.open("wb") as f:
                os.posix_fallocate(f.fileno(), 0, free - TAIL)
            added += free - TAIL
        # The last bytes written in small files until none fits: each write may take a block the
        # allocation's bookkeeping would have needed.
        for number in range(1, 10_000):
            written = _write_until_full(self.mount_point / f"{BALLAST}.{number}")
            added += written
            if written == 0:
                break
        return added

    def ballast(self) -> list[Path]:
        return sorted(self.mount_point.glob(f"{BALLAST}*")) if self.mount_point.is_dir() else []

    def empty(self) -> int:
        """Remove the ballast; the bytes freed."""
        freed = 0
        for path in self.ballast():
            with contextlib.suppress(FileNotFoundError):
                freed += path.stat().st_size
                path.unlink()
        return freed


def _write_until_full(path: Path) -> int:
    written = 0
    block = b"\0" * CHUNK
    try:
        with path.open("wb") as f:
            while True:
                written += f.write(block[: max(4096, min(CHUNK, _available(path.parent)))])
                f.flush()
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    return written


def _available(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _mounted_devices() -> dict[str, str]:
    """Mount point -> ``MAJOR:MINOR`` of every mounted filesystem."""
    found: dict[str, str] = {}
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) > 4:
            found[fields[4].replace("\\040", " ")] = fields[2]
    return found


def _run(argv: list[str], check: bool = True) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check and done.returncode != 0:
        raise PglabError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done.stdout
