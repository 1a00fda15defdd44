"""The one host change containers need on a hybrid cgroup layout: crun refuses to start a container
while the cgroup v2 hierarchy holds a controller beside the v1 hierarchies (``hugetlb`` on some
micro-VM kernels). Mounting a v1 hierarchy for that controller moves it off v2; unmounting the
hierarchy, once no cgroup is left in it, gives it back. pglab makes the change only when asked
(`pglab prepare --cgroups-for-crun`, or the container test, which gives it back at its end)."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

from pglab.errors import PglabError

UNIFIED_CGROUP = Path("/sys/fs/cgroup/unified/cgroup.controllers")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def held_by_v2(controllers_file: Path | None = None) -> list[str]:
    """The controllers the v2 hierarchy holds on a hybrid layout (none on pure v1 or pure v2)."""
    try:
        return (controllers_file or UNIFIED_CGROUP).read_text().split()
    except OSError:
        return []


def blocker(controllers_file: Path | None = None) -> str | None:
    """Why crun would refuse to start a container here, or None."""
    held = held_by_v2(controllers_file)
    if not held:
        return None
    mounts = " && ".join(f"mkdir -p {CGROUP_ROOT / c} && mount -t cgroup -o {c} cgroup {CGROUP_ROOT / c}"
                         for c in held)
    return (f"crun cannot start containers here: the cgroup v2 hierarchy holds {', '.join(held)} beside "
            f"v1 hierarchies. Give each its own v1 hierarchy: `pglab prepare --cgroups-for-crun` does it "
            f"(or by hand: {mounts}); `pglab prepare --give-back-cgroups` undoes it.")


def give_v1_hierarchies(controllers: list[str]) -> None:
    """Mount a v1 hierarchy for each controller (crun then finds none on v2)."""
    for controller in controllers:
        where = CGROUP_ROOT / controller
        where.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "cgroup", "-o", controller, "cgroup", str(where)], check=True)


def v1_hierarchies_given() -> list[str]:
    """Controllers whose v1 hierarchy pglab would give back: mounted at /sys/fs/cgroup/<name> and
    normally on v2 (today only ``hugetlb`` is known to be)."""
    if not UNIFIED_CGROUP.exists():  # no hybrid layout: v1 hierarchies are the host's own
        return []
    return [c for c in ("hugetlb",) if (CGROUP_ROOT / c).is_mount()]


def give_back_to_v2(controller: str, attempts: int = 20) -> bool:
    """Unmount the controller's v1 hierarchy so that the kernel destroys it and v2 holds the
    controller again; whether it did. The kernel destroys it only when no cgroup is left at
    unmount time (podman's ``libpod_parent`` ...), and a removed cgroup lingers a moment: remove
    them, wait, unmount, and mount again to retry."""
    where = CGROUP_ROOT / controller
    for _ in range(attempts):
        if not where.is_mount():
            where.mkdir(exist_ok=True)
            subprocess.run(["mount", "-t", "cgroup", "-o", controller, "cgroup", str(where)], check=True)
        for child in sorted((p for p in where.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                child.rmdir()
        time.sleep(1)
        subprocess.run(["umount", str(where)], check=False)
        time.sleep(0.5)
        if controller in held_by_v2():
            break
    if where.exists() and not where.is_mount():
        with contextlib.suppress(OSError):
            where.rmdir()
    return controller in held_by_v2()


def change(give: bool) -> str:
    """`pglab prepare --cgroups-for-crun` (give) or `--give-back-cgroups`: make or undo the change;
    what was done, in words."""
    if give:
        held = held_by_v2()
        if not held:
            return "nothing to change: the cgroup v2 hierarchy holds no controller that crun would refuse"
        give_v1_hierarchies(held)
        return (f"mounted a cgroup v1 hierarchy for {', '.join(held)}; "
                "`pglab prepare --give-back-cgroups` gives it back to v2")
    given = v1_hierarchies_given()
    if not given:
        return "nothing to give back: no v1 hierarchy of pglab's is mounted"
    lingering = [c for c in given if not give_back_to_v2(c)]
    if lingering:
        raise PglabError(f"the cgroup v1 hierarchy of {', '.join(lingering)} is still in use (a container "
                         "still runs?): stop the containers (`pglab destroy`), then run this again")
    return f"gave {', '.join(given)} back to the cgroup v2 hierarchy"
