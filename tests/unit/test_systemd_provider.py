"""The systemd half of a provider, reusable by any provider of systemd machines: a provider for
plain hosts reached by SSH brings only its connection and its machines' lifecycle (here a fake
that records the commands it would run), and gets services, logs and faults through systemd."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pglab import catalog
from pglab.providers.systemd import SystemdError, SystemdProvider
from pglab.topology import Node, Topology
from tests.conftest import pooler_off


class HostsProvider(SystemdProvider):
    """Hosts that exist already: nothing to make or remove, SSH as the connection."""

    name = "hosts"

    def __init__(self, topology: Topology, lab_dir: Path, answer: str = "") -> None:
        super().__init__(topology, lab_dir)
        self.commands: list[tuple[str, str]] = []
        self.answer = answer

    def run_command(self, node: Node, command: str) -> str:
        self.commands.append((node.name, command))
        return self.answer

    def address(self, node: Node) -> str:
        return str(node.address)

    def connection_vars(self, node: Node) -> dict[str, Any]:
        return {"ansible_host": str(node.address), "ansible_become": True}

    def create(self) -> None:
        pass

    def destroy(self) -> None:
        pass

    def is_created(self) -> bool:
        return True


@pytest.fixture
def lab() -> Topology:
    # The provider's commands, for the stack's and pgBackRest's units (PgBouncer's would only lengthen them).
    return catalog.parse(pooler_off(catalog.default_yaml(provider="vagrant")))


def test_services_are_the_stack_s_and_components_units_as_systemd_sees_them(lab: Topology, tmp_path: Path) -> None:
    provider = HostsProvider(lab, tmp_path, answer="active\nfailed\n")
    assert provider.services(lab.node("pg1")) == {"patroni": "RUNNING", "pgbackrest": "FATAL"}
    assert provider.commands == [("pg1", "sudo systemctl is-active patroni pgbackrest 2>&1 || true")]
    with pytest.raises(SystemdError, match="pg1 did not answer with service states: no bus"):
        HostsProvider(lab, tmp_path, answer="no bus").services(lab.node("pg1"))


def test_faults_and_logs_go_through_systemd_and_nftables_on_the_node(lab: Topology, tmp_path: Path) -> None:
    provider = HostsProvider(lab, tmp_path)
    pg1 = lab.node("pg1")
    provider.crash(pg1)
    provider.hang(pg1)
    provider.partition(pg1)
    provider.start(pg1)
    provider.logs(pg1, lines=10)
    commands = [command for _, command in provider.commands]
    assert commands[0] == "sudo systemctl kill --signal=SIGKILL patroni pgbackrest"
    assert commands[1] == "sudo systemctl freeze patroni pgbackrest"
    others = ", ".join(str(n.address) for n in lab.nodes if n.name != "pg1")
    assert f"ip daddr {{ {others} }} drop" in commands[2]
    assert commands[3] == "sudo nft delete table inet pglab_partition 2>/dev/null || true"
    assert "sudo systemctl thaw patroni pgbackrest" in commands[4]
    assert "sudo systemctl start patroni pgbackrest" in commands[4]
    assert commands[5] == "sudo journalctl -u patroni -u pgbackrest -n 10 --no-pager"
    assert provider.inventory_vars()["pglab_service_manager"] == "systemd"
