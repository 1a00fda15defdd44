"""HAProxy's configuration is rendered from what the stack declares (its health checks per routed
endpoint); for a Patroni lab it stays, byte for byte, what the golden files under golden/ hold."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from pglab.lab import Lab
from pglab.vm import box
from tests.conftest import write_topology
from tests.unit.test_tls_roles import _render_configs

GOLDEN = Path(__file__).resolve().parent / "golden"


def _haproxy_cfg(tmp_path: Path, tls: bool, emulated: bool = False) -> str:
    path = write_topology(tmp_path, name="golden", provider="vagrant")
    text = path.read_text()
    if not tls:
        text = text.replace("tls: true", "tls: false")
    if emulated:
        text = text.replace("box: debian/bookworm64", f"box: {box.BOX_NAME}").replace("driver: kvm", "driver: qemu")
    path.write_text(text)
    out = tmp_path / "out"
    out.mkdir()
    config = _render_configs(Lab.from_file(path), out)["haproxy"]["haproxy"]
    return re.sub(r"(stats auth \w+):\S+", r"\1:PASSWORD", config)  # each lab's own password


@pytest.mark.parametrize(("tls", "emulated", "golden"), [(True, False, "haproxy-patroni-tls.cfg"),
                                                         (False, False, "haproxy-patroni-plain.cfg"),
                                                         (True, True, "haproxy-patroni-emulated.cfg")])
def test_a_patroni_lab_s_haproxy_cfg_is_unchanged(tls: bool, emulated: bool, golden: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:/usr/bin:/bin")  # no vagrant: render only
    assert _haproxy_cfg(tmp_path, tls, emulated) == (GOLDEN / golden).read_text()
