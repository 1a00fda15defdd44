"""A lab's private network namespace, and pglab's own process moving into it and back.

The container provider keeps every packet of a lab inside a namespace it makes: podman's bridge,
the containers' addresses and every connection pglab opens (SSH for Ansible, PostgreSQL, HAProxy)
live there, so nothing reaches the real network. Rather than run each command through a wrapper,
pglab's process joins the namespace (``setns``); whatever it starts afterwards (podman, ssh,
ansible) is born inside. ``ip netns exec`` is not used: it remounts /sys, which hides the cgroup
hierarchies podman needs.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
from pathlib import Path

from pglab.errors import PglabError

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
# The namespace pglab started in, kept open so that it can go back (one per process).
_home: int | None = None


def path(name: str) -> Path:
    return NETNS_DIR / name


def exists(name: str) -> bool:
    return path(name).exists()


def current() -> int:
    """The inode of the network namespace this process is in."""
    return os.stat("/proc/self/ns/net").st_ino


def inside(name: str) -> bool:
    try:
        return os.stat(path(name)).st_ino == current()
    except OSError:
        return False


def create(name: str) -> None:
    """Make the namespace (its loopback up) unless it exists."""
    if exists(name):
        return
    _run(["ip", "netns", "add", name])
    _run(["ip", "-n", name, "link", "set", "lo", "up"])


def enter(name: str) -> None:
    """Move this process (and all it starts from now on) into the namespace."""
    global _home
    if inside(name):
        return
    if _home is None:
        _home = os.open("/proc/self/ns/net", os.O_RDONLY)
    fd = os.open(path(name), os.O_RDONLY)
    try:
        _setns(fd)
    finally:
        os.close(fd)


def leave() -> None:
    """Back to the namespace pglab started in (nothing when it never entered one)."""
    if _home is not None:
        _setns(_home)


def delete(name: str) -> None:
    """Remove the namespace (leaving it first when this process is inside)."""
    if inside(name):
        leave()
    if exists(name):
        _run(["ip", "netns", "delete", name])


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise PglabError(f"cannot enter a network namespace: {os.strerror(errno)} (pglab needs root for it)")


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise PglabError(f"`{' '.join(command)}` failed (exit {done.returncode}): {done.stderr.strip()}")
