"""A compact plaintext lab (every role on one node, ``tls: false``) comes up and speaks without
TLS, and `destroy` leaves nothing behind: no process, port, file, mount or loop device."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import psycopg

from pglab.lab import Lab
from pglab.providers.local import LocalProvider, _environments
from tests.conftest import SECOND_LOOPBACK, loopback_address

COMPACT = f"""\
name: compact
tls: false
network:
  subnet: 192.168.11.0/24
  loopback: {SECOND_LOOPBACK}
nodes:
  - name: solo
    address: 192.168.11.120
    roles: [dcs, postgres, haproxy]
"""


def _listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def test_compact_lab_comes_up_and_destroy_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "pglab.yml"
    path.write_text(COMPACT)
    lab = Lab.from_file(path)
    provider = lab.provider
    assert isinstance(provider, LocalProvider)
    try:
        result = lab.up(timeout=120)
        assert result.health.healthy
        assert result.health.leader == "solo"
        assert provider.run_dir.exists()
        assert "sslmode" not in result.dsn and not lab.layout.tls.exists()
        with psycopg.connect(result.dsn, password=lab.superuser_password(),
                             sslmode="disable", connect_timeout=5) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        disk = provider.disk(lab.node("solo"))
        # As root the data node's data sits on a loop-mounted image of its own.
        assert disk.mounted() == (os.geteuid() == 0)
    finally:
        lab.destroy()
    assert str(disk.mount_point) not in Path("/proc/self/mountinfo").read_text()
    attached = subprocess.run(["losetup", "--list", "--noheadings", "--output", "BACK-FILE"], capture_output=True,
                              text=True).stdout
    assert str(disk.image) not in attached
    marker = f"SUPERVISOR_SERVER_URL=unix://{provider.socket}".encode()
    leftovers = [pid for pid, env in _environments() if marker in env]
    assert leftovers == [], f"processes of the lab still running: {leftovers}"
    ports = [5432, 8008, 2379, 2380, 5000, 5001, 5002, 5003, 6432, 7000]
    assert [p for p in ports if _listening(loopback_address(120, second=True), p)] == []
    assert not lab.dir.exists()
    assert not provider.run_dir.exists()
    assert not (tmp_path / ".pglab").exists()


def test_destroy_is_safe_on_a_lab_never_created(tmp_path: Path) -> None:
    path = tmp_path / "pglab.yml"
    path.write_text(COMPACT)
    Lab.from_file(path).destroy()
    assert not (tmp_path / ".pglab").exists()
