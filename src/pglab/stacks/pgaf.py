"""The pg_auto_failover stack client: the formation's state from the monitor, operations through
the monitor's SQL API (what `pg_autoctl show state`, `perform switchover` and `perform promotion`
call), settings and restarts on the data nodes themselves.

It is given node addresses and credentials; it never knows how the machines were made.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

import psycopg
from psycopg import sql as q
from pydantic import Field

from pglab import backup_role, prerequisites, sql
from pglab.providers.base import Prerequisite
from pglab.secrets import PGAF_MONITOR, SUPERUSER
from pglab.stacks.base import ClientEndpoint, DefaultNode, Health, Member, Stack, StackError, StackSite, StackSpec
from pglab.topology import BACKUP_ROLE, NAME_PATTERN, FieldProblem, Ports, Strict, Topology

MONITOR_DB = "pg_auto_failover"
MONITOR_USER = "autoctl_node"
# States in which a node is the formation's primary and takes writes.
PRIMARY_STATES = frozenset({"single", "wait_primary", "primary", "join_primary", "apply_settings"})
# pg_autoctl starts PostgreSQL with -h ADDRESS while its own include says listen_addresses = '*':
# PostgreSQL flags that as pending restart although no restart would change anything.
NEVER_PENDING = frozenset({"listen_addresses"})

NODES_QUERY = """
SELECT nodename, nodehost, nodeport, reportedstate::text, goalstate::text, reportedpgisrunning, health,
       reportedtli, reportedlsn::text, candidatepriority, replicationquorum, reportedrepstate
