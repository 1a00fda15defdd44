"""The order of a rolling restart, and of a switchover with a setting pending, on a small fake
cluster that keeps PostgreSQL's one rule about hot-standby settings: a standby may not run below
the value its primary ran with (the value in its pg_control). A stack that tolerates it (Patroni
starts a standby with at least that value, leaving the change pending) and one that does not
(pg_auto_failover's keeper starts PostgreSQL with its files: the standby does not start) are
both driven through pglab.operations, which must restart each member once and never leave one
that cannot start."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import pytest

from pglab import operations
from pglab.stacks.base import ClientEndpoint, Health, Member, Stack, StackError, StackSite

NODES = ("pg1", "pg2", "pg3")


class FakeCluster(Stack):
    """Three members and one setting (max_connections): its value in each member's files, the
    value each runs with and the value in each member's pg_control."""

    name = "fake"

    def __init__(self, tolerates: bool, value: int = 100) -> None:
        self.tolerates_lowered_standby_settings = tolerates
        self.leader_name = "pg1"
        self.file = dict.fromkeys(NODES, value)
        self.running = dict.fromkeys(NODES, value)
        self.control = dict.fromkeys(NODES, value)
        self.log: list[str] = []

    @classmethod
    def from_site(cls, site: StackSite, timeout: float = 2.0) -> Stack:
        raise NotImplementedError

    def members(self) -> list[Member]:
        return [Member(name=n, host=n, role="leader" if n == self.leader_name else "replica",
                       state="running" if n == self.leader_name else "streaming", timeline=1,
                       pending_restart=self.file[n] != self.running[n],
                       pending_changes={"max_connections": {"old_value": str(self.running[n]),
                                                            "new_value": str(self.file[n])}}
                       if self.file[n] != self.running[n] else {})
                for n in NODES]

    def health(self) -> Health:
        return Health(self.leader_name, self.members())

    def client_endpoints(self) -> dict[str, ClientEndpoint]:
        return {}

    def set_parameters(self, parameters: dict[str, Any]) -> None:
        self.file = dict.fromkeys(NODES, int(parameters["max_connections"]))

    def parameters(self, names: Collection[str] = ()) -> dict[str, Any]:
        return {"max_connections": self.file[self.leader_name]}

    def configuration(self) -> dict[str, Any]:
        return {}

    def _start_standby(self, node: str) -> None:
        value = self.file[node]
        if value < self.control[node]:
            if not self.tolerates_lowered_standby_settings:
                raise StackError(f"{node} does not start: max_connections = {value} is lower than on the primary "
                                 f"({self.control[node]})")
            value = self.control[node]  # Patroni: the primary's value, the change left pending
        self.running[node] = value

    def _primary_reports(self) -> None:
        """The primary's parameter change record, replayed by every standby."""
        self.control = dict.fromkeys(NODES, self.running[self.leader_name])

    def restart(self, node: str) -> None:
        self.log.append(f"restart {node}")
        if node == self.leader_name:
            self.running[node] = self.file[node]
            self._primary_reports()
        else:
            self._start_standby(node)

    def switchover(self, candidate: str | None = None, leader: str | None = None) -> str:
        old = self.leader_name
        new = candidate or next(n for n in NODES if n != old)
        self.log.append(f"switchover {old} -> {new}")
        self.leader_name = new
        self.control[old] = self.running[old]  # the old primary's own pg_control
        self._start_standby(old)  # the old primary restarts as a standby
        self._primary_reports()
        return "switched over"

    def failover(self, candidate: str) -> str:
        return self.switchover(candidate)


class FakeLab:
    """What operations.restart and operations.switchover ask of a lab."""

    def __init__(self, stack: FakeCluster) -> None:
        self._stack = stack

    def stack(self) -> FakeCluster:
        return self._stack

    def wait_healthy(self, timeout: float = 0, on_event: Any = None) -> Health:
        return self._stack.health()


@pytest.fixture
def replayed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[str]]]:
    """The waits for replicas to replay the leader's new settings (replay is immediate here)."""
    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(operations, "_wait_replayed",
                        lambda lab, leader, replicas, timeout, on_event: calls.append((leader, replicas)))
    return calls


