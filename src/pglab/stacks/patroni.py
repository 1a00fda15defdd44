"""The Patroni stack: its declaration (:data:`SPEC`: roles, topology section, packages, services,
ports, inventory variables) and its client, which reads members and health from Patroni's REST
API and HAProxy's stats.

The client is given node addresses and credentials; it never knows how the machines were made.
"""

from __future__ import annotations

import base64
import json
import shlex
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

import yaml
from pydantic import Field, model_validator

from pglab import paths, prerequisites
from pglab.components import haproxy, pgbackrest, pooler
from pglab.components.base import HealthCheck, Rotation, Route, TlsService
from pglab.components.haproxy import STATS_ACCOUNT as HAPROXY_STATS
from pglab.prerequisites import Prerequisite
from pglab.secrets import Account
from pglab.stacks.base import (
    ClientEndpoint,
    DecisionLog,
    DefaultNode,
    Health,
    Member,
    RestoreSteps,
    Stack,
    StackError,
    StackSite,
    StackSpec,
    StandbySource,
)
from pglab.tls import certs
from pglab.topology import BACKUP_ROLE, FieldProblem, Node, Ports, Strict, Topology
from pglab.waiting import timeout_scale

# Where rendering finds the role's own defaults (Patroni's venv, its pip packages): their one owner.
ROLE = "patroni"
CONFIG_SUBPATH = "etc/patroni/patroni.yml"  # below a node's root: the role's patroni_config_file
VENV_PACKAGE = "patroni (PyPI, in a venv: python3-venv)"

# Patroni's own accounts: replication, pg_rewind and its REST API.
REPLICATION = Account("replicator", "patroni_replication_user", "patroni_replication_password", "replication user")
REWIND = Account("rewinder", "patroni_rewind_user", "patroni_rewind_password", "pg_rewind user")
RESTAPI = Account("patroni", "patroni_restapi_user", "patroni_restapi_password", "Patroni REST API")
# How long a switchover waits for Patroni to name a synchronous standby (a loop or two after a
# replica streams again), before its refusal stands.
SYNC_STANDBY_WAIT = 30.0


class PatroniSettings(Strict):
    """Patroni's dynamic configuration knobs: set at bootstrap, converged by every `pglab up`."""

    ttl: Annotated[int, Field(ge=20)] = 20  # Patroni 4 refuses less
    loop_wait: Annotated[int, Field(ge=1)] = 2
    retry_timeout: Annotated[int, Field(ge=1)] = 5
    maximum_lag_on_failover: Annotated[int, Field(ge=0)] = 1048576
    synchronous_mode: bool = False
    synchronous_mode_strict: bool = False
    # true: a leader that loses the DCS keeps its role while every member answers its REST API.
    failsafe_mode: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> PatroniSettings:
        if self.loop_wait + 2 * self.retry_timeout > self.ttl:
            raise FieldProblem(
                ("patroni", "ttl"),
                f"ttl {self.ttl} is shorter than loop_wait + 2 x retry_timeout "
                f"({self.loop_wait} + 2 x {self.retry_timeout}), so a healthy leader could lose its lock; "
                f"raise ttl to at least {self.loop_wait + 2 * self.retry_timeout} or lower the other two",
            )
        if self.synchronous_mode_strict and not self.synchronous_mode:
            raise FieldProblem(("patroni", "synchronous_mode_strict"),
                                "synchronous_mode_strict only applies with synchronous_mode: true; "
                                "set synchronous_mode: true too, or remove synchronous_mode_strict")
        return self

    def dynamic(self) -> dict[str, Any]:
        """The settings in Patroni's own words (its /config keys)."""
        return self.model_dump()


@dataclass(frozen=True)
class Endpoints:
    """Where the stack's services answer, as the lab's provider placed them."""

    postgres: dict[str, str]  # node name -> address
    haproxy: str | None
    restapi_port: int
    haproxy_stats_port: int
    restapi_user: str
    haproxy_stats_user: str
    haproxy_primary_port: int = 5000
    haproxy_replicas_port: int = 5001
    # With the pooler on: 5000 / 5001 go through the nodes' PgBouncer, these straight to PostgreSQL.
    pooled: bool = False
    haproxy_primary_direct_port: int = 5002
    haproxy_replicas_direct_port: int = 5003
    # The lab's CA bundle: the REST API speaks HTTPS and its certificate is verified; None: HTTP.
    ca_file: Path | None = None


