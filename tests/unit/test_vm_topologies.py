"""The labs the opt-in VM test brings up are valid topologies for either stack."""

from __future__ import annotations

import pytest

from pglab import catalog
from pglab.providers.vagrant import VagrantSettings
from pglab.vm import box
from tests.e2e.test_vm_lab import topology_text


@pytest.mark.parametrize(("stack", "full", "vms"), [("patroni", "", 3), ("patroni", "1", 5),
                                                    ("pg_auto_failover", "", 3)])
def test_vm_test_labs_are_valid(monkeypatch: pytest.MonkeyPatch, stack: str, full: str, vms: int) -> None:
    monkeypatch.setenv("PGLAB_E2E_STACK", stack)
    monkeypatch.setenv("PGLAB_E2E_FULL", full)
    topo = catalog.parse(topology_text(), "vm-test")
    assert topo.stack == stack and topo.provider == "vagrant" and len(topo.nodes) == vms
    vagrant = topo.section("vagrant", VagrantSettings)
    assert vagrant.box == box.BOX_NAME and vagrant.driver == "qemu"
    if stack == "patroni":
        assert topo.patroni.ttl == 30 and topo.patroni.retry_timeout == 10
