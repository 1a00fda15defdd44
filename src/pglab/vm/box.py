"""An offline Debian 12 box for the vagrant provider, built on this machine.

VMs of a lab need no internet when their box already holds every package the roles install:
``pglab box build`` debootstraps Debian 12, installs PostgreSQL 15, etcd, HAProxy, the
pg_auto_failover packages and Patroni's venv into it, turns it into a vagrant-libvirt box and
adds it as ``pglab/debian12``. The box has no bootloader: libvirt boots the kernel and initrd
kept beside it in pglab's cache (see :func:`boot_files`), so the Vagrantfile names them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from pglab import paths, stacks
from pglab.components import components
from pglab.errors import PglabError

BOX_NAME = "pglab/debian12"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
DISK_GB = 8
KERNEL_CMDLINE = "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet"
# What debootstrap brings: a bootable, SSH-reachable Debian that Vagrant can configure.
BASE_PACKAGES = [
    "systemd-sysv", "openssh-server", "python3", "sudo", "iproute2", "ifupdown", "isc-dhcp-client",
    "linux-image-cloud-amd64", "initramfs-tools", "netbase", "ca-certificates", "procps", "less",
]
# Every package the lab's roles install on a VM, so `pglab up` needs no mirror: PostgreSQL, each
# registered stack's and component's own, and what the base role needs.
LAB_PACKAGES = [
    "postgresql-15", *(package for spec in stacks.specs() for package in spec.packages),
    *(package for component in components() for package in component.packages),
    "nftables",
    "python3-apt",  # Ansible's apt module imports it (a Consul .deb, packages a user adds)
]
# Virtual environments of the stacks (Patroni's: the path and pip packages its role's defaults name).
VENVS = [venv for spec in stacks.specs() for venv in spec.box_venvs()]
# Units the packages enable that would start with Debian's defaults before the roles run.
DISABLED_UNITS = [*(unit for spec in stacks.specs() for unit in spec.box_disabled_units),
                  *(unit for component in components() for unit in component.box_disabled_units),
                  "postgresql.service"]
VAGRANT_KEY = Path("/usr/share/rubygems-integration/all/gems")

Report = Callable[[str], None]


@dataclass(frozen=True)
class BootFiles:
    kernel: Path
    initrd: Path
    cmd_line: str = KERNEL_CMDLINE


@dataclass(frozen=True)
class BoxResult:
    name: str
    built: bool
    seconds: float
    boot: BootFiles


def cache_dir() -> Path:
    """Where boxes are built and their kernels kept: /var/cache/pglab as root, ~/.cache else."""
    if paths.is_root():
        return Path("/var/cache/pglab/boxes")
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "pglab" / "boxes"


def boot_files(box: str = BOX_NAME) -> BootFiles:
    """The kernel and initrd a VM made from ``box`` boots (the box has no bootloader)."""
    where = cache_dir() / box.replace("/", "-")
    return BootFiles(where / "vmlinuz", where / "initrd.img")


def recipe() -> str:
    """A fingerprint of what goes into the box: a box built from another recipe (an older pglab
    with fewer packages, say) is rebuilt instead of reused."""
    parts = [SUITE, KERNEL_CMDLINE, str(DISK_GB), *BASE_PACKAGES, "|", *LAB_PACKAGES, "|",
             *(package for _path, packages in VENVS for package in packages), "|",
             *DISABLED_UNITS, ADDRESS_SCRIPT, ADDRESS_UNIT]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _recipe_file() -> Path:
    return boot_files().kernel.parent / "recipe"


def is_current() -> bool:
    """Whether the added box was built from this pglab's recipe (and its kernel is at hand)."""
    boot = boot_files()
    stamp = _recipe_file()
    return (boot.kernel.exists() and boot.initrd.exists() and stamp.exists()
            and stamp.read_text().strip() == recipe() and is_added())


def is_local(box: str) -> bool:
    """Whether ``box`` is one pglab builds (and so needs the kernel from :func:`boot_files`)."""
    return box == BOX_NAME


