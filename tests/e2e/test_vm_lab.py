"""The whole VM path, end to end: the offline box, `pglab up` on VMs, `pglab verify` (switchover
and failover included), a second `up` that changes nothing, `pglab destroy` leaving nothing.

Everything that talks to the VMs runs in the namespace of a :class:`pglab.vm.host.VmHost`; the
summary line (``vm-e2e: ...``) is printed and written to ``$PGLAB_E2E_SUMMARY`` for the caller.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pglab import catalog, waiting
from pglab.vm import box, libvirt
from pglab.vm.host import MANAGEMENT_SUBNET, VmHost

LAB = "vme2e"
SUBNET = "192.168.11.0/24"
# Three VMs: two PostgreSQL + Patroni nodes, and one for etcd, HAProxy and the pgBackRest
# repository (backups never sit on a data node).
# Guests ~10x slower than the host: Patroni's loop and DCS retries at a pace they keep up with.
PATRONI = "{ttl: 30, loop_wait: 10, retry_timeout: 10}"
COMPACT = f"""\
name: {LAB}
provider: vagrant
postgres: {{scope: {LAB}}}
patroni: {PATRONI}
network: {{subnet: {SUBNET}}}
vagrant: {{box: {box.BOX_NAME}, driver: DRIVER, memory: 1024, cpus: 1}}
backup: {{enabled: true}}
nodes:
  - {{name: dcs, address: 192.168.11.121, roles: [dcs, haproxy, backup]}}
  - {{name: pg1, address: 192.168.11.122, roles: [postgres]}}
  - {{name: pg2, address: 192.168.11.123, roles: [postgres]}}
"""
PGLAB = [sys.executable, "-m", "pglab.cli"]


def driver() -> str:
    return os.environ.get("PGLAB_E2E_DRIVER", "qemu")  # kvm where /dev/kvm boots stock kernels (CI)


def topology_text() -> str:
    """The lab under test: the compact Patroni lab, the five-VM default (``PGLAB_E2E_FULL=1``), or
    the pg_auto_failover lab (``PGLAB_E2E_STACK=pg_auto_failover``: monitor + two data nodes)."""
    if os.environ.get("PGLAB_E2E_STACK", "patroni") == "pg_auto_failover":
        return _offline(catalog.default_yaml(name=LAB, provider="vagrant", stack="pg_auto_failover"))
    if os.environ.get("PGLAB_E2E_FULL") == "1":
        return _offline(catalog.default_yaml(name=LAB, provider="vagrant"))
    return COMPACT.replace("DRIVER", driver())


def _offline(text: str) -> str:
    """init's file (it names every vagrant setting; the scope follows the lab's name) on the
    offline box, with Patroni's calmer timings for emulated guests."""
    text = text.replace("box: debian/bookworm64", f"box: {box.BOX_NAME}").replace("driver: kvm",
                                                                                 f"driver: {driver()}")
    return text.replace("  ttl: 20 ", "  ttl: 30 ").replace("loop_wait: 2", "loop_wait: 10").replace(
        "retry_timeout: 5", "retry_timeout: 10")


def pglab(host: VmHost, *args: str, lab_file: Path) -> subprocess.CompletedProcess[str]:
    """One pglab command inside the VM host's namespace; its stderr (progress) passes through."""
    done = host.run([*PGLAB, *args, "-f", str(lab_file)], stdout=subprocess.PIPE, stderr=None)
    print(done.stdout, flush=True)
    assert done.returncode == 0, f"pglab {' '.join(args)} failed (exit {done.returncode}):\n{done.stdout[-3000:]}"
    return done