FROM pgautofailover.node WHERE formationid = %s ORDER BY nodeid
"""
PENDING_QUERY = """
SELECT DISTINCT ON (f.name) f.name, s.setting, f.setting
FROM pg_file_settings f JOIN pg_settings s ON s.name = f.name
WHERE s.pending_restart AND f.error IS NULL
ORDER BY f.name, f.seqno DESC
"""


@dataclass(frozen=True)
class MonitorEndpoints:
    monitor: str  # address of the monitor's PostgreSQL
    monitor_port: int
    postgres: dict[str, str]  # data node name -> address
    postgres_port: int
    formation: str = "default"


class PgAutoFailoverStack(Stack):
    name = "pg_auto_failover"

    def __init__(self, endpoints: MonitorEndpoints, secrets: dict[str, str], timeout: float = 2.0) -> None:
        self.endpoints = endpoints
        self.secrets = secrets
        self.timeout = timeout

    @classmethod
    def from_site(cls, site: StackSite, timeout: float = 2.0) -> PgAutoFailoverStack:
        topo = site.topology
        monitor = topo.with_role("monitor")[0]
        endpoints = MonitorEndpoints(
            monitor=site.addresses[monitor.name],
            monitor_port=topo.ports.monitor,
            postgres={n.name: site.addresses[n.name] for n in topo.with_role("postgres")},
            postgres_port=topo.ports.postgres,
            formation=topo.section(SPEC.name, PgAutoFailoverSettings).formation,
        )
        return cls(endpoints, site.secrets, timeout)

    # Connections -----------------------------------------------------------------------------
    def _monitor(self) -> psycopg.Connection:
        return psycopg.connect(
            host=self.endpoints.monitor, port=self.endpoints.monitor_port, dbname=MONITOR_DB, user=MONITOR_USER,
            password=self.secrets[PGAF_MONITOR.password_variable], autocommit=True,
            connect_timeout=max(int(self.timeout), 1), application_name="pglab",
        )

    def _monitor_rows(self, query: str, params: Any = None) -> list[tuple]:
        with self._monitor() as conn:
            return conn.execute(query, params).fetchall()

    def _node(self, name: str) -> psycopg.Connection:
        return sql.connect(self.endpoints.postgres[name], self.endpoints.postgres_port,
                           self.secrets[SUPERUSER.password_variable])

    # Stack -----------------------------------------------------------------------------------
    def monitor_nodes(self) -> list[tuple] | None:
        """The monitor's rows for the formation's nodes, or None when the monitor does not answer."""
        try:
            return self._monitor_rows(NODES_QUERY, (self.endpoints.formation,))
        except (OSError, psycopg.Error):
            return None

    def members(self) -> list[Member]:
        return self._members(self.monitor_nodes())

    def _members(self, rows: list[tuple] | None) -> list[Member]:
        by_name = {r[0]: r for r in rows or []}
        leader_lsn = next((_lsn(r[8]) for r in by_name.values() if _leading(r[3], r[4])), None)
        members = []
        for name, address in self.endpoints.postgres.items():
            row = by_name.get(name)
            if row is None:
                state = "monitor unreachable" if rows is None else "not registered"
                members.append(Member(name=name, host=address, role="", state=state))
                continue
            _, host, port, current, assigned, pg_running, health, tli, lsn, _prio, _quorum, _sync = row
            role = "leader" if _leading(current, assigned) else "replica"
            if health == 0:
                state = "unreachable"
            elif not pg_running:
                state = "stopped"
            elif role == "leader":
                state = "running"
            elif current == assigned == "secondary":
                state = "streaming"
            else:
                state = current if current == assigned else f"{current} -> {assigned}"
            lag = None
            if role == "replica" and leader_lsn is not None and _lsn(lsn) is not None:
                lag = round(max(leader_lsn - _lsn(lsn), 0) / 1048576, 1)  # type: ignore[operator]  # _lsn(lsn) checked above
            pending = self._pending(name) if health == 1 and pg_running else {}
            members.append(Member(
                name=name, host=host, port=port, role=role, state=state, timeline=tli, lag_mb=lag,
                pending_restart=bool(pending), pending_changes=pending,
                current_state=current, assigned_state=assigned,
            ))
        return members

    def _pending(self, name: str) -> dict[str, dict[str, str]]:
        """Settings pending a restart on the node: name -> old (running) and new (file) value."""
        try:
            with self._node(name) as conn:
                rows = conn.execute(PENDING_QUERY).fetchall()
        except (OSError, psycopg.Error):
            return {}
        return {n: {"old_value": old, "new_value": new} for n, old, new in rows if n not in NEVER_PENDING}

    def health(self) -> Health:
        rows = self.monitor_nodes()
        members = self._members(rows)
        problems = [] if rows is not None else [
            f"the monitor at {self.endpoints.monitor}:{self.endpoints.monitor_port} does not answer"]
        leaders = [m for m in members if m.role == "leader" and m.state == "running"]
        if rows is not None and len(leaders) != 1:
            problems.append(f"{len(leaders)} running primaries (expected 1)")
        for m in members:
            if m.role == "replica" and m.state != "streaming":
                problems.append(f"{m.name} is {m.state or 'unknown'}, not a streaming secondary")
            elif m.role == "" and rows is not None:
                problems.append(f"{m.name} is {m.state}")
        # The monitor fails over to a standby only once the primary has reported it in sync: until
        # then a lost primary would leave the formation without one.
        sync = {r[0]: r[11] for r in rows or []}
        if len(leaders) == 1 and len(members) > 1 and sync.get(leaders[0].name) not in ("sync", "quorum"):
            problems.append(f"the primary {leaders[0].name} reports its standbys as "
                            f"{sync.get(leaders[0].name) or 'unknown'}, not yet in sync")
        return Health(leaders[0].name if len(leaders) == 1 else None, members, problems)

    def client_endpoints(self) -> dict[str, ClientEndpoint]:
        hosts = tuple(self.endpoints.postgres.values())
        port = self.endpoints.postgres_port
        return {"write": ClientEndpoint(hosts, port, "read-write"),
                "read": ClientEndpoint(hosts, port, "standby")}

    def uri(self) -> str | None:
        """The formation's URI as the monitor publishes it (`pg_autoctl show uri --formation`)."""
        try:
            rows = self._monitor_rows("SELECT pgautofailover.formation_uri(%s)", (self.endpoints.formation,))
        except (OSError, psycopg.Error):
            return None
        return rows[0][0] if rows else None

    def extension_version(self) -> str | None:
        """The version of the monitor's pgautofailover extension; None when it has none."""
        rows = self._monitor_rows("SELECT extversion FROM pg_extension WHERE extname = 'pgautofailover'")
        return str(rows[0][0]) if rows else None

    # Operations ------------------------------------------------------------------------------
    def _perform(self, what: str, query: str, params: tuple, settle: float = 30.0) -> str:
        """Call a monitor function that starts a transition. pg_autoctl may report a monitor error
        for a transition that did start: judge by the assigned states, not only by the error. The
        monitor refuses while the formation is still moving (a primary back in wait_primary after
        a standby restarted): try again until it has settled, for up to ``settle`` seconds."""
        deadline = time.monotonic() + settle
        while True:
            before = {r[0]: r[4] for r in self.monitor_nodes() or []}
            try:
                self._monitor_rows(query, params)
                return f"{what} started"
            except psycopg.Error as exc:
                time.sleep(0.5)
                after = {r[0]: r[4] for r in self.monitor_nodes() or []}
                if after and after != before:
                    return f"{what} started (the monitor said: {sql.first_line(exc)})"
                if time.monotonic() > deadline:
                    raise StackError(f"the monitor refused the {what}: {sql.first_line(exc)}") from None
            except OSError as exc:
                raise StackError(f"the monitor does not answer: {exc}") from None
            time.sleep(0.5)

    def switchover(self, candidate: str | None = None, leader: str | None = None) -> str:
        """`pg_autoctl perform switchover` (the monitor picks the standby), or `perform promotion`
        of ``candidate``."""
        if candidate:
            return self.failover(candidate)
        return self._perform("switchover", "SELECT pgautofailover.perform_failover(%s, 0)",
                             (self.endpoints.formation,))

    def failover(self, candidate: str) -> str:
        """`pg_autoctl perform promotion` of ``candidate``."""
        return self._perform(f"promotion of {candidate}", "SELECT pgautofailover.perform_promotion(%s, %s)",
                             (self.endpoints.formation, candidate))

    def set_parameters(self, parameters: dict[str, Any]) -> None:
        """ALTER SYSTEM on every data node that answers, then a reload (a node rebuilt later
        gets the primary's postgresql.auto.conf with its base backup or pg_rewind)."""
        reached, errors = [], []
        for name in self.endpoints.postgres:
            try:
                with self._node(name) as conn:
                    for key, value in parameters.items():
                        conn.execute(q.SQL("ALTER SYSTEM SET {} = {}").format(q.Identifier(key),
                                                                            q.Literal(str(value))))
                    conn.execute("SELECT pg_reload_conf()")
                reached.append(name)
            except (OSError, psycopg.Error) as exc:
                errors.append(f"{name}: {sql.first_line(exc)}")
        if not reached:
            raise StackError("no data node took the configuration change: " + "; ".join(errors))

    def parameters(self) -> dict[str, Any]:
        """The settings pglab set with ALTER SYSTEM, as the primary has them."""
        leader = self.leader() or next(iter(self.endpoints.postgres))
        try:
            with self._node(leader) as conn:
                rows = conn.execute("SELECT name, setting FROM pg_file_settings "
                                    "WHERE sourcefile LIKE '%%/postgresql.auto.conf' AND error IS NULL "
                                    "ORDER BY seqno").fetchall()
        except (OSError, psycopg.Error) as exc:
            raise StackError(f"{leader} does not answer: {sql.first_line(exc)}") from None
        return dict(rows)

    def configuration(self) -> dict[str, Any]:
        rows = self._monitor_rows("SELECT number_sync_standbys FROM pgautofailover.formation WHERE formationid = %s",
                                  (self.endpoints.formation,))
        nodes = {r[0]: {"candidate_priority": r[9], "replication_quorum": r[10]} for r in self.monitor_nodes() or []}
        return {"formation": self.endpoints.formation, "number_sync_standbys": rows[0][0] if rows else None,
                "nodes": nodes, "uri": self.uri(), "parameters": self.parameters()}

    def restart(self, node: str, timeout: float = 120.0) -> None:
        """Restart PostgreSQL in place: a fast shutdown signalled from inside the server (the
        keeper, which runs PostgreSQL, starts it again at once); returns once it answers again.

        The monitor fails a primary over as soon as its keeper reports PostgreSQL down, so while
        the primary restarts the other nodes are no candidates (priority 0), and get their
        priority back once the formation has settled again."""
        saved: dict[str, int] = {}
        if self.leader() == node:
            saved = {r[0]: r[9] for r in self.monitor_nodes() or [] if r[0] != node and r[9] > 0}
            for name in saved:
                self._set_priority(name, 0)
            self._wait_settled(timeout)
        try:
            self._restart_in_place(node, timeout)
            if saved:
                self._wait_settled(timeout)
        finally:
            for name, priority in saved.items():
                self._set_priority(name, priority)
        if saved:
            self._wait_settled(timeout)

    def _set_priority(self, node: str, priority: int) -> None:
        self._monitor_rows("SELECT pgautofailover.set_node_candidate_priority(%s, %s, %s)",
                           (self.endpoints.formation, node, priority))

    def _wait_settled(self, timeout: float) -> None:
        """Until every node is in the state the monitor assigned it, with one primary."""
        deadline = time.monotonic() + timeout
        detail = "no answer from the monitor"
        while time.monotonic() < deadline:
            rows = self.monitor_nodes()
            if rows:
                moving = [f"{r[0]} {r[3]} -> {r[4]}" for r in rows if r[3] != r[4] or not r[5]]
                primaries = [r[0] for r in rows if _leading(r[3], r[4])]
                if not moving and len(primaries) == 1:
                    return
                detail = ", ".join(moving) or f"{len(primaries)} primaries"
            time.sleep(0.3)
        raise StackError(f"the formation did not settle within {timeout:.0f} s: {detail}")

    def _restart_in_place(self, node: str, timeout: float) -> None:
        try:
            with self._node(node) as conn:
                started = conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]  # type: ignore[index]  # one row always
                pid = int(conn.execute("SELECT pg_read_file('postmaster.pid')").fetchone()[0].split()[0])  # type: ignore[index]  # one row always
                # The shutdown may end this very session before it answers: judge by the start time.
                with contextlib.suppress(psycopg.Error):
                    conn.execute(q.SQL("COPY (SELECT 1) TO PROGRAM {}").format(q.Literal(f"kill -INT {pid}")))
        except (OSError, psycopg.Error) as exc:
            raise StackError(f"could not restart PostgreSQL on {node}: {sql.first_line(exc)}") from None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, psycopg.Error), self._node(node) as conn:
                now = conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]  # type: ignore[index]  # one row always
                if now > started:
                    return
            time.sleep(0.3)
        raise StackError(f"PostgreSQL on {node} did not come back within {timeout:.0f} s of its restart")

    def application_name(self, member: str) -> str:
        """pg_autoctl names each standby's replication connection after its node id."""
        rows = self._monitor_rows("SELECT nodeid FROM pgautofailover.node WHERE formationid = %s AND nodename = %s",
                                  (self.endpoints.formation, member))
        return f"pgautofailover_standby_{rows[0][0]}" if rows else member

    def history(self) -> list[dict[str, Any]]:
        """Promotions, oldest first: the monitor's events assigning wait_primary to a standby."""
        try:
            rows = self._monitor_rows(
                "SELECT reportedtli, eventtime::text, nodename, description FROM pgautofailover.event "
                "WHERE formationid = %s AND reportedstate = 'stop_replication' AND goalstate = 'wait_primary' "
                "ORDER BY eventid", (self.endpoints.formation,))
        except (OSError, psycopg.Error):
            return []
        return [{"timeline": tli, "time": at, "new_leader": name, "reason": text} for tli, at, name, text in rows]


