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


def test_the_slower_faults_are_nftables_tc_and_systemd_properties_on_the_node(lab: Topology, tmp_path: Path) -> None:
    provider = HostsProvider(lab, tmp_path)
    pg1 = lab.node("pg1")
    others = [str(n.address) for n in lab.nodes if n.name != "pg1"]
    assert provider.cannot("disk-full") and provider.cannot("loss") is None
    provider.impair_network(pg1, loss_percent=20)
    assert "numgen random mod 100 < 20 counter drop" in provider.commands[-1][1]
    provider.impair_network(pg1, delay_ms=50, jitter_ms=5)
    delay = provider.commands[-1][1]
    assert "netem delay 50ms 5ms" in delay and all(f"match ip dst {a}/32" in delay for a in others)
    assert f"show to {pg1.address}" in delay  # the lab interface, not the one SSH comes through
    provider.answer = ("table inet pglab_net {\n ... counter packets 7 bytes 1 drop\n"
                       " ... counter packets 5 bytes 2 drop\n}")
    assert provider.heal_network(pg1) == 12
    provider.answer = ""
    assert provider.heal_network(pg1) is None
    provider.limit_cpu(pg1, 20)
    assert provider.commands[-1][1] == ("sudo systemctl set-property --runtime patroni CPUQuota=20%; "
                                        "sudo systemctl set-property --runtime pgbackrest CPUQuota=20%")
    provider.throttle_disk(pg1, 50, None)
    assert "'IOWriteIOPSMax=/var/lib/postgresql 50'" in provider.commands[-1][1]
    provider.limit_postgres_memory(pg1, 64)
    assert provider.commands[-1][1].startswith("sudo systemctl set-property --runtime patroni MemoryMax=64M")
    assert provider.undo_faults() == ["lifted pg1's resource limits"]
    assert "CPUQuota= " in provider.commands[-1][1] and provider.undo_faults() == []


def test_only_a_process_of_the_node_s_units_is_killed_and_only_postgres_data_is_removed(
        lab: Topology, tmp_path: Path) -> None:
    provider = HostsProvider(lab, tmp_path)
    pg1 = lab.node("pg1")
    provider.kill_process(pg1, 4242)
    kill = provider.commands[-1][1]
    assert "grep -qx 4242" in kill and "kill -KILL 4242" in kill and "patroni.service" in kill
    provider.remove_directory(pg1, "/var/lib/postgresql/15/main")
    assert provider.commands[-1][1] == "sudo rm -rf /var/lib/postgresql/15/main"
    with pytest.raises(SystemdError, match="not below"):
        provider.remove_directory(pg1, "/etc")
