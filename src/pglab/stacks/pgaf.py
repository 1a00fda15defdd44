"""The pg_auto_failover stack client: the formation's state from the monitor, operations through
the monitor's SQL API (what `pg_autoctl show state`, `perform switchover` and `perform promotion`
call), settings and restarts on the data nodes themselves.

It is given node addresses and credentials; it never knows how the machines were made.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

import psycopg
from psycopg import sql as q
from psycopg.rows import class_row, dict_row
from pydantic import Field

from pglab import paths, prerequisites, sql
from pglab.components import pgbackrest
from pglab.components.base import Rotation, TlsService
from pglab.prerequisites import Prerequisite
from pglab.secrets import SUPERUSER, Account
from pglab.stacks.base import (
    ClientEndpoint,
    DecisionLog,
    DefaultNode,
    Health,
    Member,
    RebuildSteps,
    RestoreSteps,
    Stack,
    StackError,
    StackSite,
    StackSpec,
)
from pglab.topology import BACKUP_ROLE, NAME_PATTERN, FieldProblem, Node, Ports, Strict, Topology

MONITOR_DB = "pg_auto_failover"
# pg_autoctl, as the pg_auto_failover role installs it (pg_auto_failover_binary).
BINARY = "/usr/bin/pg_autoctl"
# The script the role writes in the service user's home that registers the node with the monitor
# (pg_auto_failover_register_script): `pglab restore` runs it again.
REGISTER_SCRIPT = "pglab-register"
# A data node's candidate priority when the topology names none (candidate_priorities).
DEFAULT_CANDIDATE_PRIORITY = 50
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
# A file's value pending a restart is the one pg_file_settings flags "setting could not be
# applied": its last line per name (the highest seqno) is the pending value, error or not.
PENDING_QUERY = """
SELECT DISTINCT ON (f.name) f.name, s.setting, f.setting
FROM pg_file_settings f JOIN pg_settings s ON s.name = f.name
WHERE s.pending_restart
ORDER BY f.name, f.seqno DESC
"""
# The settings pglab set with ALTER SYSTEM, pending ones included (they are flagged "setting could
# not be applied" until the restart).
AUTO_CONF_QUERY = """
SELECT name, setting FROM pg_file_settings
WHERE sourcefile LIKE '%/postgresql.auto.conf' AND name IS NOT NULL ORDER BY seqno
"""

# pg_auto_failover names these two itself: keepers and pglab reach the monitor as autoctl_node, and
# standbys replicate (and rewind) as pgautofailover_replicator.
PGAF_MONITOR = Account("autoctl_node", "pg_auto_failover_monitor_user", "pg_auto_failover_monitor_password",
                       "pg_auto_failover monitor")
PGAF_REPLICATION = Account("pgautofailover_replicator", "pg_auto_failover_replication_user",
                           "pg_auto_failover_replication_password", "pg_auto_failover replication user")


@dataclass(frozen=True)
class MonitorNode:
    """One row of the monitor's pgautofailover.node (NODES_QUERY), read by column name."""

    nodename: str
    nodehost: str
    nodeport: int
    reportedstate: str  # the node's current state, as its keeper reported it
    goalstate: str  # the state the monitor assigned it
    reportedpgisrunning: bool
    health: int  # the monitor's health check: 1 healthy, 0 failing, -1 unknown
    reportedtli: int
    reportedlsn: str
    candidatepriority: int
    replicationquorum: bool
    reportedrepstate: str  # a primary's view of its standbys: async, sync, quorum ...

    @property
    def leading(self) -> bool:
        return _leading(self.reportedstate, self.goalstate)


@dataclass(frozen=True)
class MonitorEndpoints:
    monitor: str  # address of the monitor's PostgreSQL
    monitor_port: int
    postgres: dict[str, str]  # data node name -> address
    postgres_port: int
    formation: str = "default"
    ca_file: Path | None = None  # the lab's CA bundle: every connection verify-full; None: plaintext