def _leading(current: str, assigned: str) -> bool:
    return current in PRIMARY_STATES and assigned in PRIMARY_STATES


def _lsn(text: str | None) -> int | None:
    if not text or "/" not in text:
        return None
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


# The stack's declaration -----------------------------------------------------------------------

class PgAutoFailoverSettings(Strict):
    """stack pg_auto_failover: the formation the data nodes join and how it replicates."""

    formation: Annotated[str, Field(pattern=NAME_PATTERN)] = "default"
    # Standbys that must acknowledge each commit (pg_auto_failover's number_sync_standbys).
    number_sync_standbys: Annotated[int, Field(ge=0)] = 0
    # Data node name -> candidate priority (0 never promoted .. 100); unlisted nodes keep 50.
    candidate_priorities: dict[str, Annotated[int, Field(ge=0, le=100)]] = Field(default_factory=dict)



def _check_settings(topo: Topology) -> None:
    data_nodes = [n.name for n in topo.with_role("postgres")]
    settings = topo.section(SPEC.name, PgAutoFailoverSettings)
    for name in settings.candidate_priorities:
        if name not in data_nodes:
            raise FieldProblem(
                ("pg_auto_failover", "candidate_priorities", name),
                f"{name!r} is not a data node; list only nodes with the role postgres "
                f"({', '.join(data_nodes)})",
            )
    if settings.number_sync_standbys > max(len(data_nodes) - 2, 0):
        raise FieldProblem(
            ("pg_auto_failover", "number_sync_standbys"),
            f"{settings.number_sync_standbys} synchronous standbys need at least "
            f"{settings.number_sync_standbys + 2} data nodes (pg_auto_failover keeps one standby spare so "
            f"writes go on when a standby is lost); lower it or add data nodes",
        )
    if len(data_nodes) > 1 and not any(settings.candidate_priorities.get(n, 50) > 0 for n in data_nodes):
        raise FieldProblem(
            ("pg_auto_failover", "candidate_priorities"),
            "every data node has candidate priority 0, so none could ever be promoted; give at least "
            "one a priority above 0",
        )


