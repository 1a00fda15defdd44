"""The offline Debian 12 image for systemd containers (podman), from the box's own recipe.

``pglab box build --format oci`` makes the same root filesystem as the VM box
(:func:`pglab.vm.box.make_rootfs`: debootstrap, the lab's packages, sshd, the units) and hands it
to ``podman import`` instead of turning it into a disk. The image carries the recipe's
fingerprint as a label, so an image from another recipe is rebuilt rather than reused.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pglab import paths
from pglab.errors import PglabError
from pglab.vm import box

IMAGE_NAME = "localhost/pglab/debian12"
RECIPE_LABEL = "pglab.recipe"
# What podman runs when a container starts: systemd, which starts sshd and the lab's units.
INIT = "/sbin/init"
# An ordinary administrator with passwordless sudo, as a server a user already has would have one:
# the hosts provider's test logs in as this user. (The VM box's vagrant user stays, for the podman
# provider, which connects as the box's user.)
ADMIN_USER = "admin"


@dataclass(frozen=True)
class ImageResult:
    name: str
    built: bool
    seconds: float


def import_changes(recipe: str) -> list[str]:
    """`podman import --change` instructions: how a container of the image starts, and its recipe."""
    return [f"CMD [\"{INIT}\"]", f"LABEL {RECIPE_LABEL}={recipe}", "STOPSIGNAL SIGRTMIN+3"]


def recipe() -> str:
    """The box's recipe and what the image adds to it (its own fstab, the admin user): an image
    from another recipe is rebuilt."""
    return hashlib.sha256(f"{box.recipe()}|fstab|{ADMIN_USER}".encode()).hexdigest()[:16]


def recipe_of_image(name: str = IMAGE_NAME) -> str | None:
    """The recipe label of the image podman holds under ``name``; None when there is no such image."""
    if not shutil.which("podman"):
        return None
    done = subprocess.run(["podman", "image", "inspect", "--format",
                           f"{{{{ index .Labels \"{RECIPE_LABEL}\" }}}}", name],
                          capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def is_current(name: str = IMAGE_NAME) -> bool:
    return recipe_of_image(name) == recipe()


def can_build() -> bool:
    """Whether this process can build the image (root, with debootstrap and podman at hand)."""
    return paths.is_root() and all(shutil.which(tool) for tool in ("debootstrap", "podman"))


def build(report: box.Report = print, force: bool = False) -> ImageResult:
    """Build and import the image unless podman holds one of this recipe already."""
    started = time.monotonic()
    found = recipe_of_image()
    if not force and found == recipe():
        report(f"image {IMAGE_NAME} is already imported; reusing it (--force rebuilds it)")
        return ImageResult(IMAGE_NAME, False, time.monotonic() - started)
    if not force and found is not None:
        report(f"image {IMAGE_NAME} was built by another version of pglab (other packages); rebuilding it")
    box.check_tools("debootstrap", "podman")
    with box.building() as (work, root):
        box.make_rootfs(root, work, report)
        # The box's fstab names the VM's disk; a container's filesystems are podman's, and a
        # mount unit failing on /dev/vda would leave systemd "degraded" in every container.
        (root / "etc").mkdir(parents=True, exist_ok=True)
        (root / "etc/fstab").write_text("# a container's filesystems are podman's\n")
        add_admin(root, work)
        previous = image_id(IMAGE_NAME)
        report(f"podman import {IMAGE_NAME}")
        podman_import(root, IMAGE_NAME, import_changes(recipe()))
    if previous is not None and previous != image_id(IMAGE_NAME):
        drop_replaced(previous, report)
    return ImageResult(IMAGE_NAME, True, time.monotonic() - started)


def image_id(name: str) -> str | None:
    """The ID of the image podman holds under ``name``; None when there is none."""
    if not shutil.which("podman"):
        return None
    done = subprocess.run(["podman", "image", "inspect", "--format", "{{.Id}}", name], capture_output=True, text=True)
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def drop_replaced(old_id: str, report: box.Report) -> None:
    """Remove the image a rebuild replaced (now untagged, hundreds of MB), unless a container of
    a lab still runs on it: podman then refuses, and the image stays until that lab is gone."""
    done = subprocess.run(["podman", "image", "rm", old_id], capture_output=True, text=True)
    if done.returncode == 0:
        report(f"removed the image this one replaced ({old_id[:12]})")
    else:
        report(f"kept the image this one replaced ({old_id[:12]}): a container still uses it; "
               f"`podman image rm {old_id[:12]}` once its lab is destroyed")


def add_admin(root: Path, work: Path) -> None:
    """The image's administrator (:data:`ADMIN_USER`): a home with an empty authorized_keys, for
    whoever starts a container to fill, and passwordless sudo."""
    box.chroot(root, ["useradd", "--create-home", "--shell", "/bin/bash", ADMIN_USER], work)
    ssh_dir = root / "home" / ADMIN_USER / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    (ssh_dir / "authorized_keys").write_text("")
    (ssh_dir / "authorized_keys").chmod(0o600)
    box.chroot(root, ["chown", "-R", f"{ADMIN_USER}:{ADMIN_USER}", f"/home/{ADMIN_USER}/.ssh"], work)
    sudoers = root / "etc" / "sudoers.d" / ADMIN_USER
    sudoers.write_text(f"{ADMIN_USER} ALL=(ALL) NOPASSWD: ALL\n")
    sudoers.chmod(0o440)


def podman_import(root: Path, name: str, changes: list[str]) -> None:
    """`tar -C root -c . | podman import --change ... - name`: the directory becomes the image."""
    tar = subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
    assert tar.stdout is not None
    with tar.stdout:
        imported = subprocess.run(["podman", "import", *(a for c in changes for a in ("--change", c)), "-", name],
                                  stdin=tar.stdout, capture_output=True, text=True)
    if tar.wait() != 0 or imported.returncode != 0:
        raise PglabError(f"`podman import` of {root} failed (tar exit {tar.returncode}, podman exit "
                         f"{imported.returncode}): {imported.stderr.strip()[-1000:]}")


def remove(report: box.Report = print) -> None:
    if recipe_of_image() is not None:
        subprocess.run(["podman", "image", "rm", "--force", IMAGE_NAME], capture_output=True, check=False)
    report(f"removed image {IMAGE_NAME}")
