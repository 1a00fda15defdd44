"""HAProxy's configuration is rendered from what the stack declares (its health checks per routed
endpoint); for a Patroni lab it stays, byte for byte, what the golden files under golden/ hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pglab.lab import Lab
from pglab.vm import box
from tests.conftest import write_topology
from tests.unit.test_tls_roles import DefaultVmConfigs, _render_configs

GOLDEN = Path(__file__).resolve().parent / "golden"


def _masked(config: str) -> str:
    return re.sub(r"(stats auth \w+):\S+", r"\1:PASSWORD", config)  # each lab's own password


def _emulated_haproxy_cfg(tmp_path: Path) -> str:
    path = write_topology(tmp_path, name="golden", provider="vagrant")
    text = path.read_text()
    text = text.replace("box: debian/bookworm64", f"box: {box.BOX_NAME}").replace("driver: kvm", "driver: qemu")
    path.write_text(text)
    out = tmp_path / "out"
    out.mkdir()
    return _masked(_render_configs(Lab.from_file(path), out)["haproxy"]["haproxy"])


@pytest.mark.parametrize(("tls", "golden"), [(True, "haproxy-patroni-tls.cfg"), (False, "haproxy-patroni-plain.cfg")])
def test_a_patroni_lab_s_haproxy_cfg_is_unchanged(tls: bool, golden: str, default_vm_configs: DefaultVmConfigs) -> None:
    assert _masked(default_vm_configs(tls=tls)["haproxy"]["haproxy"]) == (GOLDEN / golden).read_text()


def test_an_emulated_patroni_lab_s_haproxy_cfg_is_unchanged(tmp_path: Path) -> None:
    assert _emulated_haproxy_cfg(tmp_path) == (GOLDEN / "haproxy-patroni-emulated.cfg").read_text()
