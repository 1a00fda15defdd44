"""Point-in-time restore of a whole lab, in place, from its pgBackRest repository.

The phases, each timed:

1. ``archive``: on the primary, one commit after the target (recovery to a time stops at the
   first commit past it, so one must exist) and a WAL switch, then wait until the primary has
   archived that segment: a target seconds old is then in the repository. Nothing is stopped yet,
   so a lab whose archiving is broken is left untouched.
2. ``stop``: the stack's service on every data node, replicas first (none then races for the
   leadership), the leader last; each stops its PostgreSQL.
3. ``forget``: the stack forgets the cluster (Patroni: ``patronictl remove``; pg_auto_failover:
   every data node dropped from the monitor's formation), so the restored primary is not judged
   against the old history (its last leader position, its timelines).
4. ``restore``: ``pgbackrest --delta restore`` on the chosen primary with the target.
5. ``recover``: PostgreSQL replays the archive up to the target and promotes (a new timeline),
   drops the restore's recovery settings (a replica cloned from it must not stop at the target),
   then stops cleanly; the stack then adopts a primary that needs no more recovery.
6. ``leader``: the node joins the stack again where the stack needs that (pg_auto_failover
   registers it with the monitor), the stack's service starts there and takes the leadership;
   writes reach it.
   (``backup``: when backups ended after the target, they hold the discarded history, and
   replicas must not start from them: a full backup of the new history first.)
7. ``replicas``: the other data nodes' data directories are emptied and their services started:
   the stack makes them again, from the repository (Patroni's ``create_replica_methods``) or from
   the new primary (pg_auto_failover's registration clones it, one replica after the other).
8. ``healthy``: one leader, every replica streaming, routing on the leader; the topology's
   parameters and settings converged as `pglab up` would.

Written against :class:`~pglab.lab.Lab`, its provider (services, commands on nodes) and its
stack's declaration (:meth:`~pglab.stacks.base.StackSpec.restore_steps`): no phase names a stack.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, TypeVar

import psycopg
from psycopg import sql as q

from pglab import paths, sql, stacks, waiting
from pglab.backups import backup
from pglab.backups.restore_target import Target, check_window, stamp
from pglab.components import pgbackrest
from pglab.errors import InputError, PglabError
from pglab.lab import EventSink, Lab, Step, Waiting, ignore_event
from pglab.stacks.base import RestoreSteps, StackError
from pglab.topology import Node

ARCHIVE_TIMEOUT = 60.0  # seconds for the switched WAL segment to reach the repository
REPLAY_IO_TIMEOUT = 60  # pgBackRest's own io-timeout, for the restore's replay of the archive
# The settings pgBackRest's restore writes in postgresql.auto.conf (restore_command and the target).
RECOVERY_SETTINGS = ("restore_command", "recovery_target", "recovery_target_lsn", "recovery_target_name",
                     "recovery_target_time", "recovery_target_xid", "recovery_target_inclusive",
                     "recovery_target_timeline", "recovery_target_action")
T = TypeVar("T")
# Phases an interrupted restore does not run again when it goes on.
ONCE = ("stop", "forget")


class RestoreError(PglabError):
    """A phase of the restore failed; the message says which and what state the lab is in."""


@dataclass(frozen=True)
class Plan:
    """What a restore will do, checked before anything changes."""

    target: Target
    earliest: datetime.datetime  # the end of the oldest backup
    now: datetime.datetime  # the primary's clock when the plan was made
    leader: str  # the node restored first, which leads afterwards
    replicas: list[str]
    timeline: int | None  # the cluster's timeline before the restore
    # Backups that ended after the target: they hold the discarded history, so replicas must not
    # be made from them; a full backup of the new history is taken before the replicas are made.
    stale_backups: list[str] = field(default_factory=list)
    # The cluster was stopped by a restore that did not end: its WAL was archived then, so this
    # one goes on from the stop (the plan's leader, its clock then) instead of asking a primary.
    resumed: bool = False
    # Phases the interrupted restore ended that must not run twice (forgetting a node the stack
    # already dropped fails).
    done: tuple[str, ...] = ()

    def describe(self) -> str:
        again = "go on with the restore that stopped the cluster and did not end: " if self.resumed else ""
        return (f"{again}restore the whole cluster to {self.target.describe()}: stop every member, restore "
                f"{self.leader} from the repository, then make {', '.join(self.replicas) or 'no replica'} again "
                f"from it. Every write after the target is discarded")

    def to_json(self, done: list[str]) -> str:
        fields = {"earliest": self.earliest.isoformat(), "now": self.now.isoformat(), "leader": self.leader,
                  "replicas": self.replicas, "timeline": self.timeline, "done": done}
        return json.dumps(fields)

    @classmethod
    def resuming(cls, text: str, target: Target, stale_backups: list[str]) -> Plan:
        """The plan an interrupted restore saved, aimed at ``target`` now."""
        saved = json.loads(text)
        return cls(target, datetime.datetime.fromisoformat(saved["earliest"]),
                   datetime.datetime.fromisoformat(saved["now"]), saved["leader"], list(saved["replicas"]),
                   saved["timeline"], stale_backups, resumed=True, done=tuple(saved.get("done", ())))


@dataclass
class Phase:
    name: str
    seconds: float
    detail: str = ""


@dataclass
class RestoreResult:
    target: str
    latest: bool
    leader: str
    old_timeline: int | None
    new_timeline: int | None
    phases: list[Phase] = field(default_factory=list)
    # From the first stop to a healthy cluster: how long clients had no database.
    restore_s: float = 0.0
    total_s: float = 0.0
    summary: str = ""
    settings_changed: dict[str, Any] = field(default_factory=dict)


def plan(lab: Lab, target: Target) -> Plan:
    """Check that the lab can be restored to ``target`` (InputError, exit 2, otherwise: nothing
    is touched) and say how."""
    if not pgbackrest.enabled(lab.topology):
        raise InputError(f"lab {lab.topology.name} has no backups to restore from: its topology "
                         f"({lab.topology_file}) needs a backup: section with enabled: true and a node with the "
                         "role backup; add them and run `pglab up`")
    if restore_steps(lab, lab.topology.with_role("postgres")[0].name) is None:
        raise InputError(f"`pglab restore` is not built for the {lab.topology.stack} stack yet; restore by hand "
                         "(see the README's backups section) or use a patroni lab")
    health = lab.stack().health()
    saved = lab.layout.restore_plan
    if saved.exists() and health.leader is None:
        resumed = Plan.resuming(saved.read_text(), target, _stale(backup.list_backups(lab), target))
        check_window(target, resumed.earliest, resumed.now)
        return resumed
    if health.leader is None:
        raise RestoreError("the cluster has no running leader, so the WAL up to now cannot be archived before the "
                           f"restore: {'; '.join(health.problems)}. Bring the leader back first; nothing was changed")
    listing = backup.list_backups(lab)
    now = _server_now(lab)
    earliest = listing.backups[0].stop if listing.backups else None
    check_window(target, earliest, now)
    assert earliest is not None
    members = {m.name: m for m in health.members}
    replicas = [n.name for n in lab.topology.with_role("postgres") if n.name != health.leader]
    return Plan(target, earliest, now, health.leader, replicas, members[health.leader].timeline,
                _stale(listing, target))


def _whole_second(moment: datetime.datetime) -> datetime.datetime:
    """pgBackRest keeps a backup's stop time to the second, and restores to a time from the newest
    backup that stopped before it at that precision: judge backups the same way."""
    return moment.replace(microsecond=0)


def _stale(listing: backup.BackupList, target: Target) -> list[str]:
    return [b.label for b in listing.backups if target.at is not None and b.stop >= _whole_second(target.at)]


def restore(lab: Lab, target: Target, timeout: float = 180.0, on_event: EventSink = ignore_event,
            checked: Plan | None = None) -> RestoreResult:
    """Restore the whole cluster to ``target`` in place (see the module's phases)."""
    started = time.monotonic()
    the_plan = checked or plan(lab, target)
    phases: list[Phase] = []

    done: list[str] = [name for name in the_plan.done if name in ONCE]

    def phase(name: str, what: str, action: Callable[[], T]) -> T:
        on_event(Step(f"{name}: {what}"))
        begun = time.monotonic()
        try:
            outcome = action()
        except (PglabError, StackError, OSError, psycopg.Error) as exc:
            raise RestoreError(f"the restore failed in its {name} phase ({what}): {sql.first_line(exc)}. "
                               + _state_after(name)) from exc
        phases.append(Phase(name, round(time.monotonic() - begun, 2), outcome if isinstance(outcome, str) else ""))
        if name in ONCE:
            done.append(name)
            lab.layout.restore_plan.write_text(the_plan.to_json(done))
        return outcome

    if not the_plan.resumed:
        phase("archive", "archive the WAL up to now", lambda: archive_now(lab, on_event))
    # From here on the cluster is down until the restore ends: a failure leaves the plan behind,
    # and `pglab restore` run again goes on with it.
    lab.layout.restore_plan.write_text(the_plan.to_json(done))
    outage_from = time.monotonic()
    leader = lab.node(the_plan.leader)
    replicas = [lab.node(name) for name in the_plan.replicas]
    stack_steps = restore_steps(lab, the_plan.leader)
    assert stack_steps is not None  # plan() refused stacks without them
    if "stop" not in done:
        phase("stop", "stop every member", lambda: _stop_members(lab, leader, replicas))
    if "forget" not in done:
        phase("forget", "remove the cluster from the stack's state", lambda: _forget(lab, stack_steps))
    phase("restore", f"pgbackrest restore on {leader.name}", lambda: _pgbackrest_restore(lab, leader, target))
    phase("recover", f"replay to {target.describe()} and promote", lambda: _recover(lab, leader, timeout))
    phase("leader", f"start {leader.name} as the new leader",
          lambda: _start_leader(lab, leader, stack_steps, timeout, on_event))
    if the_plan.stale_backups:
        phase("backup", f"a full backup of the new history (backups {', '.join(the_plan.stale_backups)} "
              "ended after the target)", lambda: backup.take_backup(lab, "full").summary)
    phase("replicas", "make the replicas again",
          lambda: _start_replicas(lab, replicas, stack_steps, timeout))
    health = phase("healthy", "wait for the replicas to stream", lambda: lab.wait_healthy(timeout, on_event))
    restore_s = time.monotonic() - outage_from
    lab.layout.restore_plan.unlink(missing_ok=True)
    changed = {**lab.converge_parameters(), **lab.converge_stack_settings()}
    members = {m.name: m for m in health.members}
    new_timeline = members[health.leader].timeline if health.leader in members else None
    total = time.monotonic() - started
    steps = ", ".join(f"{p.name} {p.seconds:.1f} s" for p in phases)
    summary = (f"restored to {target.describe()}: leader {health.leader}, timeline {the_plan.timeline} -> "
               f"{new_timeline}, {len(health.streaming_replicas)} replicas streaming; back to healthy "
               f"{restore_s:.1f} s after the first stop ({steps}; {total:.1f} s in all)")
    return RestoreResult(target.describe(), target.latest, health.leader or the_plan.leader, the_plan.timeline,
                         new_timeline, phases, round(restore_s, 2), round(total, 2), summary, changed)


# Phases -------------------------------------------------------------------------------------
def archive_now(lab: Lab, on_event: EventSink = ignore_event) -> str:
    """Commit once, switch WAL on the primary and wait until the switched segment is archived;
    the segment's name."""
    with sql.session(**lab.writes_conninfo()) as conn:
        # A transaction with an xid writes a commit record, stamped now: recovery to a time
        # before now finds its stop there instead of running out of WAL.
        conn.execute("SELECT txid_current()")
        row = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
        segment = str(row[0]) if row else ""

        def archived() -> tuple[bool, str]:
            last, failed, failed_at = conn.execute(
                "SELECT last_archived_wal, last_failed_wal, last_failed_time FROM pg_stat_archiver").fetchone() or (
                None, None, None)
            done = (last or "")[:24] >= segment
            return done, (f"last archived {last or 'none'}, waiting for {segment}"
                          + (f"; last failure {failed} at {failed_at}" if failed else ""))

        waiting.wait_until(archived, ARCHIVE_TIMEOUT, f"the primary to archive WAL segment {segment}", 0.1,
                           on_wait=lambda text, elapsed: on_event(Waiting(text, elapsed)))
    return f"archived through {segment}"


def _stop_members(lab: Lab, leader: Node, replicas: list[Node]) -> str:
    service = _service(lab)
    _parallel([functools.partial(lab.provider.stop_service, node, service) for node in replicas])
    lab.provider.stop_service(leader, service)
    return f"{service} stopped on {', '.join(n.name for n in [*replicas, leader])}"


def restore_steps(lab: Lab, leader: str) -> RestoreSteps | None:
    """The lab's stack's part in a restore of ``leader`` (None: the stack cannot restore)."""
    roots = {node.name: lab.provider.node_root(node) for node in lab.topology.with_role("postgres")}
    return stacks.spec(lab.topology.stack).restore_steps(lab.topology, roots, lab.provider.nodes_on_this_machine,
                                                          leader)


def _forget(lab: Lab, stack_steps: RestoreSteps) -> str:
    for name, argv in stack_steps.forget:
        _run(lab, lab.node(name), list(argv), "forgetting the cluster")
    return f"cluster {lab.topology.postgres.scope} removed from the stack's state"


def _pgbackrest_restore(lab: Lab, node: Node, target: Target) -> str:
    config = pgbackrest.config_file(lab.provider.node_root(node))
    stanza = lab.topology.postgres.scope
    # The replay's restore_command waits on the repository as long as pgBackRest's default does:
    # the configuration's short io-timeout is for standbys, which fall back to their own pg_wal or
    # streaming, while a replay that misses a segment ends before its target.
    replay = " ".join(pgbackrest.command(config, stanza, f"--io-timeout={REPLAY_IO_TIMEOUT}",
                                         "archive-get", "%f", '"%p"'))
    argv = pgbackrest.command(config, stanza, "--delta", *target.pgbackrest_options(),
                              f"--recovery-option=restore_command={replay}", "restore")
    _run(lab, node, argv, "pgbackrest restore", timeout=1800)
    return " ".join(target.pgbackrest_options())


def _recover(lab: Lab, node: Node, timeout: float) -> str:
    """Start PostgreSQL by itself on the restored data: it replays to the target and promotes;
    then stop it cleanly, so the stack starts a primary with nothing left to recover."""
    data = paths.postgres_data_dir(lab.provider.node_root(node), lab.topology.postgres.version)
    pg_ctl = f"{paths.postgres_bin_dir(lab.topology.postgres.version)}/pg_ctl"
    log = str(PurePosixPath(data).parent / "pglab-restore.log")
    # Its own socket directory, as the stack would start it (pg_autoctl gives it on the command line).
    socket_dir = paths.postgres_socket_dir(lab.provider.node_root(node))
    # Its log in one file (no logging collector), so a failure can be quoted from it. The restored
    # configuration is the backed-up node's (pg_autoctl's and Patroni's files name its address and
    # its certificate): this node's own, on the command line, win over them.
    options = (f"-k {socket_dir} -c logging_collector=off -c listen_addresses={lab.address(node.name)} "
               f"-c port={lab.topology.ports.postgres}")
    if lab.topology.tls:
        tls_dir = paths.node_tls_dir(lab.provider.node_root(node))
        options += f" -c ssl_cert_file={tls_dir}/node.crt -c ssl_key_file={tls_dir}/node.key"
    try:
        _run(lab, node, [pg_ctl, "-D", data, "-l", log, "-o", options, "-w", "-t", str(int(timeout)), "start"],
             "starting PostgreSQL to recover", timeout=timeout + 30)

        def promoted() -> tuple[bool, str]:
            in_recovery, _ = sql.server_state(lab.address(node.name), lab.topology.ports.postgres,
                                              lab.superuser_password(), lab.libpq_tls())
            return not in_recovery, "still replaying the archive"

        waiting.wait_until(promoted, timeout, f"PostgreSQL on {node.name} to reach the target and promote", 0.2,
                           transient=(OSError, psycopg.Error))
        _drop_recovery_settings(lab, node)
    except (PglabError, OSError, psycopg.Error) as exc:
        # PostgreSQL says why (a missing WAL segment, a target past the archive's end) in its log.
        tail = lab.provider.run_as_service_user(node, ["tail", "-n", "4", log], timeout=30).stdout
        raise RestoreError(f"{sql.first_line(exc)}; the end of its log ({log} on {node.name}): "
                           f"{' '.join(tail.split())[-600:]}") from exc
    finally:
        # It may have stopped by itself (recovery cannot go on): then there is nothing to stop.
        if lab.provider.run_as_service_user(node, [pg_ctl, "-D", data, "status"], timeout=30).returncode == 0:
            _run(lab, node, [pg_ctl, "-D", data, "-m", "fast", "-w", "-t", str(int(timeout)), "stop"],
                 "stopping the recovered PostgreSQL", timeout=timeout + 30)
    return "promoted on a new timeline"


def _drop_recovery_settings(lab: Lab, node: Node) -> None:
    """pgBackRest wrote the restore's settings (restore_command, the target) in
    postgresql.auto.conf; the promoted primary no longer needs them, and a replica cloned from
    it would stop replaying at the target (and promote) if it found them there."""
    with sql.connect(lab.address(node.name), lab.topology.ports.postgres, lab.superuser_password(),
                     tls=lab.libpq_tls()) as conn:
        for name in RECOVERY_SETTINGS:
            conn.execute(q.SQL("ALTER SYSTEM RESET {}").format(q.Identifier(name)))


def _start_leader(lab: Lab, node: Node, stack_steps: RestoreSteps, timeout: float, on_event: EventSink) -> str:
    _rejoin(lab, node, stack_steps, timeout)
    lab.provider.start_service(node, _service(lab))
    stack = lab.stack()

    def leads() -> tuple[bool, str]:
        member = next((m for m in stack.members() if m.name == node.name), None)
        ok = member is not None and member.role == "leader" and member.state == "running"
        return ok, f"{node.name} is {member.role or 'member'} {member.state}" if member else "not answering yet"

    def writable() -> tuple[bool, str]:
        ok, detail = leads()
        if not ok:
            return ok, detail
        host, port = lab.writes_endpoint()
        return sql.writable(host, port, lab.superuser_password(), lab.libpq_tls())

    waiting.wait_until(writable, timeout, f"{node.name} to lead and take writes", 0.2,
                       transient=(OSError, StackError), on_wait=lambda text, elapsed: on_event(Waiting(text, elapsed)))
    return f"{node.name} leads and takes writes"


def _start_replicas(lab: Lab, replicas: list[Node], stack_steps: RestoreSteps, timeout: float) -> str:
    service = _service(lab)

    def remake(node: Node) -> None:
        # The stack makes a replica only into an empty data directory (from the repository first).
        data = paths.postgres_data_dir(lab.provider.node_root(node), lab.topology.postgres.version)
        _run(lab, node, ["find", data, "-mindepth", "1", "-delete"], f"emptying {data}")
        _rejoin(lab, node, stack_steps, timeout)
        lab.provider.start_service(node, service)

    actions: list[Callable[[], Any]] = [functools.partial(remake, node) for node in replicas]
    if stack_steps.replicas_at_once:
        _parallel(actions)
    else:
        for action in actions:
            action()
    return f"{service} started on {', '.join(n.name for n in replicas) or 'no replica'}"


def _rejoin(lab: Lab, node: Node, stack_steps: RestoreSteps, timeout: float) -> None:
    """The stack's command that registers ``node`` again, if it has one for it."""
    argv = stack_steps.rejoin.get(node.name)
    if argv:
        _run(lab, node, list(argv), f"registering {node.name} with the stack again", timeout=timeout)


# Helpers ------------------------------------------------------------------------------------
def _service(lab: Lab) -> str:
    return stacks.spec(lab.topology.stack).service("postgres", lab.topology)


def _run(lab: Lab, node: Node, argv: list[str], what: str, timeout: float = 300) -> str:
    return lab.provider.check_as_service_user(node, argv, what, RestoreError, timeout)


def _parallel(actions: list[Callable[[], Any]]) -> None:
    """Run the actions at once; the first failure is raised once all have ended."""
    if not actions:
        return
    with concurrent.futures.ThreadPoolExecutor(len(actions)) as pool:
        for future in [pool.submit(a) for a in actions]:
            future.result()


def _server_now(lab: Lab) -> datetime.datetime:
    host, port = lab.writes_endpoint()
    rows = sql.query(host, port, lab.superuser_password(), "SELECT clock_timestamp()", tls=lab.libpq_tls())
    value = rows[0][0]
    assert isinstance(value, datetime.datetime)
    return value


def _state_after(phase: str) -> str:
    """What a failure in ``phase`` left behind, and what to do."""
    if phase == "archive":
        return "Nothing was stopped: the cluster runs as before. Check `pglab backups` and the primary's log"
    return ("The cluster is down or partly restored. Look at `pglab logs NODE`, then run `pglab restore` again: "
            "it goes on from the stop with the same leader (the repository is unchanged; the target may differ)")


__all__ = ["Phase", "Plan", "RestoreError", "RestoreResult", "Target", "plan", "restore", "stamp"]