class PgAutoFailoverStack(Stack):
    name = "pg_auto_failover"
    tolerates_lowered_standby_settings = False  # the keeper starts PostgreSQL with its files alone

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
            ca_file=site.ca_file,
        )
        return cls(endpoints, site.secrets, timeout)

    # Connections -----------------------------------------------------------------------------
    def _monitor(self) -> psycopg.Connection:
        conninfo: dict[str, Any] = {
            "host": self.endpoints.monitor, "port": self.endpoints.monitor_port, "dbname": MONITOR_DB,
            "user": MONITOR_USER, "password": self.secrets[PGAF_MONITOR.password_variable],
            "connect_timeout": max(int(self.timeout), 1), "application_name": "pglab",
            **sql.tls_keywords(self.endpoints.ca_file),
        }
        return sql.session(**conninfo)

    def _monitor_rows(self, query: str, params: Any = None) -> list[dict[str, Any]]:
        """The monitor's answer, each row by column name."""
        with self._monitor() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(query, params).fetchall()

    def _node(self, name: str) -> psycopg.Connection:
        return sql.connect(self.endpoints.postgres[name], self.endpoints.postgres_port,
                           self.secrets[SUPERUSER.password_variable], tls=sql.tls_keywords(self.endpoints.ca_file))

    # Stack -----------------------------------------------------------------------------------
    def monitor_nodes(self) -> list[MonitorNode] | None:
        """The monitor's rows for the formation's nodes, or None when the monitor does not answer."""
        try:
            with self._monitor() as conn, conn.cursor(row_factory=class_row(MonitorNode)) as cur:
                return cur.execute(NODES_QUERY, (self.endpoints.formation,)).fetchall()
        except (OSError, psycopg.Error):
            return None

    def extension_version(self) -> str | None:
        """The pgautofailover extension's version in the monitor's database (None: not installed);
        raises StackError when the monitor does not answer."""
        try:
            rows = self._monitor_rows("SELECT extversion FROM pg_extension WHERE extname = 'pgautofailover'")
        except (OSError, psycopg.Error) as exc:
            raise StackError(f"the monitor does not answer on {self.endpoints.monitor}:"
                             f"{self.endpoints.monitor_port}: {sql.first_line(exc)}") from None
        return rows[0]["extversion"] if rows else None

    def members(self) -> list[Member]:
        return self._members(self.monitor_nodes())

    def _members(self, rows: list[MonitorNode] | None) -> list[Member]:
        return members_from_monitor(rows, self.endpoints.postgres, self._pending)

    def _pending(self, name: str) -> dict[str, dict[str, str]]:
        """Settings pending a restart on the node: name -> old (running) and new (file) value."""
        try:
            with self._node(name) as conn:
                return pending_changes(conn.execute(PENDING_QUERY).fetchall())
        except (OSError, psycopg.Error):
            return {}

    def health(self) -> Health:
        rows = self.monitor_nodes()
        return formation_health(rows, self._members(rows),
                                f"{self.endpoints.monitor}:{self.endpoints.monitor_port}")

    def client_endpoints(self) -> dict[str, ClientEndpoint]:
        hosts = tuple(self.endpoints.postgres.values())
        port = self.endpoints.postgres_port
        return {"write": ClientEndpoint(hosts, port, "read-write"),
                "read": ClientEndpoint(hosts, port, "standby")}

    def uri(self) -> str | None:
        """The formation's URI as the monitor publishes it (`pg_autoctl show uri --formation`)."""
        try:
            tls = sql.tls_keywords(self.endpoints.ca_file)
            # The monitor writes the sslmode and CA file it is given into the URI (else: prefer).
            rows = self._monitor_rows("SELECT pgautofailover.formation_uri(%s, 'default', %s, %s)",
                                      (self.endpoints.formation, tls.get("sslmode", "prefer"),
                                       tls.get("sslrootcert", "")))
        except (OSError, psycopg.Error):
            return None
        return rows[0]["formation_uri"] if rows else None

    # Operations ------------------------------------------------------------------------------
    def _perform(self, what: str, query: str, params: tuple[Any, ...], settle: float = 30.0) -> str:
        """Call a monitor function that starts a transition. pg_autoctl may report a monitor error
        for a transition that did start: judge by the assigned states, not only by the error. The
        monitor refuses while the formation is still moving (a primary back in wait_primary after
        a standby restarted): try again until it has settled, for up to ``settle`` seconds."""
        deadline = time.monotonic() + settle
        while True:
            before = {r.nodename: r.goalstate for r in self.monitor_nodes() or []}
            try:
                self._monitor_rows(query, params)
                return f"{what} started"
            except psycopg.Error as exc:
                time.sleep(0.5)
                after = {r.nodename: r.goalstate for r in self.monitor_nodes() or []}
                if after and after != before:
                    return f"{what} started (the monitor said: {sql.first_line(exc)})"
                if time.monotonic() > deadline:
                    raise StackError(f"the monitor refused the {what}: {sql.first_line(exc)}") from None
            except OSError as exc:
                raise StackError(f"the monitor does not answer: {exc}") from None
            time.sleep(0.5)

    def checkpoint_primary(self) -> bool:
        """A CHECKPOINT on the primary while it still takes writes. The keeper stops a draining
        primary without one (pg_autoctl checkpoints first only for maintenance), so the shutdown
        checkpoint, during which nothing can be written, would flush every buffer dirtied since
        the last checkpoint; after this one it has almost nothing left to write. Best effort:
        False when no primary answers (a failover away from a lost primary goes on without it)."""
        primaries = [r.nodename for r in self.monitor_nodes() or []
                     if r.reportedstate in ("primary", "wait_primary", "single") and r.reportedpgisrunning]
        for name in primaries:
            try:
                with self._node(name) as conn:
                    conn.execute("CHECKPOINT")
                return True
            except (OSError, psycopg.Error):
                continue
        return False

    def switchover(self, candidate: str | None = None, leader: str | None = None) -> str:
        """`pg_autoctl perform switchover` (the monitor picks the standby), or `perform promotion`
        of ``candidate``; the primary checkpoints first (:meth:`checkpoint_primary`)."""
        if candidate:
            return self.failover(candidate)
        self.checkpoint_primary()
        return self._perform("switchover", "SELECT pgautofailover.perform_failover(%s, 0)",
                             (self.endpoints.formation,))

    def failover(self, candidate: str) -> str:
        """`pg_autoctl perform promotion` of ``candidate``, the primary checkpointed first when it
        answers (:meth:`checkpoint_primary`)."""
        self.checkpoint_primary()
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

    def parameters(self, names: Collection[str] = ()) -> dict[str, Any]:
        """The settings pglab set with ALTER SYSTEM, as the primary has them, and each of ``names``
        that postgresql.auto.conf does not set at the value the primary runs with (postgresql.conf,
        pg_autoctl's include, the default): a lab's first `up` must not report as applied a
        setting that was already so."""
        leader = self.leader() or next(iter(self.endpoints.postgres))
        try:
            with self._node(leader) as conn:
                configured: dict[str, str] = dict(conn.execute(AUTO_CONF_QUERY).fetchall())
                missing = [name for name in names if name not in configured]
                running = conn.execute("SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s)",
                                       (missing,)).fetchall() if missing else []
        except (OSError, psycopg.Error) as exc:
            raise StackError(f"{leader} does not answer: {sql.first_line(exc)}") from None
        return {**dict(running), **configured}

    def configuration(self) -> dict[str, Any]:
        rows = self._monitor_rows("SELECT number_sync_standbys FROM pgautofailover.formation WHERE formationid = %s",
                                  (self.endpoints.formation,))
        nodes = {r.nodename: {"candidate_priority": r.candidatepriority, "replication_quorum": r.replicationquorum}
                 for r in self.monitor_nodes() or []}
        return {"formation": self.endpoints.formation,
                "number_sync_standbys": rows[0]["number_sync_standbys"] if rows else None,
                "nodes": nodes, "uri": self.uri(), "parameters": self.parameters()}

    def restart(self, node: str, timeout: float = 120.0) -> None:
        """Restart PostgreSQL in place: a fast shutdown signalled from inside the server (the
        keeper, which runs PostgreSQL, starts it again at once); returns once it answers again.

        The monitor fails a primary over as soon as its keeper reports PostgreSQL down, so while
        the primary restarts the other nodes are no candidates (priority 0), and get their
        priority back once the formation has settled again."""
        saved: dict[str, int] = {}
        if self.leader() == node:
            saved = {r.nodename: r.candidatepriority for r in self.monitor_nodes() or []
                     if r.nodename != node and r.candidatepriority > 0}
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
                moving = [f"{r.nodename} {r.reportedstate} -> {r.goalstate}" for r in rows
                          if r.reportedstate != r.goalstate or not r.reportedpgisrunning]
                primaries = [r.nodename for r in rows if r.leading]
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
        return f"pgautofailover_standby_{rows[0]['nodeid']}" if rows else member

    def history(self) -> list[dict[str, Any]]:
        """Promotions, oldest first: the monitor's events assigning wait_primary to a standby."""
        try:
            rows = self._monitor_rows(
                "SELECT reportedtli, eventtime::text, nodename, description FROM pgautofailover.event "
                "WHERE formationid = %s AND reportedstate = 'stop_replication' AND goalstate = 'wait_primary' "
                "ORDER BY eventid", (self.endpoints.formation,))
        except (OSError, psycopg.Error):
            return []
        return [{"timeline": r["reportedtli"], "time": r["eventtime"], "new_leader": r["nodename"],
                 "reason": r["description"]} for r in rows]