class PatroniStack(Stack):
    name = "patroni"

    def __init__(self, endpoints: Endpoints, secrets: dict[str, str], timeout: float = 2.0) -> None:
        self.endpoints = endpoints
        self.secrets = secrets
        self.timeout = timeout

    @classmethod
    def from_site(cls, site: StackSite, timeout: float = 2.0) -> PatroniStack:
        topo, ports = site.topology, site.topology.ports
        haproxy = topo.with_role("haproxy")
        endpoints = Endpoints(
            postgres={n.name: site.addresses[n.name] for n in topo.with_role("postgres")},
            haproxy=site.addresses[haproxy[0].name] if haproxy else None,
            restapi_port=ports.patroni,
            haproxy_stats_port=ports.haproxy_stats,
            restapi_user=RESTAPI.user,
            haproxy_stats_user=HAPROXY_STATS.user,
            haproxy_primary_port=ports.haproxy_primary,
            haproxy_replicas_port=ports.haproxy_replicas,
            pooled=pooler.enabled(topo),
            haproxy_primary_direct_port=ports.haproxy_primary_direct,
            haproxy_replicas_direct_port=ports.haproxy_replicas_direct,
            ca_file=site.ca_file,
        )
        return cls(endpoints, site.secrets, timeout=timeout)

    def client_endpoints(self) -> dict[str, ClientEndpoint]:
        """HAProxy's writes (leader) and reads (replicas) ports, when the lab has HAProxy: through
        the nodes' pooler when it is on, and the direct ones (the same ports when it is off)."""
        if not self.endpoints.haproxy:
            return {}
        e, hosts = self.endpoints, (self.endpoints.haproxy,)
        write, read = ClientEndpoint(hosts, e.haproxy_primary_port), ClientEndpoint(hosts, e.haproxy_replicas_port)
        if not e.pooled:
            return {"write": write, "read": read, "write_direct": write, "read_direct": read}
        return {"write": write, "read": read,
                "write_direct": ClientEndpoint(hosts, e.haproxy_primary_direct_port),
                "read_direct": ClientEndpoint(hosts, e.haproxy_replicas_direct_port)}

    # REST ------------------------------------------------------------------------------------
    def _url(self, node: str, path: str) -> str:
        scheme = "https" if self.endpoints.ca_file else "http"
        return f"{scheme}://{self.endpoints.postgres[node]}:{self.endpoints.restapi_port}{path}"

    def _tls(self) -> ssl.SSLContext | None:
        """Certificates verified against the lab's CA, names included (read anew on each call, so
        a rotated CA bundle counts at once)."""
        return certs.client_context(self.endpoints.ca_file)

    def get(self, node: str, path: str) -> Any:
        with urllib.request.urlopen(self._url(node, path), timeout=self.timeout, context=self._tls()) as response:
            return json.loads(response.read() or b"null")

    def call(self, node: str, method: str, path: str, body: dict[str, Any] | None = None,
             timeout: float | None = None) -> tuple[int, str]:
        """An authenticated (unsafe) REST call; returns the HTTP status and the body's text."""
        request = urllib.request.Request(self._url(node, path), method=method,
                                         data=json.dumps(body or {}).encode())
        credentials = f"{self.endpoints.restapi_user}:{self.secrets[RESTAPI.password_variable]}"
        token = base64.b64encode(credentials.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout or max(self.timeout, 30),
                                        context=self._tls()) as response:
                return response.status, response.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def call_any(self, method: str, path: str, body: dict[str, Any] | None = None,
                 prefer: str | None = None, timeout: float | None = None) -> tuple[int, str]:
        """The same call on the first member that answers, ``prefer`` first."""
        nodes = sorted(self.endpoints.postgres, key=lambda n: n != prefer)
        last: tuple[int, str] = (0, "no member answered")
        for node in nodes:
            try:
                return self.call(node, method, path, body, timeout)
            except (OSError, urllib.error.URLError) as exc:
                last = (0, f"{node}: {exc}")
        return last

    def _get_any(self, path: str) -> Any:
        """A read-only GET answered by the first member that answers; None when none does."""
        for node in self.endpoints.postgres:
            try:
                return self.get(node, path)
            except (OSError, urllib.error.URLError, ValueError):
                continue
        return None

    def cluster(self) -> dict[str, Any] | None:
        """Patroni's /cluster view from the first member that answers."""
        view: dict[str, Any] | None = self._get_any("/cluster")
        return view

    # Stack -----------------------------------------------------------------------------------
    def members(self) -> list[Member]:
        return self._members(self.cluster())

    def _members(self, view: dict[str, Any] | None) -> list[Member]:
        return cluster_members(view, self.endpoints.postgres, self._own)

    def _own(self, name: str) -> dict[str, Any] | None:
        """The member's own /patroni answer, None when it does not answer."""
        try:
            return self.get(name, "/patroni") or {}
        except (OSError, urllib.error.URLError, ValueError):
            return None

    def routing(self) -> list[haproxy.Backend]:
        """HAProxy's stats rows: which servers each listener (primary, replicas) routes to."""
        if not self.endpoints.haproxy:
            return []
        return haproxy.backends(
            self.endpoints.haproxy,
            self.endpoints.haproxy_stats_port,
            self.endpoints.haproxy_stats_user,
            self.secrets[HAPROXY_STATS.password_variable],
            timeout=self.timeout,
            ca_file=self.endpoints.ca_file,
        )

    def health(self) -> Health:
        view = self.cluster()
        backends: list[haproxy.Backend] | None = None
        unreachable = None
        if self.endpoints.haproxy:
            try:
                backends = self.routing()
            except (OSError, urllib.error.URLError) as exc:
                unreachable = f"HAProxy stats unreachable: {exc}"
        return cluster_health(view, self._members(view), backends, unreachable)

    # Operations ------------------------------------------------------------------------------
    def switchover(self, candidate: str | None = None, leader: str | None = None) -> str:
        """Ask Patroni for a planned switchover away from ``leader`` (looked up when not given);
        returns Patroni's answer (raises on refusal)."""
        leader = leader or self.leader()
        if leader is None:
            raise StackError("no running leader: a switchover needs one (use failover instead)")
        body: dict[str, Any] = {"leader": leader}
        if candidate:
            body["candidate"] = candidate
        status, text = self.call_any("POST", "/switchover", body, prefer=leader)
        # In synchronous mode Patroni hands over only to its synchronous standby, which it names a
        # loop after a replica streams again (one just back from a restart): until then, ask again.
        deadline = time.monotonic() + SYNC_STANDBY_WAIT * timeout_scale()
        while _no_sync_standby_yet(status, text, self.cluster) and time.monotonic() < deadline:
            time.sleep(1)
            status, text = self.call_any("POST", "/switchover", body, prefer=leader)
        if status != 200 and not _still_under_way(status, text):
            raise StackError(f"Patroni refused the switchover (HTTP {status}): {text.strip()}")
        return text.strip()

    def failover(self, candidate: str) -> str:
        """A manual failover to ``candidate``, allowed even without a healthy leader."""
        status, text = self.call_any("POST", "/failover", {"candidate": candidate}, prefer=candidate)
        if status != 200 and not _still_under_way(status, text):
            raise StackError(f"Patroni refused the failover to {candidate} (HTTP {status}): {text.strip()}")
        return text.strip()

    def dynamic_config(self) -> dict[str, Any]:
        config: dict[str, Any] | None = self._get_any("/config")
        if config is None:
            raise StackError("no member answered for /config")
        return config

    def standby_source(self) -> dict[str, Any] | None:
        """The standby_cluster section of the dynamic configuration (a standby cluster's source),
        None for a primary cluster."""
        source: dict[str, Any] | None = self.dynamic_config().get("standby_cluster") or None
        return source

    def follow(self, source: StandbySource | None) -> None:
        """``standby_cluster`` set (or removed) in the DCS: the leader becomes a standby leader of
        ``source`` (or a primary) at its next loop, its replicas follow it."""
        self.set_dynamic({"standby_cluster": None if source is None else standby_cluster(source)})

    def keep_slots(self, slots: Collection[str]) -> dict[str, Any]:
        """Patroni's permanent slots (``slots:`` in the DCS): the ones asked for, the others removed."""
        current = self.dynamic_config().get("slots") or {}
        change: dict[str, Any] = {name: None for name in current if name not in slots}
        change.update({name: {"type": "physical"} for name in slots if name not in current})
        if change:
            self.set_dynamic({"slots": change})
        return change

    def parameters(self, names: Collection[str] = ()) -> dict[str, Any]:
        """Patroni's dynamic configuration alone, whatever ``names`` asks for: it is the only place a
        parameter lasts (Patroni rewrites postgresql.conf), so one missing from it must be added."""
        return dict((self.dynamic_config().get("postgresql") or {}).get("parameters") or {})

    def configuration(self) -> dict[str, Any]:
        return self.dynamic_config()

    def set_parameters(self, parameters: dict[str, Any]) -> None:
        """Change cluster-wide PostgreSQL parameters through Patroni's dynamic configuration."""
        status, text = self.call_any("PATCH", "/config", {"postgresql": {"parameters": parameters}})
        if status != 200:
            raise StackError(f"Patroni refused the configuration change (HTTP {status}): {text.strip()}")

    def set_dynamic(self, settings: dict[str, Any]) -> None:
        """Change top-level keys of Patroni's dynamic configuration (ttl, synchronous_mode ...)."""
        status, text = self.call_any("PATCH", "/config", settings)
        if status != 200:
            raise StackError(f"Patroni refused the configuration change (HTTP {status}): {text.strip()}")

    def converge_settings(self, topology: Topology) -> dict[str, Any]:
        """Patroni's dynamic configuration to the topology's ``patroni:`` section (ttl,
        synchronous_mode ...)."""
        current = self.dynamic_config()
        wanted = SPEC.dynamic(topology)
        changed = {key: value for key, value in wanted.items() if current.get(key) != value}
        if changed:
            self.set_dynamic(changed)
        return changed

    def restart(self, node: str) -> None:
        status, text = self.call(node, "POST", "/restart", {}, timeout=120)
        if status not in (200, 503) or (status == 503 and "restart is not needed" not in text):
            raise StackError(f"Patroni could not restart {node} (HTTP {status}): {text.strip()}")

    def rebuild(self, member: str) -> str:
        """Patroni's reinit of ``member`` (`patronictl reinit`): its data directory made anew from
        the leader."""
        status, text = self.call(member, "POST", "/reinitialize", {"force": True}, timeout=60)
        if status != 200:
            raise StackError(f"Patroni refused to reinitialize {member} (HTTP {status}): {text.strip()}")
        return text.strip()

    def history(self) -> list[dict[str, Any]]:
        """Timeline history: one entry per switchover or failover."""
        return [
            {"timeline": r[0], "lsn": r[1], "reason": r[2], "time": r[3] if len(r) > 3 else None,
             "new_leader": r[4] if len(r) > 4 else None}
            for r in self._get_any("/history") or []
        ]