def is_added(box: str = BOX_NAME) -> bool:
    if not shutil.which("vagrant"):
        return False
    listed = subprocess.run(["vagrant", "box", "list", "--machine-readable"], capture_output=True, text=True)
    names = [line.split(",", 3)[3] for line in listed.stdout.splitlines() if ",box-name," in line]
    return box in names


def build(report: Report = print, force: bool = False) -> BoxResult:
    """Build and add the box unless it is there already (with its kernel); returns what was done."""
    started = time.monotonic()
    boot = boot_files()
    if not force and is_current():
        report(f"box {BOX_NAME} is already added; reusing it (--force rebuilds it)")
        return BoxResult(BOX_NAME, False, time.monotonic() - started, boot)
    if not force and is_added():
        report(f"box {BOX_NAME} was built by another version of pglab (other packages); rebuilding it")
    check_tools("debootstrap", "mkfs.ext4", "qemu-img", "vagrant")
    with building() as (work, root):
        make_rootfs(root, work, report)
        boot.kernel.parent.mkdir(parents=True, exist_ok=True)
        _copy_boot_files(root, boot)
        report(f"making the disk image ({DISK_GB} GB, ext4, qcow2)")
        raw = work / "image.raw"
        with raw.open("wb") as f:
            f.truncate(DISK_GB * 1024**3)
        _run(["mkfs.ext4", "-q", "-F", "-L", "root", "-d", str(root), str(raw)], work)
        shutil.rmtree(root)
        _run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(work / "box.img")], work)
        raw.unlink()
        (work / "metadata.json").write_text(
            json.dumps({"provider": "libvirt", "format": "qcow2", "virtual_size": DISK_GB}) + "\n")
        box_file = work / "debian12.box"
        _run(["tar", "-cf", str(box_file), "-C", str(work), "metadata.json", "box.img"], work)
        report(f"vagrant box add {BOX_NAME}")
        _run(["vagrant", "box", "add", "--force", "--name", BOX_NAME, str(box_file)], work)
        _recipe_file().write_text(recipe() + "\n")
        for stale in _stale_base_volumes():
            report(f"removing {stale.name}, the base volume of the box this one replaces")
            stale.unlink()
    return BoxResult(BOX_NAME, True, time.monotonic() - started, boot)


@contextmanager
def building() -> Iterator[tuple[Path, Path]]:
    """A fresh work directory and the root filesystem's place in it; whatever a build leaves
    mounted is unmounted when it fails, and the work directory goes when it succeeds."""
    work = cache_dir() / "build"
    _unmount_all(work / "rootfs")
    shutil.rmtree(work, ignore_errors=True)  # what a killed build left
    work.mkdir(parents=True)
    try:
        yield work, work / "rootfs"
    except BaseException:
        _unmount_all(work / "rootfs")
        raise
    shutil.rmtree(work, ignore_errors=True)


def make_rootfs(root: Path, work: Path, report: Report) -> None:
    """The one recipe every output of the box is made from (the VM disk, the container image):
    Debian 12 with systemd, sshd, the lab's packages and venvs, the SSH user and the units."""
    report(f"debootstrap {SUITE} into {root} (about 2 minutes)")
    _run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", SUITE,
          str(root), MIRROR], work)
    with _mounted(root):
        report("installing PostgreSQL 15, etcd, HAProxy, pg_auto_failover into the image")
        _prepare_services(root)
        chroot(root, ["apt-get", "install", "-y", "-q", "--no-install-recommends", *LAB_PACKAGES], work)
        for venv, pip_packages in VENVS:
            report(f"installing {', '.join(pip_packages)} into {venv} (pip)")
            # Wheels made by this machine's pip (its proxy and CA settings apply), installed
            # offline: the image's Python is the same 3.11.
            wheels = root / "tmp" / "wheels"
            _run([sys.executable, "-m", "pip", "wheel", "-q", "-w", str(wheels), *pip_packages], work)
            chroot(root, ["python3", "-m", "venv", venv], work)
            chroot(root, [f"{venv}/bin/pip", "install", "-q", "--no-index", "--find-links=/tmp/wheels",
                           "--disable-pip-version-check", *pip_packages], work)
            shutil.rmtree(wheels)
        report("adding the SSH user, SSH and the network configuration")
        _configure_guest(root, work)
        chroot(root, ["apt-get", "clean"], work)


