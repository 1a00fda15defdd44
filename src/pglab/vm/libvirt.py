"""What a lab leaves in libvirt, found by the names pglab's Vagrantfile gives it, and removed.

The Vagrantfile names every domain ``pglab-<lab>-<node>`` (disks ``pglab-<lab>-<node>*.img``) and
the lab's networks ``pglab-<lab>`` and ``pglab-<lab>-mgmt``, so a lab's objects can be told
apart from everything else libvirt holds (other labs, the boxes' base volumes).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field

URI = "qemu:///system"
POOL = "default"


def domain_prefix(lab: str) -> str:
    return f"pglab-{lab}-"


def network_names(lab: str) -> list[str]:
    return [f"pglab-{lab}", f"pglab-{lab}-mgmt"]


@dataclass
class Leftovers:
    domains: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.domains or self.volumes or self.networks)

    def __str__(self) -> str:
        parts = [f"{kind} {', '.join(names)}" for kind, names in
                 (("domains", self.domains), ("volumes", self.volumes), ("networks", self.networks)) if names]
        return "; ".join(parts) or "nothing"


def virsh(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["virsh", "-q", "-c", URI, *args], capture_output=True, text=True, check=check,
                          timeout=120)


def available() -> bool:
    """Whether virsh is installed and a libvirtd answers."""
    return shutil.which("virsh") is not None and virsh("uri").returncode == 0


def _names(*args: str) -> list[str]:
    done = virsh(*args)
    return [line.strip() for line in done.stdout.splitlines() if line.strip()] if done.returncode == 0 else []


def leftovers(lab: str) -> Leftovers:
    """The lab's domains, volumes and networks that libvirt still holds."""
    prefix = domain_prefix(lab)
    return Leftovers(
        domains=[d for d in _names("list", "--all", "--name") if d.startswith(prefix)],
        volumes=[v.split()[0] for v in _names("vol-list", POOL) if v.startswith(prefix)],
        networks=[n for n in _names("net-list", "--all", "--name") if n in network_names(lab)],
    )


def purge(lab: str) -> Leftovers:
    """Remove what :func:`leftovers` finds (domains first: they hold the volumes and networks);
    returns what was there."""
    found = leftovers(lab)
    for domain in found.domains:
        virsh("destroy", domain)
        virsh("undefine", domain, "--nvram", "--managed-save", "--snapshots-metadata")
    for volume in found.volumes:
        virsh("vol-delete", volume, "--pool", POOL)
    for network in found.networks:
        virsh("net-destroy", network)
        virsh("net-undefine", network)
    return found