def _leading(current: str, assigned: str) -> bool:
    return current in PRIMARY_STATES and assigned in PRIMARY_STATES


def _lsn(text: str | None) -> int | None:
    if not text or "/" not in text:
        return None
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


# Decisions: the monitor's rows -> members and health (pure, unit-tested on recorded answers) -----
def pending_changes(rows: list[tuple[str, str, str]]) -> dict[str, dict[str, str]]:
    """PENDING_QUERY's rows as Member.pending_changes: name -> old (running) and new (file) value."""
    return {n: {"old_value": old, "new_value": new} for n, old, new in rows if n not in NEVER_PENDING}


def members_from_monitor(rows: list[MonitorNode] | None, addresses: dict[str, str],
                         pending: Callable[[str], dict[str, dict[str, str]]]) -> list[Member]:
    """Every data node (``addresses``: name -> address) as the monitor's ``rows`` show it (None:
    the monitor did not answer), with the settings pending a restart on each (``pending``: asked
    only of nodes the monitor sees healthy and running; a stopped one would only time out)."""
    by_name = {r.nodename: r for r in rows or []}
    leader_lsn = next((_lsn(r.reportedlsn) for r in by_name.values() if r.leading), None)
    members = []
    for name, address in addresses.items():
        row = by_name.get(name)
        if row is None:
            state = "monitor unreachable" if rows is None else "not registered"
            members.append(Member(name=name, host=address, role="", state=state))
            continue
        current, assigned = row.reportedstate, row.goalstate
        role = "leader" if row.leading else "replica"
        if row.health == 0:
            state = "unreachable"
        elif not row.reportedpgisrunning:
            state = "stopped"
        elif role == "leader":
            state = "running"
        elif current == assigned == "secondary":
            state = "streaming"
        else:
            state = current if current == assigned else f"{current} -> {assigned}"
        lag = None
        lsn = _lsn(row.reportedlsn)
        if role == "replica" and leader_lsn is not None and lsn is not None:
            lag = round(max(leader_lsn - lsn, 0) / 1048576, 1)
        changes = pending(name) if row.health == 1 and row.reportedpgisrunning else {}
        members.append(Member(
            name=name, host=row.nodehost, port=row.nodeport, role=role, state=state, timeline=row.reportedtli,
            lag_mb=lag, pending_restart=bool(changes), pending_changes=changes,
            current_state=current, assigned_state=assigned,
        ))
    return members


