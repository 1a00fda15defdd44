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
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from pglab import catalog, waiting
from pglab.vm import box, libvirt
from pglab.vm.host import MANAGEMENT_SUBNET, VmHost
from tests.e2e import summary

LAB = "vme2e"
SUBNET = "192.168.11.0/24"
# Three VMs: two PostgreSQL + Patroni nodes, and one for etcd, HAProxy and the pgBackRest
# repository (backups never sit on a data node); the pooler (on by default) and a virtual IP that
# follows the leader in the client path.
# Guests ~10x slower than the host: Patroni's loop and DCS retries at a pace they keep up with.
# Synchronous mode: the latency drill's expected rise counts the leader's wait for its standby.
PATRONI = "{ttl: 30, loop_wait: 10, retry_timeout: 10, synchronous_mode: true}"
COMPACT = f"""\
name: {LAB}
provider: vagrant
postgres: {{scope: {LAB}}}
patroni: {PATRONI}
network: {{subnet: {SUBNET}}}
vagrant: {{box: {box.BOX_NAME}, driver: DRIVER, memory: 1024, cpus: 1}}
backup: {{enabled: true}}
vip: {{address: 192.168.11.120}}
nodes:
  - {{name: dcs, address: 192.168.11.121, roles: [dcs, haproxy, backup]}}
  - {{name: pg1, address: 192.168.11.122, roles: [postgres]}}
  - {{name: pg2, address: 192.168.11.123, roles: [postgres]}}
"""
PGLAB = [sys.executable, "-m", "pglab.cli"]
# Beside the latency drill (always), more fault kinds for a longer run:
# PGLAB_E2E_DRILLS="loss cpu-starve slow-disk:--iops:10".
LATENCY_DELAY_MS = 50
LATENCY_FOR_S = 30
SETTLE_S = 2.0  # as the drill: the first commits under a new delay are left out of "during"


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