def _no_sync_standby_yet(status: int, text: str,
                         view: Callable[[], dict[str, Any] | None] = lambda: None) -> bool:
    """Patroni's refusal of a switchover in synchronous mode while no replica is its synchronous
    standby yet: HTTP 412 "can not find sync_standby" (no candidate asked), or "candidate name does
    not match with sync_standby" while the cluster's ``view`` (GET /cluster, asked only then) shows
    no member as sync_standby, as right after an earlier switchover, before the old leader,
    streaming again, is named synchronous. A candidate refused while another replica is the sync
    standby stands."""
    if status != 412:
        return False
    if "can not find sync_standby" in text:
        return True
    if "candidate name does not match with sync_standby" not in text:
        return False
    members = (view() or {}).get("members") or []
    return not any(m.get("role") == "sync_standby" for m in members if isinstance(m, dict))


def _still_under_way(status: int, text: str) -> bool:
    """Patroni's answer to a switchover or failover that it accepted but did not see end within
    its own wait (twice loop_wait, at least 20 s; "Switchover status unknown"): the request stays
    in the DCS and the leader acts on it, as on an emulated VM whose old primary takes longer to
    stop. The caller waits for the new leader."""
    return status == 503 and text.strip().endswith("status unknown")


# Decisions: Patroni's answers -> members and health (pure, unit-tested on recorded answers) ------
def members_from_cluster(view: dict[str, Any] | None) -> dict[str, Member]:
    """The members Patroni's /cluster answer lists, by name (a standby leader leads too)."""
    seen: dict[str, Member] = {}
    for m in (view or {}).get("members", []):
        lag = m.get("lag")
        seen[m["name"]] = Member(
            name=m["name"],
            host=m.get("host", ""),
            role="leader" if m.get("role") in ("leader", "standby_leader") else m.get("role", ""),
            state=m.get("state", ""),
            timeline=m.get("timeline"),
            lag_mb=round(lag / 1048576, 1) if isinstance(lag, int) else None,
            pending_restart=bool(m.get("pending_restart")),
            pending_changes=dict(m.get("pending_restart_reason") or {}),
        )
    return seen


