"""The container path, end to end: the offline image, `pglab up` of the compact Patroni lab on
systemd containers under podman, `pglab verify`, a second `up` that changes nothing, a hang and a
crash of a whole node, `pglab destroy` leaving nothing.

The lab's network lives in the namespace the provider makes (``pglab-<lab>``), which pglab's
process joins: no packet goes to the lab's subnet from this machine's own namespace. Where crun
needs a cgroup v1 hierarchy mounted for a controller the v2 hierarchy holds, the test mounts it
and unmounts it at the end. The summary line (``containers-e2e: ...``) is printed and written to
``$PGLAB_E2E_SUMMARY`` for the caller.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pglab import catalog
from pglab.providers import crun_cgroups, netns
from pglab.providers.podman import LAB_LABEL
from pglab.vm import image
from tests.e2e import summary

LAB = "ctre2e"
COMPACT = f"""\
name: {LAB}
provider: podman
postgres: {{scope: {LAB}}}
network: {{subnet: 10.100.0.0/24}}
backup: {{enabled: true}}
nodes:
  - {{name: dcs, address: 10.100.0.11, roles: [dcs, haproxy, backup]}}
  - {{name: pg1, address: 10.100.0.12, roles: [postgres]}}
  - {{name: pg2, address: 10.100.0.13, roles: [postgres]}}
"""
PGLAB = [sys.executable, "-m", "pglab.cli"]


def topology_text() -> str:
    """The lab under test: the compact Patroni lab, or `pglab init`'s pg_auto_failover lab
    (``PGLAB_E2E_STACK=pg_auto_failover``: monitor + two data nodes)."""
    if os.environ.get("PGLAB_E2E_STACK", "patroni") == "pg_auto_failover":
        return catalog.default_yaml(name=LAB, provider="podman", stack="pg_auto_failover")
    return COMPACT

OPT_IN = "container tests are opt-in: PGLAB_E2E_CONTAINERS=1 (./bootstrap test-containers)"
pytestmark = pytest.mark.skipif(os.environ.get("PGLAB_E2E_CONTAINERS") != "1", reason=OPT_IN)


def pglab(*args: str, lab_file: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """One pglab command; its stderr (progress) passes through."""
    done = subprocess.run([*PGLAB, *args, "-f", str(lab_file)], stdout=subprocess.PIPE, stderr=None, text=True)
    print(done.stdout[-3000:], flush=True)
    if check:
        assert done.returncode == 0, f"pglab {' '.join(args)} failed (exit {done.returncode}):\n{done.stdout[-3000:]}"
    return done


@pytest.fixture
def cgroups_for_crun() -> Iterator[list[str]]:
    """A v1 hierarchy for each controller the v2 hierarchy holds (crun refuses hybrid mode
    otherwise), given back to v2 at the end whatever happens: other suites on this machine read
    cgroups."""
    held = crun_cgroups.held_by_v2()
    try:
        crun_cgroups.give_v1_hierarchies(held)
        yield held
    finally:
        lost = [c for c in held if not crun_cgroups.give_back_to_v2(c)]
        assert not lost, f"the cgroup v1 hierarchy of {lost} outlived its unmount: the v2 hierarchy lacks it"


def leftovers(lab: str = LAB) -> list[str]:
    """What of the podman lab ``lab`` is left: its containers, network and namespace."""
    found = []
    ps = subprocess.run(["podman", "ps", "--all", "--filter", f"label={LAB_LABEL}={lab}", "--format", "{{.Names}}"],
                        capture_output=True, text=True).stdout.split()
    found += [f"container {name}" for name in ps]
    if subprocess.run(["podman", "network", "exists", f"pglab-{lab}"]).returncode == 0:
        found.append(f"network pglab-{lab}")
    if netns.exists(f"pglab-{lab}"):
        found.append(f"namespace pglab-{lab}")
    return found


def test_container_lab_up_verify_converge_drill_destroy(tmp_path: Path, cgroups_for_crun: list[str]) -> None:
    if os.geteuid() != 0 or not shutil.which("podman"):
        pytest.skip("the container test needs root and podman")
    figures: dict[str, object] = {}
    started = time.monotonic()
    built = image.build(report=lambda text: print(f"image: {text}", flush=True))
    if built.built:
        figures["image_s"] = round(time.monotonic() - started)
    lab_file = tmp_path / "pglab.yml"
    lab_file.write_text(topology_text())
    try:
        started = time.monotonic()
        pglab("up", lab_file=lab_file)
        figures["up_s"] = round(time.monotonic() - started)
        started = time.monotonic()
        pglab("verify", lab_file=lab_file)
        figures["verify_s"] = round(time.monotonic() - started)
        started = time.monotonic()
        second = pglab("up", "--json", lab_file=lab_file)
        figures["second_up_s"] = round(time.monotonic() - started)
        figures["second_up_changed"] = json.loads(second.stdout)["changed"]
        drills = 0
        for kind in ("hang", "crash"):
            pglab("drill", kind, lab_file=lab_file)
            drills += 1
        figures["drills"] = drills
    finally:
        started = time.monotonic()
        pglab("destroy", lab_file=lab_file, check=False)
        figures["destroy_s"] = round(time.monotonic() - started)
        line = "containers-e2e: " + " ".join(f"{k}={v}" for k, v in figures.items())
        summary.report(line)
    assert not leftovers(), f"`pglab destroy` left {leftovers()}"
    assert figures["second_up_changed"] == 0, f"a second `pglab up` changed {figures['second_up_changed']} thing(s)"