def qemu_processes() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().startswith("qemu-system"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def hold_for_inspection(host: VmHost, lab_file: Path) -> None:
    """With ``PGLAB_E2E_HOLD=SECONDS``, a failed run keeps its VMs that long (or until the hold file
    is removed) before destroying them, so someone can look inside: the evidence goes with them."""
    seconds = float(os.environ.get("PGLAB_E2E_HOLD", "0") or 0)
    if seconds <= 0:
        return
    hold = lab_file.parent / "HOLD"
    hold.touch()
    lab_dir = lab_file.parent / ".pglab" / LAB
    print(f"\nvm-e2e: holding the failed lab for {seconds:.0f} s; remove {hold} to destroy it now.\n"
          f"  inside:  {' '.join(host.exec_prefix())} sh -c 'cd {lab_dir} && vagrant ssh pg1'\n"
          f"  or:      {' '.join(host.exec_prefix())} {' '.join(PGLAB)} logs -f {lab_file} pg1", flush=True)
    deadline = time.monotonic() + seconds
    while hold.exists() and time.monotonic() < deadline:
        time.sleep(5)


def test_vm_lab_up_verify_converge_destroy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    figures: dict[str, object] = {}
    if driver() == "qemu":  # guests 10x slower than the host: every wait of pglab's lasts longer
        monkeypatch.setenv(waiting.TIMEOUT_SCALE_VARIABLE, os.environ.get(waiting.TIMEOUT_SCALE_VARIABLE, "4"))
    started = time.monotonic()
    box.build(lambda text: print(f"box: {text}", flush=True))
    figures["box_s"] = round(time.monotonic() - started)

    lab_file = tmp_path / "pglab.yml"
    lab_file.write_text(topology_text())
    junit = Path(os.environ.get("PGLAB_E2E_JUNIT", tmp_path / "verify.xml"))
    host = VmHost(subnets=(MANAGEMENT_SUBNET, SUBNET), labs=(LAB,), hide_kvm=driver() == "qemu")
    with host.running():
        try:
            started = time.monotonic()
            pglab(host, "up", "--timeout", "600", lab_file=lab_file)
            figures["up_s"] = round(time.monotonic() - started)

            started = time.monotonic()
            pglab(host, "verify", "--junit-xml", str(junit), lab_file=lab_file)
            figures["verify_s"] = round(time.monotonic() - started)
            suite = ET.parse(junit).getroot()
            suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
            assert suite is not None
            figures["checks"] = int(suite.get("tests", 0))

            started = time.monotonic()
            second = pglab(host, "up", "--json", lab_file=lab_file)
            figures["second_up_s"] = round(time.monotonic() - started)
            figures["second_up_changed"] = json.loads(second.stdout)["changed"]
        except BaseException:
            hold_for_inspection(host, lab_file)
            raise
        finally:
            # Ansible's events (with their times) outlive the lab: where a slow `up` spent its time.
            with contextlib.suppress(OSError):
                shutil.copytree(tmp_path / ".pglab" / LAB / "ansible" / "artifacts", tmp_path / "ansible-artifacts")
            started = time.monotonic()
            destroyed = host.run([*PGLAB, "destroy", "-f", str(lab_file)])
            figures["destroy_s"] = round(time.monotonic() - started)
            left = libvirt.leftovers(LAB)
    assert destroyed.returncode == 0, "pglab destroy failed"
    assert not left, f"pglab destroy left {left}"
    assert not host.namespace_exists() and not host.routes(), "the VM host's namespace or routes remain"
    assert not qemu_processes(), f"qemu processes remain: {qemu_processes()}"
    assert figures["second_up_changed"] == 0, f"a second `pglab up` changed {figures['second_up_changed']} thing(s)"

    line = "vm-e2e: " + " ".join(f"{k}={figures[k]}" for k in
                                 ("box_s", "up_s", "verify_s", "second_up_s", "second_up_changed", "destroy_s",
                                  "checks"))
    print(line, flush=True)
    summary = os.environ.get("PGLAB_E2E_SUMMARY")
    if summary:
        Path(summary).write_text(line + "\n")
    assert re.fullmatch(r"vm-e2e: (\w+=\d+ ?){7}", line)
