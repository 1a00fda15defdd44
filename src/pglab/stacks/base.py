"""What pglab asks of an HA stack (Patroni, pg_auto_failover), whatever the machines are."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from pglab.errors import PglabError


@dataclass(frozen=True)
class Member:
    name: str
    host: str
    role: str  # leader, replica, standby ...
    state: str  # running, streaming, stopped, unreachable ...
    timeline: int | None = None
    lag_mb: float | None = None
    pending_restart: bool = False
    # Patroni's pending_restart_reason: parameter -> {"old_value": ..., "new_value": ...}
    pending_changes: dict[str, dict[str, str]] = field(default_factory=dict)


def leader_of(members: list[Member]) -> str | None:
    """The running leader among ``members``, if there is one."""
    return next((m.name for m in members if m.role == "leader" and m.state == "running"), None)


def streaming_replicas_of(members: list[Member]) -> list[Member]:
    """The members that stream from a leader."""
    return [m for m in members if m.role != "leader" and m.state == "streaming"]


@dataclass
class Health:
    leader: str | None
    members: list[Member]
    problems: list[str] = field(default_factory=list)
    # What the router showed while health was judged (HAProxy's stats rows), if there is one.
    routing: list[Any] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    @property
    def streaming_replicas(self) -> list[Member]:
        return streaming_replicas_of(self.members)


class StackError(PglabError):
    """The HA stack refused or could not do what was asked."""


class Stack(ABC):
    """One HA stack's client. Operations (switchover, drills ...) are written against this
    interface, so every stack answers the same questions in the same vocabulary."""

    name: str = ""

    @abstractmethod
    def members(self) -> list[Member]:
        """Every member with its role and state, including members that are down."""

    @abstractmethod
    def health(self) -> Health:
        """One leader, every replica streaming, the router sending writes to the leader."""

    def leader(self) -> str | None:
        """The running leader (primary), if there is one."""
        return leader_of(self.members())

    @abstractmethod
    def switchover(self, candidate: str | None = None, leader: str | None = None) -> str:
        """Start a planned switchover away from ``leader``; returns the stack's answer."""

    @abstractmethod
    def failover(self, candidate: str) -> str:
        """Start a manual failover to ``candidate``, allowed without a healthy leader."""

    @abstractmethod
    def set_parameters(self, parameters: dict[str, Any]) -> None:
        """Change cluster-wide PostgreSQL parameters (a restart, if needed, is left pending)."""

    @abstractmethod
    def restart(self, node: str) -> None:
        """Restart PostgreSQL on one member, in place."""

    def history(self) -> list[dict[str, Any]]:
        """Leader changes, oldest first: ``timeline``, ``reason``, ``time``, ``new_leader``."""
        return []
