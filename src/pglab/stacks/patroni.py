"""The Patroni stack client: members and health from Patroni's REST API and HAProxy's stats.

It is given node addresses and credentials; it never knows how the machines were made.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from pglab import haproxy
from pglab.stacks.base import Health, Member, Stack


@dataclass(frozen=True)
class Endpoints:
    """Where the stack's services answer, as the lab's provider placed them."""

    postgres: dict[str, str]  # node name -> address
    haproxy: str | None
    restapi_port: int
    postgres_port: int
    haproxy_primary_port: int
    haproxy_replicas_port: int
    haproxy_stats_port: int


class PatroniStack(Stack):
    name = "patroni"

    def __init__(self, endpoints: Endpoints, secrets: dict[str, str], timeout: float = 2.0) -> None:
        self.endpoints = endpoints
        self.secrets = secrets
        self.timeout = timeout

    # REST ------------------------------------------------------------------------------------
    def _url(self, node: str, path: str) -> str:
        return f"http://{self.endpoints.postgres[node]}:{self.endpoints.restapi_port}{path}"

    def get(self, node: str, path: str) -> Any:
        with urllib.request.urlopen(self._url(node, path), timeout=self.timeout) as response:
            return json.loads(response.read() or b"null")

    def cluster(self) -> dict[str, Any] | None:
        """Patroni's /cluster view from the first member that answers."""
        for node in self.endpoints.postgres:
            try:
                return self.get(node, "/cluster")
            except (OSError, urllib.error.URLError, ValueError):
                continue
        return None

    # Stack -----------------------------------------------------------------------------------
    def members(self) -> list[Member]:
        view = self.cluster() or {"members": []}
        seen: dict[str, Member] = {}
        for m in view.get("members", []):
            lag = m.get("lag")
            seen[m["name"]] = Member(
                name=m["name"],
                host=m.get("host", ""),
                role="leader" if m.get("role") in ("leader", "standby_leader") else m.get("role", ""),
                state=m.get("state", ""),
                timeline=m.get("timeline"),
                lag_mb=round(lag / 1048576, 1) if isinstance(lag, int) else None,
                pending_restart=bool(m.get("pending_restart")),
            )
        # Members missing from the DCS are down: show them anyway, as patronictl's users expect.
        return [
            seen.get(name) or Member(name=name, host=address, role="", state="stopped")
            for name, address in self.endpoints.postgres.items()
        ]

    def haproxy_backends(self) -> list[haproxy.Backend]:
        if not self.endpoints.haproxy:
            return []
        return haproxy.backends(
            self.endpoints.haproxy,
            self.endpoints.haproxy_stats_port,
            "admin",
            self.secrets["haproxy_stats_password"],
            timeout=self.timeout,
        )

    def health(self) -> Health:
        members = self.members()
        problems = []
        leaders = [m for m in members if m.role == "leader" and m.state == "running"]
        if len(leaders) != 1:
            problems.append(f"{len(leaders)} running leaders (expected 1)")
        for m in members:
            if m.role != "leader" and m.state != "streaming":
                problems.append(f"{m.name} is {m.state or 'unknown'}, not streaming")
        leader = leaders[0].name if len(leaders) == 1 else None
        if self.endpoints.haproxy:
            try:
                up = {b.server for b in self.haproxy_backends() if b.proxy == "primary" and b.status == "UP"}
            except (OSError, urllib.error.URLError) as exc:
                problems.append(f"HAProxy stats unreachable: {exc}")
            else:
                if leader and up != {leader}:
                    problems.append(
                        f"HAProxy routes writes to {sorted(up) or 'nobody'}, not to the leader {leader}"
                    )
        return Health(not problems, leader, members, problems)