def remove(report: Report = print) -> None:
    """Remove the box from Vagrant and its kernel from the cache."""
    if is_added():
        subprocess.run(["vagrant", "box", "remove", "--force", "--all", BOX_NAME], check=False,
                       capture_output=True)
    shutil.rmtree(boot_files().kernel.parent, ignore_errors=True)
    for stale in _stale_base_volumes():
        stale.unlink()
    report(f"removed box {BOX_NAME}")


# vagrant-libvirt uploads a box into libvirt's default pool once, as a base volume named after the
# box and the time it was added; VMs' disks are overlays on it. A rebuilt box gets a new volume and
# the old one (~800 MB) would stay forever. The new box has no volume until a VM is made from it,
# so every base volume there is stale: they go when no lab's disk is left to need them.
POOL_DIR = Path("/var/lib/libvirt/images")
BASE_VOLUME_GLOB = BOX_NAME.replace("/", "-VAGRANTSLASH-") + "_vagrant_box_image_*"


def _stale_base_volumes() -> list[Path]:
    bases = sorted(POOL_DIR.glob(BASE_VOLUME_GLOB))
    lab_disks = [p for p in POOL_DIR.glob("pglab-*") if p not in bases]
    if lab_disks:  # a lab's VM may still be an overlay on one of them
        return []
    return bases


# Steps ------------------------------------------------------------------------------------------

def check_tools(*tools: str) -> None:
    if not paths.is_root():
        raise PglabError("building a box needs root (debootstrap, chroot); run `pglab box build` as root.")
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        packages = {"mkfs.ext4": "e2fsprogs", "qemu-img": "qemu-utils"}
        raise PglabError(f"building a box needs {', '.join(missing)}; install them "
                         f"(apt-get install {' '.join(packages.get(t, t) for t in missing)}) and run again.")


def _prepare_services(root: Path) -> None:
    # Nothing starts inside the chroot, and PostgreSQL gets no default cluster: Patroni makes one.
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    conf = root / "etc/postgresql-common/createcluster.d"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "pglab.conf").write_text("create_main_cluster = false\n")
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")


def _configure_guest(root: Path, work: Path) -> None:
    (root / "usr/sbin/policy-rc.d").unlink()
    chroot(root, ["useradd", "--create-home", "--shell", "/bin/bash", "vagrant"], work)
    ssh_dir = root / "home/vagrant/.ssh"
    ssh_dir.mkdir(mode=0o700)
    # VMs' first SSH login uses Vagrant's well-known key; containers get a key of their lab's instead.
    (ssh_dir / "authorized_keys").write_text(_insecure_key() if shutil.which("vagrant") else "")
    (ssh_dir / "authorized_keys").chmod(0o600)
    chroot(root, ["chown", "-R", "vagrant:vagrant", "/home/vagrant/.ssh"], work)
    sudoers = root / "etc/sudoers.d/vagrant"
    sudoers.write_text("vagrant ALL=(ALL) NOPASSWD: ALL\nDefaults:vagrant !requiretty\n")
    sudoers.chmod(0o440)
    (root / "etc/hostname").write_text("debian12\n")
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n127.0.1.1 debian12\n")
    (root / "etc/fstab").write_text("/dev/vda / ext4 defaults,noatime 0 1\n")
    (root / "etc/network/interfaces").write_text(
        "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n\n"
        "allow-hotplug eth0\niface eth0 inet dhcp\n")
    _boot_time_identity(root, work)
    # SSH answers fast without reverse DNS (the VMs have no resolver worth asking).
    (root / "etc/ssh/sshd_config.d/pglab.conf").write_text("UseDNS no\n")
    (root / "etc/resolv.conf").write_text("")
    chroot(root, ["systemctl", "disable", *DISABLED_UNITS], work)
    # Every VM would share these host keys: the first boot makes its own instead.
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    unit = root / "etc/systemd/system/pglab-ssh-host-keys.service"
    unit.write_text(
        "[Unit]\nDescription=SSH host keys of this VM\nBefore=ssh.service\n"
        "ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key\n\n"
        "[Service]\nType=oneshot\n"
        # Only the key types that are quick to make: RSA takes minutes under emulation.
        + "".join(f"ExecStart=/usr/bin/ssh-keygen -q -t {kind} -N '' -f /etc/ssh/ssh_host_{kind}_key\n"
                  for kind in ("ed25519", "ecdsa"))
        + "\n"
        "[Install]\nWantedBy=multi-user.target\n")
    chroot(root, ["systemctl", "enable", "pglab-ssh-host-keys.service"], work)
    for lists in (root / "var/lib/apt/lists").glob("*_dists_*"):
        lists.unlink()


