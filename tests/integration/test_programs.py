"""`pglab stop pg` stops pg's services and none of pg-1's: the local provider matches supervisor
programs exactly. A real supervisord runs stand-in programs (sleep) named as the roles name them."""

from __future__ import annotations

import sys
import xmlrpc.client
from pathlib import Path

from pglab import waiting
from pglab.catalog import parse
from pglab.providers.local import LocalProvider, program_name
from tests.conftest import SECOND_LOOPBACK

TWINS = f"""\
name: twins
network:
  subnet: 192.168.11.0/24
  loopback: {SECOND_LOOPBACK}
nodes:
  - {{name: pg, address: 192.168.11.120, roles: [dcs, postgres]}}
  - {{name: pg-1, address: 192.168.11.121, roles: [postgres]}}
"""


def test_stopping_a_node_leaves_its_dashed_namesake_running(tmp_path: Path) -> None:
    topology = parse(TWINS, "twins.yml")
    lab_dir = tmp_path / ".pglab" / "twins"
    lab_dir.mkdir(parents=True)
    provider = LocalProvider(topology, lab_dir)
    try:
        provider.create()
        for node, service in [("pg", "patroni"), ("pg", "etcd"), ("pg-1", "patroni")]:
            program = program_name(node, service)
            (provider.include_dir / f"{program}.conf").write_text(
                f"[program:{program}]\ncommand={sys.executable} -c 'import time; time.sleep(600)'\n"
                "autostart=true\nstartsecs=0\n")
        rpc = provider._rpc()
        rpc.supervisor.reloadConfig()
        for program in ("pg-patroni", "pg-etcd", "pg-1-patroni"):
            rpc.supervisor.addProcessGroup(program)
        pg, pg_1 = topology.node("pg"), topology.node("pg-1")
        # supervisord starts an added group on its next turn (STARTING, then RUNNING): wait for it.
        started, detail, _ = waiting.poll(lambda: (
            (seen := (provider.services(pg), provider.services(pg_1))) == (
                {"patroni": "RUNNING", "etcd": "RUNNING"}, {"patroni": "RUNNING"}), str(seen)), 10, 0.1)
        assert started, detail

        provider.stop(pg)

        assert provider.services(pg) == {"patroni": "STOPPED", "etcd": "STOPPED"}
        assert provider.services(pg_1) == {"patroni": "RUNNING"}
    except xmlrpc.client.Fault as fault:
        raise AssertionError(f"supervisord refused: {fault.faultString}") from None
    finally:
        provider.destroy()
    assert not provider.run_dir.exists()


ORDERED = f"""\
name: ordered
network:
  subnet: 192.168.11.0/24
  loopback: {SECOND_LOOPBACK}
nodes:
  - {{name: dcs, address: 192.168.11.100, roles: [dcs]}}
  - {{name: pg1, address: 192.168.11.120, roles: [postgres]}}
"""
# A stand-in that notes when it is told to stop and when it has stopped, taking a second between.
STAND_IN = ("import signal, sys, time\n"
            "def stop(*_):\n"
            "    open(sys.argv[1], 'a').write(f'term {sys.argv[2]} {time.time()}\\n')\n"
            "    time.sleep(1)\n"
            "    open(sys.argv[1], 'a').write(f'exit {sys.argv[2]} {time.time()}\\n')\n"
            "    sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, stop)\n"
            "open(sys.argv[1], 'a').write(f'ready {sys.argv[2]} {time.time()}\\n')\n"
            "time.sleep(600)\n")


def test_destroy_stops_the_data_nodes_before_the_dcs_they_talk_to(tmp_path: Path) -> None:
    topology = parse(ORDERED, "ordered.yml")
    lab_dir = tmp_path / ".pglab" / "ordered"
    lab_dir.mkdir(parents=True)
    provider = LocalProvider(topology, lab_dir)
    script, notes = tmp_path / "stand_in.py", tmp_path / "notes"
    script.write_text(STAND_IN)
    programs = {program_name("dcs", "etcd"): "dcs", program_name("pg1", "patroni"): "pg1"}
    try:
        provider.create()
        for program, node in programs.items():
            (provider.include_dir / f"{program}.conf").write_text(
                f"[program:{program}]\ncommand={sys.executable} {script} {notes} {node}\n"
                "autostart=true\nstartsecs=0\n")
        rpc = provider._rpc()
        rpc.supervisor.reloadConfig()
        for program in programs:
            rpc.supervisor.addProcessGroup(program)
        # Each stand-in notes when it listens for its stop signal: wait for both.
        ready, detail, _ = waiting.poll(lambda: (
            (seen := notes.read_text() if notes.exists() else "").count("ready ") == 2, seen), 30, 0.1)
        assert ready, detail
    except xmlrpc.client.Fault as fault:
        raise AssertionError(f"supervisord refused: {fault.faultString}") from None
    finally:
        provider.destroy()
    when = {tuple(line.split()[:2]): float(line.split()[2]) for line in notes.read_text().splitlines()}
    # The data node is down before its DCS is asked to stop: it never waits for a DCS that left.
    assert when[("exit", "pg1")] <= when[("term", "dcs")], when