def cluster_members(view: dict[str, Any] | None, addresses: dict[str, str],
                    ask_itself: Callable[[str], dict[str, Any] | None]) -> list[Member]:
    """Every PostgreSQL node (``addresses``: name -> address) as a member. Members missing from
    the DCS view are asked themselves (``ask_itself``: their own /patroni answer, None when silent;
    the REST API answers without the DCS), so a lost DCS shows running replicas, not "stopped"."""
    seen = members_from_cluster(view)
    return [seen.get(name) or member_from_itself(name, address, ask_itself(name))
            for name, address in addresses.items()]


def member_from_itself(name: str, address: str, own: dict[str, Any] | None) -> Member:
    """A member missing from the DCS view, from its own /patroni answer (None: it is down)."""
    if own is None:
        return Member(name=name, host=address, role="", state="stopped")
    role = {"primary": "leader", "master": "leader"}.get(own.get("role", ""), own.get("role", ""))
    return Member(name=name, host=address, role=role,
                  state=f"{own.get('state', 'unknown')}, no DCS", timeline=own.get("timeline"))


def cluster_health(view: dict[str, Any] | None, members: list[Member], backends: list[haproxy.Backend] | None,
                   haproxy_problem: str | None = None) -> Health:
    """One running leader, every other member streaming, HAProxy's primary port on the leader
    alone. ``backends`` is None when the lab has no HAProxy or its stats did not answer
    (``haproxy_problem`` says why)."""
    problems = [] if view is not None else ["no member can read the DCS (is etcd/Consul down?)"]
    # A standby cluster's leader (a two-site lab's standby site) streams from the other site: it
    # leads its cluster, and HAProxy sends it no writes (its /primary answers 503).
    standby = any(m.get("role") == "standby_leader" for m in (view or {}).get("members", []))
    leaders = [m for m in members if m.role == "leader" and (m.state == "running"
                                                             or (standby and m.state == "streaming"))]
    if len(leaders) != 1:
        problems.append(f"{len(leaders)} running leaders (expected 1)")
    for m in members:
        if m.role != "leader" and m.state != "streaming":
            problems.append(f"{m.name} is {m.state or 'unknown'}, not streaming")
    leader = leaders[0].name if len(leaders) == 1 else None
    if haproxy_problem:
        problems.append(haproxy_problem)
    elif backends is not None:
        up = {b.server for b in backends if b.proxy == "primary" and b.status == "UP"}
        if leader and standby and up:
            problems.append(f"HAProxy routes writes to {sorted(up)} in a standby cluster")
        elif leader and not standby and up != {leader}:
            problems.append(f"HAProxy routes writes to {sorted(up) or 'nobody'}, not to the leader {leader}")
    return Health(leader, members, problems, backends or [])