# Vagrant would set each VM's name and lab address over SSH (minutes under emulation); the kernel
# command line the Vagrantfile gives each VM carries them instead: systemd.hostname=NAME sets the
# name, and this script the address (pglab.address=ADDRESS/PREFIX on eth1, the private network).
ADDRESS_SCRIPT = """#!/bin/sh
set -e
for word in $(cat /proc/cmdline); do
  case "$word" in pglab.address=*) address="${word#pglab.address=}" ;; esac
done
[ -n "$address" ] || exit 0
ip link set eth1 up
ip address replace "$address" dev eth1
sed -i "s/^127.0.1.1 .*/127.0.1.1 $(hostname)/" /etc/hosts
"""
ADDRESS_UNIT = """[Unit]
Description=The lab address from the kernel command line (pglab.address=)
ConditionKernelCommandLine=pglab.address
Wants=sys-subsystem-net-devices-eth1.device
After=sys-subsystem-net-devices-eth1.device
Before=network-online.target ssh.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/pglab-address

[Install]
WantedBy=multi-user.target
"""


def _boot_time_identity(root: Path, work: Path) -> None:
    script = root / "usr/local/sbin/pglab-address"
    script.write_text(ADDRESS_SCRIPT)
    script.chmod(0o755)
    (root / "etc/systemd/system/pglab-address.service").write_text(ADDRESS_UNIT)
    chroot(root, ["systemctl", "enable", "pglab-address.service"], work)


def _insecure_key() -> str:
    keys = sorted(VAGRANT_KEY.glob("vagrant-*/keys/vagrant.pub"))
    if not keys:
        raise PglabError(f"Vagrant's insecure public key was not found under {VAGRANT_KEY}; install vagrant.")
    return keys[-1].read_text()


def _copy_boot_files(root: Path, boot: BootFiles) -> None:
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if not kernels:
        raise PglabError(f"no kernel in {root / 'boot'}: linux-image-cloud-amd64 did not install")
    version = kernels[-1].name.removeprefix("vmlinuz-")
    shutil.copy(kernels[-1], boot.kernel)
    shutil.copy(root / "boot" / f"initrd.img-{version}", boot.initrd)


# Helpers ----------------------------------------------------------------------------------------

def _run(command: list[str], work: Path) -> None:
    log = work.parent / "build.log"
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              env={**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8"})
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise PglabError(f"building box {BOX_NAME}: `{' '.join(command[:3])} ...` failed "
                         f"(exit {done.returncode}). Last lines of {log}:\n{tail}")


def chroot(root: Path, command: list[str], work: Path) -> None:
    """``command`` run inside the root filesystem being built (its output in the build log)."""
    _run(["chroot", str(root), *command], work)


@contextmanager
def _mounted(root: Path) -> Iterator[None]:
    """/proc, /sys and /dev in the chroot while packages install (their scripts expect them)."""
    for fs, args in (("proc", ["-t", "proc", "proc"]), ("sys", ["-t", "sysfs", "sys"]),
                     ("dev", ["--bind", "/dev"]), ("dev/pts", ["--bind", "/dev/pts"])):
        subprocess.run(["mount", *args, str(root / fs)], check=True)
    try:
        yield
    finally:
        _unmount_all(root)


def _unmount_all(root: Path) -> None:
    for fs in ("dev/pts", "dev", "sys", "proc"):
        with suppress(OSError):
            subprocess.run(["umount", "-l", str(root / fs)], check=False, capture_output=True)
