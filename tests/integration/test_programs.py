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