def formation_health(rows: list[MonitorNode] | None, members: list[Member], monitor: str) -> Health:
    """One running primary, every other data node a streaming secondary, and the primary
    reporting its standbys in sync (``monitor`` names the monitor in the problem when it is silent)."""
    problems = [] if rows is not None else [f"the monitor at {monitor} does not answer"]
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
    sync = {r.nodename: r.reportedrepstate for r in rows or []}
    if len(leaders) == 1 and len(members) > 1 and sync.get(leaders[0].name) not in ("sync", "quorum"):
        problems.append(f"the primary {leaders[0].name} reports its standbys as "
                        f"{sync.get(leaders[0].name) or 'unknown'}, not yet in sync")
    return Health(leaders[0].name if len(leaders) == 1 else None, members, problems)


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
    priorities = [settings.candidate_priorities.get(n, DEFAULT_CANDIDATE_PRIORITY) for n in data_nodes]
    if len(data_nodes) > 1 and not any(p > 0 for p in priorities):
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
        DefaultNode("monitor", "192.168.11.151", "monitor",
                    "the pg_auto_failover monitor (port ports.monitor, 5431) and the backup repository",
                    also=(BACKUP_ROLE,)),
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
    # Guests 10x slower than the host: pg_autoctl's 2 s for a TLS connection to the monitor ran
    # out while the monitor served the other node's creation, and the keeper restarted five times
    # and gave up (the role puts the timeout in the monitor URI: pg_autoctl overwrites
    # PGCONNECT_TIMEOUT). The monitor's 1 s health checks flapped there (a node unhealthy and
    # healthy again every few seconds, once a failover during `up`): emulated guests get
    # pg_auto_failover's own timings (the role's defaults, for loopback, are 2-6x quicker).
    slow_machine_variables: ClassVar[Mapping[str, Any]] = {
        "pg_auto_failover_connect_timeout": 20,
        "pg_auto_failover_monitor_health_checks": {
            "pgautofailover.health_check_period": 5000, "pgautofailover.health_check_timeout": 5000,
            "pgautofailover.health_check_max_retries": 2, "pgautofailover.health_check_retry_delay": 2000,
            "pgautofailover.node_considered_unhealthy_timeout": 20000,
            "pgautofailover.startup_grace_period": 10000, "pgautofailover.primary_demote_timeout": 30000,
        },
    }
    # The monitor decides; its `pg_autoctl run` logs each state it assigns a node.
    decision_log = DecisionLog("monitor", (r"Setting goal state of .* to ",), on_leaders=False)
    backups = True
    accounts = (PGAF_MONITOR, PGAF_REPLICATION)
    replication_account = PGAF_REPLICATION
    ports: ClassVar[Mapping[str, int]] = {"monitor": 5431}

    cannot_rebuild = None  # the node dropped from the monitor, then created again: it clones the primary
    cannot_stand_by = ("pg_auto_failover has no standby cluster: a formation's nodes follow its own primary, "
                       "chosen by its one monitor, never another formation's")

    def rebuild_steps(self, topology: Topology, node_root: str) -> RebuildSteps:
        """`pg_autoctl drop node --force` with the keeper stopped (the monitor forgets the node at
        once), then the role's register script into the emptied data directory."""
        return RebuildSteps(_drop_node(topology, node_root), (f"{paths.postgres_home(node_root)}/{REGISTER_SCRIPT}",))

    def client(self) -> type[Stack]:
        return PgAutoFailoverStack

    def state_store(self, topology: Topology) -> tuple[str, list[tuple[Node, str]]]:
        """The monitor."""
        return "the monitor", [(node, "pgautofailover") for node in topology.with_role("monitor")]

    def service(self, role: str, topology: Topology) -> str:
        # `pg_autoctl run` runs the monitor and each data node's keeper alike.
        return {"postgres": "pgautofailover", "monitor": "pgautofailover", BACKUP_ROLE: pgbackrest.SERVICE}[role]

    def role_ports(self, ports: Ports) -> dict[str, list[int]]:
        return {"postgres": [ports.postgres], "monitor": [ports.monitor], **pgbackrest.role_ports(ports)}

    def tls_services(self, topology: Topology) -> list[TlsService]:
        """Every data node's PostgreSQL and the monitor's."""
        ports = topology.ports
        data = topology.with_role("postgres")
        monitors = topology.with_role("monitor")
        return ([TlsService(node, "postgresql", ports.postgres, postgres=True) for node in data]
                + [TlsService(node, "monitor", ports.monitor, postgres=True) for node in monitors])

    def tls_rotation(self, topology: Topology) -> list[Rotation]:
        """PostgreSQL rereads its certificate on pg_reload_conf(), on the monitor and on every data node."""
        return ([Rotation(node, "Reload the monitor's PostgreSQL", "pg_auto_failover_monitor", "reload",
                          "pgautofailover") for node in topology.with_role("monitor")]
                + [Rotation(node, "Reload the data node's PostgreSQL", "pg_auto_failover", "reload",
                            "pgautofailover") for node in topology.with_role("postgres")])

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

    def primary_check(self, topology: Topology) -> str:
        """The node's own PostgreSQL, asked over its Unix socket as the service user (no password,
        no TLS, no monitor): not in recovery. The keeper promotes and demotes it as the monitor
        says, so this follows the formation's primary; a PostgreSQL that is stopped, hangs past
        the connect timeout or replays WAL keeps the address away."""
        return (f"PGCONNECT_TIMEOUT=2 {{{{ postgresql_bin_dir }}}}/psql -X -qAt -h {{{{ postgresql_socket_dir }}}} "
                f"-p {topology.ports.postgres} -d postgres -c 'SELECT pg_is_in_recovery()' | grep -qx f")

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

    def restore_steps(self, topology: Topology, node_roots: Mapping[str, str], on_this_machine: bool,
                      leader: str) -> RestoreSteps:
        """Forget: every data node leaves the formation, replicas first so the monitor never
        fails over (`pg_autoctl drop node --force` with the keeper stopped: the monitor removes
        the node at once, the keeper's state says dropped; its configuration and data directory
        stay). Rejoin: the role's register script again (`pg_autoctl create postgres`), the
        restored leader first: the monitor makes it the formation's single primary over its data;
        then each replica into its emptied data directory: pg_autoctl clones the primary before
        it returns. The monitor takes one joining standby at a time."""
        others = [name for name in node_roots if name != leader]

        forget = tuple((name, _drop_node(topology, node_roots[name])) for name in [*others, leader])
        rejoin = {name: (f"{paths.postgres_home(node_roots[name])}/{REGISTER_SCRIPT}",) for name in [leader, *others]}
        return RestoreSteps(forget, rejoin, replicas_at_once=False)


def _drop_node(topology: Topology, node_root: str) -> tuple[str, ...]:
    """`pg_autoctl drop node --force` for the node whose root is node_root (its keeper stopped)."""
    # The keeper's configuration is under HOME, the monitor's password in HOME/.pgpass.
    home = paths.postgres_home(node_root)
    return ("env", f"HOME={home}", f"PGPASSFILE={home}/.pgpass", BINARY, "drop", "node", "--force",
            f"--pgdata={paths.postgres_data_dir(node_root, topology.postgres.version)}")


SPEC = PgAutoFailoverSpec()