class PgAutoFailoverSpec(StackSpec):
    name = "pg_auto_failover"
    roles = ("monitor", "postgres", BACKUP_ROLE)
    settings = PgAutoFailoverSettings
    default_nodes = (
        DefaultNode("monitor", "192.168.11.151", "monitor", "the pg_auto_failover monitor (port ports.monitor, 5431)"),
        DefaultNode("pg1", "192.168.11.152", "postgres", "PostgreSQL + its pg_autoctl keeper"),
        DefaultNode("pg2", "192.168.11.153", "postgres", "add pg3 (192.168.11.154) for a third data node"),
    )
    comments: ClassVar[Mapping[str, str]] = {
        "pg_auto_failover.number_sync_standbys": "standbys that must confirm each commit (<= data nodes - 2)",
        "pg_auto_failover.candidate_priorities": "e.g. {pg1: 50, pg2: 50}; 0 = never promoted, default 50",
    }
    role_notes: ClassVar[Mapping[str, str]] = {
        "dcs": "pg_auto_failover keeps its state in its monitor, not in a DCS; replace role dcs "
               "with monitor, or set stack: patroni",
        "haproxy": "pg_auto_failover clients reach the primary through the formation's multi-host URI "
                   "(target_session_attrs=read-write), not HAProxy; remove role haproxy, or set stack: patroni",
    }
    packages = ("postgresql-15-auto-failover", "pg-auto-failover-cli")
    checks = ("test_01_services_pg_auto_failover", "test_03_routing_pg_auto_failover")

    def client(self) -> type[Stack]:
        return PgAutoFailoverStack

    def service(self, role: str, topology: Topology) -> str:
        # `pg_autoctl run` runs the monitor and each data node's keeper alike.
        return {"postgres": "pgautofailover", "monitor": "pgautofailover", BACKUP_ROLE: backup_role.SERVICE}[role]

    def role_ports(self, ports: Ports) -> dict[str, list[int]]:
        return {"postgres": [ports.postgres], "monitor": [ports.monitor], **backup_role.role_ports(ports)}

    def check(self, topology: Topology) -> None:
        for i, node in enumerate(topology.nodes):
            if "monitor" in node.roles and "postgres" in node.roles:
                raise FieldProblem(
                    ("nodes", i, "roles"),
                    "the pg_auto_failover monitor must not share a node with a data node it watches; "
                    "put monitor on a node of its own",
                )
        if len(topology.with_role("monitor")) != 1:
            raise FieldProblem(("nodes",), "stack pg_auto_failover needs exactly one node with the role monitor")
        _check_settings(topology)

    def inventory_vars(self, topology: Topology) -> dict[str, Any]:
        settings = topology.section(self.name, PgAutoFailoverSettings)
        return {
            "pg_auto_failover_monitor_port": topology.ports.monitor,
            "pg_auto_failover_formation": settings.formation,
            "pg_auto_failover_number_sync_standbys": settings.number_sync_standbys,
            "pg_auto_failover_candidate_priorities": dict(settings.candidate_priorities),
        }

    def prerequisites(self, topology: Topology) -> list[Prerequisite]:
        version = topology.postgres.version
        extension = Path(f"/usr/share/postgresql/{version}/extension/pgautofailover.control")
        return [
            Prerequisite("pg_autoctl", "pg-auto-failover-cli", prerequisites.has_binary("pg_autoctl")),
            Prerequisite(f"the pgautofailover extension ({extension})", f"postgresql-{version}-auto-failover",
                         extension.exists()),
        ]

    def package_roles(self, topology: Topology) -> list[str]:
        return ["pg_auto_failover"]


SPEC = PgAutoFailoverSpec()