class PatroniSpec(StackSpec):
    name = "patroni"
    roles = ("dcs", "postgres", "haproxy", BACKUP_ROLE)
    settings = PatroniSettings
    uses_dcs = True
    default_nodes = (
        DefaultNode("dcs", "192.168.11.100", "dcs", "the DCS (etcd, or Consul on VMs) and the backup repository",
                    also=(BACKUP_ROLE,)),
        DefaultNode("haproxy", "192.168.11.101", "haproxy",
                    "5000 / 5001 -> leader / replicas (pooled), 5002 / 5003 direct, 7000 stats"),
        DefaultNode("pg1", "192.168.11.120", "postgres", "PostgreSQL + Patroni + PgBouncer"),
        DefaultNode("pg2", "192.168.11.121", "postgres"),
        DefaultNode("pg3", "192.168.11.122", "postgres"),
    )
    comments: ClassVar[Mapping[str, str]] = {
        "patroni": "Patroni's dynamic configuration; `pglab up` applies changes",
        "patroni.ttl": "seconds before a silent leader loses its lock (>= 20)",
        "patroni.maximum_lag_on_failover": "bytes a replica may lag and still be promoted",
        "patroni.synchronous_mode": "true: a commit waits for a replica; no acknowledged write lost",
        "patroni.failsafe_mode": "true: the leader stays primary without the DCS while every member answers it",
    }
    packages = ("etcd-server", "etcd-client", "haproxy", "python3-venv", "python3-packaging")
    box_disabled_units = ("etcd.service", "haproxy.service")
    checks = ("test_01_services", "test_01_tls_patroni", "test_03_routing")
    # Patroni's HA loop on the member that took (or lost, or kept) the leader lock says why.
    decision_log = DecisionLog("postgres", (
        r"promoted self to", r"acquired session lock", r"demot(ed|ing) self", r"failsafe mode is enabled",
        r"Cleaning up failover key", r"(manual failover|switchover): demoting"))
    backups = True
    accounts = (REPLICATION, REWIND, RESTAPI)
    replication_account = REPLICATION
    ports: ClassVar[Mapping[str, int]] = {"patroni": 8008, "etcd": 2379, "etcd_peer": 2380, "consul": 8500}
    # Guests 10x slower than the host, sharing its CPUs: etcd's sub-second elections would flap
    # under load, and Patroni's 3 s connections to PostgreSQL time out. (Patroni's HA timings are
    # the topology's `patroni:` section: an emulated lab sets calmer ones there.)
    slow_machine_variables: ClassVar[Mapping[str, Any]] = {
        "etcd_heartbeat_interval": 500, "etcd_election_timeout": 5000, "patroni_connect_timeout": 20,
    }

    cannot_rebuild = None  # Patroni reinitializes a member on request (its REST API)
    # A site's cluster is a Patroni standby cluster of the other site's (standby_cluster: in its DCS).
    cannot_stand_by = None
    site_roles: ClassVar[Mapping[str, str]] = {
        "dcs": "each site's cluster keeps its state in its own DCS, so losing one site leaves the other's",
        "haproxy": "the other site's standby leader replicates through this site's write endpoint, which "
                   "follows an in-site failover",
    }

    def client(self) -> type[Stack]:
        return PatroniStack

    def state_store(self, topology: Topology) -> tuple[str, list[tuple[Node, str]]]:
        """The DCS: every dcs node's etcd (or Consul)."""
        return f"the DCS ({topology.dcs})", [(node, topology.dcs) for node in topology.with_role("dcs")]

    def leader_lease(self, topology: Topology) -> float | None:
        return float(topology.section(self.name, PatroniSettings).ttl)

    def service(self, role: str, topology: Topology) -> str:
        # The DCS's service is named after it: etcd or consul.
        return {"dcs": topology.dcs, "postgres": "patroni", "haproxy": "haproxy",
                BACKUP_ROLE: pgbackrest.SERVICE}[role]

    def role_ports(self, ports: Ports) -> dict[str, list[int]]:
        return {"dcs": [ports.etcd, ports.etcd_peer], "postgres": [ports.postgres, ports.patroni],
                "haproxy": [ports.haproxy_primary, ports.haproxy_replicas, ports.haproxy_stats],
                **pgbackrest.role_ports(ports)}

    def check(self, topology: Topology) -> None:
        if not topology.with_role("dcs"):
            raise FieldProblem(("nodes",), "stack patroni needs a node with the role dcs (it runs etcd or Consul); "
                               "add `dcs` to a node's roles")

    def inventory_vars(self, topology: Topology) -> dict[str, Any]:
        ports = topology.ports
        return {
            "patroni_scope": topology.postgres.scope,
            "patroni_dcs": topology.dcs,
            "patroni_dcs_port": ports.consul if topology.dcs == "consul" else ports.etcd,
            "patroni_restapi_port": ports.patroni,
            "patroni_postgresql_parameters": dict(topology.postgres.parameters),
            **{f"patroni_{key}": value for key, value in self.dynamic(topology).items()},
            "etcd_client_port": ports.etcd,
            "etcd_peer_port": ports.etcd_peer,
        }

    def site_variables(self, topology: Topology, site: str) -> dict[str, Any]:
        """The first site's cluster keeps a permanent replication slot for the other's standby
        leader (WAL it holds bounded by max_slot_wal_keep_size); the other site's cluster starts
        as a standby cluster of the first, streaming over TLS through the first site's direct write
        endpoint, so an in-site failover there does not break it. Only bootstrap reads these: the
        sites' roles change later through the DCS (:mod:`pglab.sites`), never by `up`."""
        primary = topology.sites[0]
        parameters = {**SITE_PARAMETERS, **topology.postgres.parameters}
        if site == primary:
            other = next(s for s in topology.sites if s != site)
            return {"patroni_slots": {site_slot(other): {"type": "physical"}},
                    "patroni_postgresql_parameters": parameters}
        router, port, slot = self.site_source(topology, site, primary)
        return {"patroni_standby_cluster": {"router": router.name, "port": port, "slot": slot},
                "patroni_postgresql_parameters": parameters,
                # pgBackRest makes a stanza from a primary only: the site's promotion creates it.
                "pgbackrest_stanza_create": False}

    def site_source(self, topology: Topology, site: str, following: str) -> tuple[Node, int, str]:
        """The followed site's router and its direct write port (PostgreSQL itself, not the
        pooler: a walsender cannot go through PgBouncer), which moves with an in-site failover."""
        router = next(n for _i, n in topology.site_nodes(following) if "haproxy" in n.roles)
        ports = topology.ports
        port = ports.haproxy_primary_direct if pooler.enabled(topology) else ports.haproxy_primary
        return router, port, site_slot(site)

    def follow_while_down(self, topology: Topology, node_root: str, on_this_machine: bool,
                          source: StandbySource) -> tuple[str, ...]:
        """`patronictl edit-config`, which writes the DCS itself (no member need run):
        ``standby_cluster`` set to ``source``, the permanent slots the primary kept dropped. A
        member that was the primary then starts as a standby leader (or a replica), is rewound
        from ``source`` where its timeline went ahead, and is never promoted: started without it,
        it would promote onto a timeline whose number the other site took too, which hides the
        divergence from the rewind check."""
        venv = self.machine_variables()["patroni_venv"] if on_this_machine else _role_defaults()["patroni_venv"]
        return (f"{venv}/bin/patronictl", "-c", f"{node_root}/{CONFIG_SUBPATH}", "edit-config", "--force", "--quiet",
                "-s", "standby_cluster=" + json.dumps(standby_cluster(source)), "-s", "slots=null")

    def dynamic(self, topology: Topology) -> dict[str, Any]:
        """The topology's ``patroni:`` section in Patroni's own words."""
        return topology.section(self.name, PatroniSettings).dynamic()

    def entry_points(self, topology: Topology) -> list[tuple[Node, int]]:
        ports = topology.ports
        direct = (ports.haproxy_primary_direct, ports.haproxy_replicas_direct) if pooler.enabled(topology) else ()
        return [(node, port) for node in topology.with_role("haproxy")
                for port in (ports.haproxy_primary, ports.haproxy_replicas, *direct)]

    def tls_services(self, topology: Topology) -> list[TlsService]:
        """PostgreSQL and Patroni's REST API on each member, the DCS (which requires a client
        certificate), HAProxy's stats page. HAProxy only relays PostgreSQL's TLS on its client
        ports and checks the REST API with the CA."""
        ports = topology.ports
        found = [service for node in topology.with_role("postgres")
                 for service in (TlsService(node, "postgresql", ports.postgres, postgres=True),
                                 TlsService(node, "patroni", ports.patroni))]
        dcs_port = ports.etcd if topology.dcs == "etcd" else ports.consul
        return found + [TlsService(node, topology.dcs, dcs_port, client_certificate=True)
                        for node in topology.with_role("dcs")]

    def tls_rotation(self, topology: Topology) -> list[Rotation]:
        """Patroni rereads its REST API certificate and reloads PostgreSQL on SIGHUP; PostgreSQL
        rereads its certificate then. etcd reads its certificate anew for every new connection but
        its CA bundle only when it starts (roles/etcd/tasks/certificates.yml restarts a member whose
        bundle changed); Consul restarts when its copy changed. A DCS member restarts one at a time,
        so the DCS keeps its quorum."""
        dcs = [Rotation(node, "Restart etcd if its CA bundle changed", "etcd", "certificates", "etcd",
                        one_at_a_time=True) if topology.dcs == "etcd" else
               Rotation(node, "Give Consul its copy of the certificates", "consul", "config", "consul",
                        one_at_a_time=True)
               for node in topology.with_role("dcs")]
        return dcs + [Rotation(node, "Reload Patroni and its PostgreSQL", "pglab", "reload", "patroni")
                      for node in topology.with_role("postgres")]

    def routes(self, topology: Topology) -> list[Route]:
        """Writes to the member whose REST API answers 200 on /primary; reads to every streaming
        replica (/replica), round robin. OPTIONS: the status code alone, no body. With the pooler
        on, 5000 / 5001 reach the member's PgBouncer (checked too) and 5002 / 5003 PostgreSQL."""
        ports = topology.ports
        tls_comment = ("# Clients talk TLS with PostgreSQL itself through these TCP ports; the checks ask Patroni"
                       " over\n# HTTPS and verify its certificate (and the member's name in it) against the lab's CA.")
        primary = HealthCheck("OPTIONS", "/primary", ports.patroni, topology.tls)
        replica = HealthCheck("OPTIONS", "/replica", ports.patroni, topology.tls)
        if not pooler.enabled(topology):
            return [Route("primary", ports.haproxy_primary, ports.postgres, primary,
                          "Writes: only the member whose Patroni answers 200 on /primary.", tls_comment=tls_comment),
                    Route("replicas", ports.haproxy_replicas, ports.postgres, replica,
                          "Reads: every streaming replica, round robin.", balance="roundrobin", reads=True)]
        pooled = ports.pooler
        pooled_comment = ("# Clients talk TLS with the member's PgBouncer, which talks TLS with its PostgreSQL; the\n"
                          "# checks ask PgBouncer for TLS, then Patroni over HTTPS (its certificate verified).")
        return [Route("primary", ports.haproxy_primary, pooled, primary,
                      "Writes, pooled: the PgBouncer of the member whose Patroni answers 200 on /primary.",
                      tls_comment=pooled_comment, pooler_port=pooled),
                Route("replicas", ports.haproxy_replicas, pooled, replica,
                      "Reads, pooled: the PgBouncer of every streaming replica, round robin.",
                      balance="roundrobin", reads=True, pooler_port=pooled),
                Route("primary_direct", ports.haproxy_primary_direct, ports.postgres, primary,
                      "Writes, direct: PostgreSQL of the member whose Patroni answers 200 on /primary.",
                      tls_comment=tls_comment),
                Route("replicas_direct", ports.haproxy_replicas_direct, ports.postgres, replica,
                      "Reads, direct: PostgreSQL of every streaming replica, round robin.",
                      balance="roundrobin", reads=True)]

    def primary_check(self, topology: Topology) -> str:
        """Patroni's REST API on the node's own address answers 200 on /primary only on the leader
        (HTTPS, its certificate verified against the lab's CA, in a TLS lab)."""
        scheme, ca = ("https", " --cacert {{ pglab_tls_ca_file }}") if topology.tls else ("http", "")
        return (f"curl --silent --fail --output /dev/null --max-time 2{ca} "
                f"{scheme}://{{{{ pglab_address }}}}:{topology.ports.patroni}/primary")

    def prerequisites(self, topology: Topology) -> list[Prerequisite]:
        venv = paths.services_venv()
        needed = [Prerequisite(f"{venv}/bin/patroni", VENV_PACKAGE, (venv / "bin" / "patroni").exists(),
                               user_installable=True)]
        if topology.with_role("dcs"):
            needed.append(Prerequisite("etcd", "etcd-server", prerequisites.has_binary("etcd")))
        if topology.with_role("haproxy"):
            needed.append(Prerequisite("haproxy", "haproxy", prerequisites.has_binary("haproxy", "/usr/sbin/haproxy")))
        return needed

    def package_roles(self, topology: Topology) -> list[str]:
        return [*(["etcd"] if topology.with_role("dcs") else []), "patroni",
                *(["haproxy"] if topology.with_role("haproxy") else [])]

    def machine_variables(self) -> dict[str, Any]:
        # Nodes on this machine share one venv, pglab's own (no root needed to build it).
        return {"patroni_venv": str(paths.services_venv())}

    def user_install_variables(self) -> dict[str, Any] | None:
        return {"pglab_prepare_roles": [ROLE], "patroni_install_system_packages": False}

    def box_venvs(self) -> list[tuple[str, list[str]]]:
        defaults = _role_defaults()
        return [(str(defaults["patroni_venv"]), [str(p) for p in defaults["patroni_pip_packages"]])]

    def restore_steps(self, topology: Topology, node_roots: Mapping[str, str], on_this_machine: bool,
                      leader: str) -> RestoreSteps:
        """Forget: `patronictl remove SCOPE` on the leader, its confirmations answered (the scope,
        the sentence, and the leader's name if a leader key is still there): the DCS then holds no
        trace of the cluster, no last leader position a restored primary would look lagging
        against, no old timelines. Patroni then adopts the restored leader and makes the replicas
        itself (from the repository first, ``create_replica_methods``)."""
        venv = self.machine_variables()["patroni_venv"] if on_this_machine else _role_defaults()["patroni_venv"]
        scope = topology.postgres.scope
        answers = f"{scope}\nYes I am aware\n{leader}\n"
        patronictl = shlex.join([f"{venv}/bin/patronictl", "-c", f"{node_roots[leader]}/{CONFIG_SUBPATH}",
                                 "remove", scope])
        return RestoreSteps(forget=((leader, ("sh", "-c", f"printf %s {shlex.quote(answers)} | {patronictl}")),))


# Two-site labs ------------------------------------------------------------------------------------
# Every cluster of a two-site lab bounds the WAL a permanent slot holds while the other site is
# away: past it the slot is lost and the standby site catches up from its repository or a new copy.
SITE_PARAMETERS: dict[str, str | int | float | bool] = {"max_slot_wal_keep_size": "1GB"}


def standby_cluster(source: StandbySource) -> dict[str, Any]:
    """Patroni's ``standby_cluster`` section for ``source``: the remote's first copy by
    pg_basebackup (over TLS, as every replication connection)."""
    return {"host": source.host, "port": source.port, "primary_slot_name": source.slot,
            "create_replica_methods": ["basebackup"]}


def site_slot(site: str) -> str:
    """The permanent replication slot ``site``'s standby leader streams through."""
    return "site_" + site.replace("-", "_")


def _role_defaults() -> dict[str, Any]:
    path = Path(paths.roles_dir()) / ROLE / "defaults" / "main.yml"
    return dict(yaml.safe_load(path.read_text()))


SPEC = PatroniSpec()