def _restart(cluster: FakeCluster) -> list[str]:
    return operations.restart(FakeLab(cluster), rolling=True, timeout=5).details["restarted"]  # type: ignore[arg-type]


@pytest.mark.parametrize("tolerates", [True, False], ids=["patroni-like", "pg_auto_failover-like"])
def test_raising_restarts_the_replicas_then_the_leader_by_switchover(
        tolerates: bool, replayed: list[tuple[str, list[str]]]) -> None:
    cluster = FakeCluster(tolerates)
    cluster.set_parameters({"max_connections": 200})
    assert _restart(cluster) == ["pg2", "pg3", "pg1 (by switchover to pg2)"]
    assert cluster.log == ["restart pg2", "restart pg3", "switchover pg1 -> pg2"]
    assert cluster.running == dict.fromkeys(NODES, 200) and replayed == []


@pytest.mark.parametrize("tolerates", [True, False], ids=["patroni-like", "pg_auto_failover-like"])
def test_lowering_restarts_the_leader_in_place_first_then_the_replicas_once_replayed(
        tolerates: bool, replayed: list[tuple[str, list[str]]]) -> None:
    cluster = FakeCluster(tolerates)
    cluster.set_parameters({"max_connections": 50})
    assert _restart(cluster) == ["pg1 (leader, in place)", "pg2", "pg3"]
    assert cluster.log == ["restart pg1", "restart pg2", "restart pg3"]  # each member once
    assert replayed == [("pg1", ["pg2", "pg3"])]
    assert cluster.running == dict.fromkeys(NODES, 50) and cluster.leader_name == "pg1"


def test_replicas_first_would_have_left_them_pending_or_down() -> None:
    # Why the order matters: on the fake, as on PostgreSQL, a replica restarted before its leader
    # keeps the old value (Patroni) or does not start (pg_auto_failover).
    patroni_like, pgaf_like = FakeCluster(True), FakeCluster(False)
    for cluster in (patroni_like, pgaf_like):
        cluster.set_parameters({"max_connections": 50})
    patroni_like.restart("pg2")
    assert [m.name for m in patroni_like.members() if m.pending_restart] == list(NODES)
    with pytest.raises(StackError, match="pg2 does not start"):
        pgaf_like.restart("pg2")


def test_a_switchover_applies_a_pending_lowered_setting_first_where_standbys_would_not_start(
        replayed: list[tuple[str, list[str]]]) -> None:
    cluster = FakeCluster(tolerates=False)
    cluster.set_parameters({"max_connections": 50})
    result = operations.switchover(FakeLab(cluster), timeout=5)  # type: ignore[arg-type]
    assert cluster.log == ["restart pg1", "restart pg2", "restart pg3", "switchover pg1 -> pg2"]
    assert result.summary.startswith("applied the pending max_connections 100 -> 50 first")
    assert result.details["new_leader"] == "pg2"
    assert cluster.running == dict.fromkeys(NODES, 50)
    assert not any(m.pending_restart for m in cluster.members())


def test_a_bare_switchover_with_a_lowered_setting_pending_leaves_the_old_leader_down() -> None:
    # The hazard the step above avoids (seen on a real pg_auto_failover lab: "recovery aborted
    # because of insufficient parameter settings").
    cluster = FakeCluster(tolerates=False)
    cluster.set_parameters({"max_connections": 50})
    with pytest.raises(StackError, match="pg1 does not start"):
        cluster.switchover()


def test_a_switchover_leaves_the_change_pending_where_standbys_start_anyway(
        replayed: list[tuple[str, list[str]]]) -> None:
    cluster = FakeCluster(tolerates=True)
    cluster.set_parameters({"max_connections": 50})
    result = operations.switchover(FakeLab(cluster), timeout=5)  # type: ignore[arg-type]
    assert cluster.log == ["switchover pg1 -> pg2"]
    assert result.summary.startswith("switchover pg1 -> pg2")
    assert all(m.pending_restart for m in cluster.members())