def print_evidence(host: VmHost, lab_file: Path) -> None:
    """What a failed run's lab looked like before it is destroyed: its status and the last lines
    of every node's service logs, into the run's own output (the VMs do not outlive the test)."""
    nodes = [node["name"] for node in yaml.safe_load(lab_file.read_text())["nodes"]]
    for args in (["status"], *(["logs", "-n", "80", node] for node in nodes)):
        done = host.run([*PGLAB, *args, "-f", str(lab_file)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        print(f"\nvm-e2e evidence: pglab {' '.join(args)} (exit {done.returncode})\n{done.stdout}", flush=True)


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
    drill_exits: dict[str, int] = {}
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
            verified = pglab(host, "verify", "--junit-xml", str(junit), lab_file=lab_file)
            figures["verify_s"] = round(time.monotonic() - started)
            moved = summary.VIP_MOVED.search(verified.stdout)
            if moved:  # after the switchover was acknowledged (the goal: within 3 s)
                figures["vip_move_ms"] = round(float(moved.group(2)) * 1000)
            suite = ET.parse(junit).getroot()
            suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
            assert suite is not None
            figures["checks"] = int(suite.get("tests", 0))

            started = time.monotonic()
            second = pglab(host, "up", "--json", lab_file=lab_file)
            figures["second_up_s"] = round(time.monotonic() - started)
            figures["second_up_changed"] = json.loads(second.stdout)["changed"]

            if topology_text() == COMPACT.replace("DRIVER", driver()):
                figures.update(latency_drill(host, lab_file, tmp_path))
            drill_exits.update(more_drills(host, lab_file))
        except BaseException:
            print_evidence(host, lab_file)
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

    if drill_exits:
        figures["drills"] = len(drill_exits)
        figures["drills_ok"] = sum(code == 0 for code in drill_exits.values())
    keys = ("box_s", "up_s", "verify_s", "second_up_s", "second_up_changed", "destroy_s", "checks",
            "vip_move_ms", "latency_expected_ms", "latency_rise_ms", "latency_psql_rise_ms", "drills", "drills_ok")
    line = "vm-e2e: " + " ".join(f"{k}={figures[k]}" for k in keys if k in figures)
    summary.report(line)
    assert re.fullmatch(r"vm-e2e: (\w+=-?\d+ ?){7,}", line)
    # A drill's exit 1 reports a measured outcome (a loss, no recovery in time); 2 means it could not run.
    assert all(code in (0, 1) for code in drill_exits.values()), f"drills that could not run: {drill_exits}"


def latency_drill(host: VmHost, lab_file: Path, tmp_path: Path) -> dict[str, object]:
    """``pglab drill latency`` on the leader, with psql in a loop beside it (a client that is not
    the drill's): the commit p50 rise the drill expected, the one it measured, and psql's."""
    script = tmp_path / "commits.sql"
    script.write_text("\\timing on\nCREATE TABLE IF NOT EXISTS latency_beside (at timestamptz DEFAULT now());\n"
                      + "\\! date +%s.%N\nINSERT INTO latency_beside DEFAULT VALUES;\n" * 20000)
    beside = subprocess.Popen([*host.exec_prefix(), *PGLAB, "psql", "-f", str(lab_file), "--", "-X", "-q",
                               "-f", str(script)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = tmp_path / "drills"
    try:
        time.sleep(15)  # psql's own "before"
        done = host.run([*PGLAB, "drill", "latency", "--node", "leader", "--delay", str(LATENCY_DELAY_MS),
                         "--for", str(LATENCY_FOR_S), "--timeout", "300", "--out", str(out), "--json",
                         "-f", str(lab_file)], stdout=subprocess.PIPE, stderr=None)
    finally:
        beside.terminate()
        psql_out, _ = beside.communicate(timeout=60)
    print(done.stdout[-3000:], flush=True)
    assert done.returncode == 0, f"pglab drill latency failed (exit {done.returncode})"
    drill = json.loads((out / "drills.jsonl").read_text().splitlines()[-1])
    fault_at = drill["fault_at_unix"]
    lifted = next(m["at"] for m in drill["markers"] if m["what"].endswith("lifted"))
    commits = psql_commits(psql_out)
    before = [ms for at, ms in commits if at < fault_at]
    during = [ms for at, ms in commits if fault_at + SETTLE_S <= at < fault_at + lifted]
    psql_rise = statistics.median(during) - statistics.median(before) if before and during else -1
    print(f"vm-e2e latency: expected {drill['expected_rise_ms']} ms, drill measured {drill['measured_rise_ms']} "
          f"ms, psql measured {psql_rise:.1f} ms ({len(before)} commits before, {len(during)} during)", flush=True)
    return {"latency_expected_ms": round(drill["expected_rise_ms"]),
            "latency_rise_ms": round(drill["measured_rise_ms"] if drill["measured_rise_ms"] is not None else -1),
            "latency_psql_rise_ms": round(psql_rise)}


def psql_commits(text: str) -> list[tuple[float, float]]:
    """(wall clock, ms) of each INSERT in psql's output: ``date``'s line, then ``Time: N ms``."""
    commits, at = [], None
    for line in text.splitlines():
        if re.fullmatch(r"\d+\.\d+", line.strip()):
            at = float(line)
        elif (timed := re.match(r"Time: ([\d.]+) ms", line)) and at is not None:
            commits.append((at, float(timed.group(1))))
            at = None
    return commits


def more_drills(host: VmHost, lab_file: Path) -> dict[str, int]:
    """The fault kinds named in ``PGLAB_E2E_DRILLS``, one drill each: their exit codes. A kind's
    own options follow it after colons: ``slow-disk:--iops:10``."""
    exits = {}
    for word in os.environ.get("PGLAB_E2E_DRILLS", "").split():
        kind, *options = word.split(":")
        print(f"vm-e2e: drill {kind} {' '.join(options)}", flush=True)
        done = host.run([*PGLAB, "drill", kind, *options, "--timeout", "300", "-f", str(lab_file)],
                        stdout=subprocess.PIPE, stderr=None)
        print(done.stdout[-4000:], flush=True)
        exits[kind] = done.returncode
    if exits:
        print(f"vm-e2e drills: {exits}", flush=True)
    return exits
