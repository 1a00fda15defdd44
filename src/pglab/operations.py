"""Operations on a live lab, each waiting for its outcome: switchover, failover, stopping and
starting nodes, rebuilding a replica, configuration changes and (rolling) restarts, and a two-site
lab's site promoted or demoted.

They combine the provider (machines) with the stack client (the cluster) and report through
events; each returns an :class:`OpResult` saying what happened and how long it took.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg

from pglab import paths, sql, stacks, waiting
from pglab.components import pgbackrest
from pglab.errors import InputError, PglabError, WaitTimeout
from pglab.lab import EventSink, Lab, Waiting, ignore_event
from pglab.providers.base import failure_detail
from pglab.sites import view as sites_view
from pglab.stacks.base import Member, Stack, StackError, StandbySource, leader_of
from pglab.write_clock import WriteClock


@dataclass
class OpResult:
    action: str
    seconds: float
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


def wait_until(check: Callable[[], tuple[bool, str]], timeout: float, what: str,
               on_event: EventSink = ignore_event, interval: float = 0.25) -> float:
    """Poll ``check`` (returning done, detail) until done; returns the seconds it took."""
    return waiting.wait_until(check, timeout, what, interval,
                              on_wait=lambda detail, elapsed: on_event(Waiting(f"{what}: {detail}", elapsed)),
                              transient=(OSError, StackError))


def _member(members: list[Member], name: str) -> Member | None:
    return next((m for m in members if m.name == name), None)


def _known_member(members: list[Member], name: str) -> Member:
    """The member the stack just reported by name (the leader, a node that rejoined)."""
    found = _member(members, name)
    if found is None:
        raise StackError(f"{name} is not among the cluster's members ({', '.join(m.name for m in members)})")
    return found


def _serving(stack: Stack, name: str) -> Callable[[], tuple[bool, str]]:
    """A check: the member is back in the cluster, streaming or leading."""

    def check() -> tuple[bool, str]:
        member = _member(stack.members(), name)
        if member is None:
            return False, f"{name} not in the cluster yet"
        ok = member.state == "streaming" or (member.role == "leader" and member.state == "running")
        return ok, f"{name} is {member.role or 'member'} {member.state}"

    return check


def _postgres_node(lab: Lab, name: str) -> None:
    if name not in {n.name for n in lab.topology.with_role("postgres")}:
        raise InputError(
            f"{name!r} is not a PostgreSQL node of lab {lab.topology.name}; choose one of: "
            + ", ".join(n.name for n in lab.topology.with_role("postgres"))
        )


def writes_ok(lab: Lab) -> tuple[bool, str]:
    """Whether writes through the lab's entry point (HAProxy 5000, the multi-host URI) reach a primary."""
    host, port = lab.writes_endpoint()
    ok, detail = sql.writable(host, port, lab.superuser_password(), lab.libpq_tls())
    return ok, (f"writes reach {detail}" if ok else f"writes through {host}:{port} fail: {detail}")


def _apply_lowered_settings_first(lab: Lab, stack: Stack, timeout: float, on_event: EventSink) -> str:
    """A switchover restarts the old leader as a standby. With a lowered hot-standby setting
    pending on it, a stack that starts standbys with their files alone (pg_auto_failover) would
    leave it unable to start: apply the setting first, the way `restart` does (the leader in
    place, then the replicas once they replayed it). Returns what was done, for the summary."""
    if stack.tolerates_lowered_standby_settings:
        return ""
    members = stack.members()
    leader = _member(members, leader_of(members) or "")
    if leader is None or not lowers_hot_standby_setting(leader):
        return ""
    lowered = ", ".join(f"{name} {change.get('old_value')} -> {change.get('new_value')}"
                        for name, change in leader.pending_changes.items() if name in HOT_STANDBY_SETTINGS)
    result = restart(lab, rolling=True, timeout=timeout * 3, on_event=on_event)
    return f"applied the pending {lowered} first ({result.summary}); "


def switchover(lab: Lab, to: str | None = None, timeout: float = 90, on_event: EventSink = ignore_event) -> OpResult:
    if to:
        _postgres_node(lab, to)
    stack = lab.stack()
    applied = _apply_lowered_settings_first(lab, stack, timeout, on_event)
    before = stack.health()
    old = before.leader
    if old is None:
        raise PglabError("the cluster has no running leader; use `pglab failover --to NODE` instead")
    if to == old:
        raise InputError(f"{to} is already the leader; pick a replica with --to")
    old_timeline = _known_member(before.members, old).timeline
    started = time.monotonic()
    stack.switchover(to, leader=old)

    def moved() -> tuple[bool, str]:
        leader = stack.leader()
        wanted = leader is not None and leader != old and (to is None or leader == to)
        return wanted, f"leader is {leader or 'nobody'}"

    wait_until(moved, timeout, "the new leader", on_event)
    promoted_after = time.monotonic() - started
    after = lab.wait_healthy(timeout, on_event)  # the old leader streams, HAProxy follows
    new_timeline = _known_member(after.members, after.leader).timeline if after.leader else None
    seconds = time.monotonic() - started
    return OpResult(
        "switchover", seconds,
        f"{applied}switchover {old} -> {after.leader}: timeline {old_timeline} -> {new_timeline}; new leader after "
        f"{promoted_after:.1f} s, healthy (old leader streaming, writes following) after {seconds:.1f} s",
        {"old_leader": old, "new_leader": after.leader, "old_timeline": old_timeline,
         "new_timeline": new_timeline, "promoted_after": round(promoted_after, 2)},
    )


def failover(lab: Lab, to: str, timeout: float = 90, on_event: EventSink = ignore_event) -> OpResult:
    _postgres_node(lab, to)
    stack = lab.stack()
    old = stack.leader()
    if to == old:
        raise InputError(f"{to} is already the leader; pick a replica with --to")
    applied = _apply_lowered_settings_first(lab, stack, timeout, on_event)
    started = time.monotonic()
    stack.failover(to)
    def promoted() -> tuple[bool, str]:
        leader = stack.leader()
        return leader == to, f"leader is {leader or 'nobody'}"

    wait_until(promoted, timeout, f"{to} to become the leader", on_event)
    promoted_after = time.monotonic() - started
    lab.wait_healthy(timeout, on_event)
    seconds = time.monotonic() - started
    return OpResult("failover", seconds,
                    f"{applied}failover {old or '(no leader)'} -> {to}: promoted after {promoted_after:.1f} s, "
                    f"healthy after {seconds:.1f} s",
                    {"old_leader": old, "new_leader": to, "promoted_after": round(promoted_after, 2)})


StopMode = Literal["stop", "crash", "hang", "partition"]
FAULTS = {"stop": "stopped", "crash": "crashed (every process killed)", "hang": "froze (every process)",
          "partition": "cut off the network"}


def stop_node(lab: Lab, name: str, mode: StopMode = "stop", timeout: float = 90,
              on_event: EventSink = ignore_event) -> OpResult:
    node = lab.node(name)
    is_postgres = "postgres" in node.roles
    stack = lab.stack()
    was_leader = is_postgres and stack.leader() == name
    conninfo = lab.writes_conninfo() if was_leader and lab.routes_writes() else None
    started = time.monotonic()
    {"stop": lab.provider.stop, "crash": lab.provider.crash, "hang": lab.provider.hang,
     "partition": lab.provider.partition}[mode](node)
    # A client's write through the entry point, timed from the fault, tells when writes resumed:
    # the stack's polling below would add its own delays to that figure.
    clock = WriteClock(conninfo, started).start() if conninfo is not None else None
    verb = FAULTS[mode]
    details: dict[str, Any] = {"node": name, "mode": mode, "was_leader": was_leader}
    summary = f"{verb} {name}"
    if was_leader:
        # A short timeout: each poll asks every member, the broken one too, and waits for it.
        quick = lab.stack(timeout=PROMOTION_POLL_TIMEOUT)

        def promoted() -> tuple[bool, str]:
            leader = quick.leader()
            return leader not in (None, name), f"leader is {leader or 'nobody'}"

        try:
            wait_until(promoted, timeout, "a replica to be promoted", on_event)
            details["new_leader"] = stack.leader() or quick.leader()
            details["promoted_after"] = round(time.monotonic() - started, 2)
            if clock is not None:
                _wait_writes(clock, timeout, on_event)
                details["writes_after"] = round(clock.seconds or 0.0, 2)
                # The stack may name the new leader later than a client wrote on it (it kept
                # asking the old one): a write it acknowledged proves it promoted by then.
                if clock.server == lab.address(details["new_leader"] or name):
                    details["promoted_after"] = min(details["promoted_after"], details["writes_after"])
        finally:
            if clock is not None:
                clock.stop()
        summary += (f" (the leader): {details['new_leader']} promoted after {details['promoted_after']:.1f} s"
                    + (f", writes resumed after {details['writes_after']:.1f} s"
                       if "writes_after" in details else ""))
    elif is_postgres:
        def gone() -> tuple[bool, str]:
            member = _member(stack.members(), name)
            state = member.state if member else "absent"
            return state not in ("running", "streaming"), f"{name} is {state}"

        wait_until(gone, timeout, f"the cluster to see {name} down", on_event)
        summary += f"; the cluster sees it down after {time.monotonic() - started:.1f} s"
    return OpResult(mode, time.monotonic() - started, summary, details)


PROMOTION_POLL_TIMEOUT = 0.5  # seconds a member may take to answer while a promotion is awaited


def _wait_writes(clock: WriteClock, timeout: float, on_event: EventSink) -> None:
    """Wait for the clock's first acknowledged write, or raise WaitTimeout with its last error."""
    what = "writes through the lab's entry point to resume"
    seconds = clock.wait(timeout * waiting.timeout_scale(),
                         on_wait=lambda detail, elapsed: on_event(Waiting(f"{what}: {detail}", elapsed)))
    if seconds is None:
        raise WaitTimeout(f"timed out after {timeout:.0f} s waiting for {what}: {clock.last_error}")


def start_node(lab: Lab, name: str, timeout: float = 120, on_event: EventSink = ignore_event) -> OpResult:
    node = lab.node(name)
    stack = lab.stack()  # first: a lab never created is said so, before any machine is asked
    started = time.monotonic()
    lab.provider.start(node)
    details: dict[str, Any] = {"node": name}
    summary = f"started {name}"
    if "postgres" in node.roles:
        wait_until(_serving(stack, name), timeout, f"{name} to rejoin", on_event)
        member = _known_member(stack.members(), name)
        details.update(role=member.role, timeline=member.timeline)
        summary += f": rejoined as {member.role} ({member.state}, timeline {member.timeline})"
    lab.wait_healthy(timeout, on_event)
    seconds = time.monotonic() - started
    return OpResult("start", seconds, summary + f"; cluster healthy after {seconds:.1f} s", details)


def rebuild(lab: Lab, name: str, timeout: float = 300, on_event: EventSink = ignore_event) -> OpResult:
    """Make a replica's data anew from the leader (`patronictl reinit`; on pg_auto_failover the
    node dropped from the monitor and created again), and wait until it streams."""
    node = lab.node(name)
    spec = stacks.spec(lab.topology.stack)
    if spec.cannot_rebuild:
        raise InputError(f"pglab rebuild: {spec.cannot_rebuild}")
    stack = lab.stack()
    if "postgres" not in node.roles or leader_of(stack.members()) == name:
        raise InputError(f"pglab rebuild: {name} is not a replica; rebuild makes a replica anew from the leader")
    started = time.monotonic()
    steps = spec.rebuild_steps(lab.topology, lab.provider.node_root(node))
    if steps is None:
        answer = stack.rebuild(name)
    else:
        service = spec.service("postgres", lab.topology)
        data = paths.postgres_data_dir(lab.provider.node_root(node), lab.topology.postgres.version)
        lab.provider.stop_service(node, service)
        lab.provider.check_as_service_user(node, list(steps.forget), f"dropping {name} from the stack",
                                           StackError, timeout)
        # The stack clones the primary only into an empty data directory (PostgreSQL wants it 0700).
        lab.provider.check_as_service_user(node, ["sh", "-c", 'mkdir -p -m 0700 "$1" && find "$1" -mindepth 1 -delete',
                                                  "sh", data], f"emptying {data}", StackError, timeout)
        lab.provider.check_as_service_user(node, list(steps.rejoin), f"creating {name} again", StackError, timeout)
        lab.provider.start_service(node, service)
        answer = "dropped and created again"
    wait_until(_serving(stack, name), timeout, f"{name} to stream again", on_event)
    seconds = time.monotonic() - started
    return OpResult("rebuild", seconds, f"rebuilt {name} ({answer}): streaming after {seconds:.1f} s", {"node": name})


# PostgreSQL's own rule for setting names (custom ones have a dot: auto_explain.log_min_duration).
PARAMETER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?")
MAX_VALUE_LENGTH = 4096


def parse_assignments(assignments: list[str]) -> dict[str, str]:
    """``NAME=VALUE`` arguments as a dict, or an InputError naming the first bad one."""
    parameters = {}
    for item in assignments:
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            raise InputError(f"{item!r} is not NAME=VALUE; write for example max_connections=200")
        if len(name) > 63 or not PARAMETER_NAME.fullmatch(name):
            raise InputError(f"{name!r} is not a PostgreSQL setting name; write for example max_connections=200")
        if len(value) > MAX_VALUE_LENGTH or not value.isprintable():
            raise InputError(f"the value of {name} must be printable text of at most {MAX_VALUE_LENGTH} "
                             "characters (no control characters or line breaks)")
        parameters[name] = value
    return parameters


def set_config(lab: Lab, parameters: dict[str, str], timeout: float = 60,
               on_event: EventSink = ignore_event) -> OpResult:
    """Change parameters cluster-wide; report (and wait to see) which need a restart."""
    stack = lab.stack()
    leader = stack.leader()
    if leader is None:
        raise PglabError("the cluster has no running leader to read settings from")
    password = lab.superuser_password()
    rows = sql.query(lab.address(leader), lab.topology.ports.postgres, password,
                     "SELECT name, context, setting, unit FROM pg_settings WHERE name = ANY(%s)",
                     (list(parameters),), tls=lab.libpq_tls())
    contexts = {name: context for name, context, _setting, _unit in rows}
    current = {name: setting for name, _context, setting, unit in rows if not unit}
    unknown = [p for p in parameters if p not in contexts]
    if unknown:
        raise InputError(f"unknown PostgreSQL parameter(s): {', '.join(unknown)}; check the spelling "
                         "(see `SHOW ALL` in psql)")
    started = time.monotonic()
    stack.set_parameters(parameters)
    # A value equal to the running one (unit-less settings compare exactly) needs no restart.
    needs_restart = sorted(p for p, c in contexts.items() if c == "postmaster" and current.get(p) != parameters[p])
    if needs_restart:
        running = [m.name for m in stack.members() if m.state in ("running", "streaming")]

        def all_pending() -> tuple[bool, str]:
            pending = [m.name for m in stack.members() if m.pending_restart]
            return set(running) <= set(pending), "pending: " + ", ".join(pending)

        wait_until(all_pending, timeout, "members to be marked pending restart", on_event)
        summary = (f"set {', '.join(f'{k}={v}' for k, v in parameters.items())}; "
                   f"{', '.join(needs_restart)} need(s) a restart: pending on {', '.join(running)}. "
                   "Run `pglab restart --rolling` to apply.")
    else:
        summary = f"set {', '.join(f'{k}={v}' for k, v in parameters.items())}; applied by reload, no restart needed"
    return OpResult("config", time.monotonic() - started, summary,
                    {"parameters": parameters, "needs_restart": needs_restart})


def restart(lab: Lab, rolling: bool = True, timeout: float = 240, on_event: EventSink = ignore_event) -> OpResult:
    """Restart pending members (all members when none is pending), until none is pending.

    Rolling: replicas one at a time, then the leader by switchover. A replica cannot run below
    the leader's value of settings such as max_connections, so a restart that lowers one of them
    takes the leader first, in place (a brief write outage), then the replicas; and a leader still
    pending after a pass is restarted in place too.
    """
    stack = lab.stack()
    started = time.monotonic()
    restarted: list[str] = []
    everyone = not any(m.pending_restart for m in stack.members())
    for attempt in range(3):
        members = stack.members()
        in_place, replicas, by_switchover = restart_pass(members, everyone, rolling, first=attempt == 0)
        if not (in_place or replicas or by_switchover):
            break
        if in_place:
            # Lowered values must reach the leader first; its restart is brief, in place.
            _restart_member(lab, in_place, timeout, on_event)
            restarted.append(f"{in_place} (leader, in place)")
            # Replicas learn the leader's new value from its WAL: restart them only once they
            # have replayed past it, or they would be capped at the old value again.
            _wait_replayed(lab, in_place, replicas, timeout, on_event)
        for name in replicas:
            _restart_member(lab, name, timeout, on_event)
            restarted.append(name)
        if by_switchover:
            result = switchover(lab, None, timeout, on_event)
            restarted.append(f"{by_switchover} (by switchover to {result.details['new_leader']})")
        everyone = False
        # Patroni refreshes pending_restart on its next loop: let the flags settle before judging.
        with contextlib.suppress(WaitTimeout):
            wait_until(lambda: (not any(m.pending_restart for m in stack.members()), "flags settling"),
                       8, "pending restart flags", on_event)
    still = [m.name for m in stack.members() if m.pending_restart]
    if still:
        raise PglabError(f"still pending restart after three passes: {', '.join(still)}")
    lab.wait_healthy(timeout, on_event)
    seconds = time.monotonic() - started
    return OpResult("restart", seconds,
                    f"restarted {', '.join(restarted) or 'nothing'}{' (rolling)' if rolling else ''}; "
                    f"no restart pending; healthy after {seconds:.1f} s",
                    {"restarted": restarted, "rolling": rolling})


def restart_pass(members: list[Member], everyone: bool, rolling: bool,
                 first: bool) -> tuple[str | None, list[str], str | None]:
    """One pass of a restart, decided from the members: the leader to restart in place before the
    replicas (None: not this pass), the replicas to restart one by one, in this order, and the
    leader to move away by switchover after them (None: not this pass). ``everyone``: restart every
    member, pending or not; ``first``: no pass ran before this one."""
    todo = {m.name for m in members if m.pending_restart or everyone}
    leader = leader_of(members)
    leader_member = _member(members, leader or "")
    lowering = leader_member is not None and lowers_hot_standby_setting(leader_member)
    in_place = None
    if leader in todo and (not first or not rolling or len(members) == 1 or lowering):
        in_place = leader
    replicas = sorted(todo - {leader})
    return in_place, replicas, leader if leader in todo and in_place is None else None


# A hot standby refuses to run below its primary's value of these (PostgreSQL docs, "Hot Standby").
HOT_STANDBY_SETTINGS = frozenset({"max_connections", "max_prepared_transactions", "max_locks_per_transaction",
                                  "max_wal_senders", "max_worker_processes"})


def lowers_hot_standby_setting(member: Member) -> bool:
    """Whether the member's pending restart lowers a setting replicas may not run below."""
    for name, change in member.pending_changes.items():
        if name in HOT_STANDBY_SETTINGS:
            try:
                if float(change["new_value"]) < float(change["old_value"]):
                    return True
            except (KeyError, TypeError, ValueError):
                continue
    return False


def _wait_replayed(lab: Lab, leader: str, replicas: list[str], timeout: float, on_event: EventSink) -> None:
    password = lab.superuser_password()
    port = lab.topology.ports.postgres
    lsn = sql.query(lab.address(leader), port, password, "SELECT pg_current_wal_lsn()::text", tls=lab.libpq_tls())[0][0]
    for name in replicas:
        def replayed(name: str = name) -> tuple[bool, str]:
            try:
                done = sql.query(lab.address(name), port, password,
                                 "SELECT coalesce(pg_last_wal_replay_lsn() >= %s::pg_lsn, false)", (lsn,),
                                 tls=lab.libpq_tls())[0][0]
            except psycopg.Error as exc:
                return False, str(exc).strip()
            return bool(done), f"{name} has not replayed {lsn} yet"

        wait_until(replayed, timeout, f"{name} to replay the leader's new settings", on_event)


def _restart_member(lab: Lab, name: str, timeout: float, on_event: EventSink) -> None:
    stack = lab.stack()
    stack.restart(name)
    # Patroni's /restart returns once PostgreSQL is back; a replica can stay pending (its value
    # capped by the leader's), which the next pass of `restart` takes care of.
    wait_until(_serving(stack, name), timeout, f"{name} to come back after its restart", on_event)


# Sites: a two-site lab's standby cluster promoted, a primary site demoted to follow the other -----

def _other_site(lab: Lab, name: str) -> str:
    lab.site(name)  # an unknown site: InputError naming the lab's sites
    return next(s for s in lab.topology.sites if s != name)


def _site_leader_answers(site: Lab) -> str | None:
    """The member of ``site`` that takes writes right now (a primary's leader answering SQL), or None."""
    password, port = site.superuser_password(), site.topology.ports.postgres
    for node in site.topology.with_role("postgres"):
        writable, _server = sql.writable(site.address(node.name), port, password, site.libpq_tls())
        if writable:
            return node.name
    return None


def _source(lab: Lab, site: str, following: str) -> StandbySource:
    router, port, slot = stacks.spec(lab.topology.stack).site_source(lab.topology, site, following)
    return StandbySource(lab.address(router.name), port, slot)


def promote_site(lab: Lab, name: str, force: bool = False, timeout: float = 90,
                 on_event: EventSink = ignore_event) -> OpResult:
    """Make site ``name``'s standby cluster the primary: its standby leader promoted through the
    stack's state (Patroni's ``standby_cluster`` removed from its DCS), its writes endpoint
    serving it, a permanent slot kept for the other site, and its repository's stanza made so it
    archives there. Refused while the other site's leader still takes writes, unless ``force``
    (the caller fences the other site). Nothing to do when the site is the primary already."""
    other = _other_site(lab, name)
    site = lab.site(name)
    if lab.site_role(name) == "primary":
        return OpResult("site promote", 0.0, f"site {name} is the primary site already; nothing changed",
                        {"site": name, "changed": False})
    answering = _site_leader_answers(lab.site(other))
    if answering and not force:
        raise InputError(
            f"site {other}'s {answering} still takes writes: promoting site {name} now would give the lab two "
            f"primaries. Demote it first (`pglab site demote {other} --follow {name}`), or, when site {other} is "
            "lost to you but may still run, fence it and pass --force")
    started = time.monotonic()
    caught_up = ""
    if _wal_position(lab.site(other), "pg_last_wal_replay_lsn") is not None:
        # A planned switch: the other site stopped taking writes; receive all it wrote first.
        wait_until(lambda: _caught_up(site, lab.site(other)), timeout, f"site {name} to receive site {other}'s WAL",
                   on_event)
        caught_up = f"; caught up with site {other} after {time.monotonic() - started:.1f} s"
    stack = site.stack()
    stack.follow(None)
    wait_until(lambda: writes_ok(site), timeout, f"site {name} to take writes", on_event)
    promoted_after = time.monotonic() - started
    slot = _source(lab, other, name).slot
    stack.keep_slots([slot])
    stanza = _make_stanza(site)
    seconds = time.monotonic() - started
    fence = (f"site {other}'s {answering} still took writes: fence it (stop its nodes, cut its network) before "
             f"clients can reach it, then `pglab site demote {other} --follow {name}`") if answering else ""
    return OpResult("site promote", seconds,
                    f"site {name} promoted{caught_up}: writes accepted after {promoted_after:.1f} s; slot {slot} "
                    f"kept for site {other}{stanza}",
                    {"site": name, "changed": True, "promoted_after": round(promoted_after, 2), "fence": fence})


STANZA_TRIES = 15


def _make_stanza(site: Lab) -> str:
    """The site's repository ready to take the new primary's WAL (a stanza made from a standby
    cluster waits for its promotion: pgBackRest makes one from a primary only)."""
    if not pgbackrest.enabled(site.topology):
        return ""
    node = pgbackrest.repository_node(site.topology)
    argv = pgbackrest.command(pgbackrest.config_file(site.provider.node_root(node)), site.topology.postgres.scope,
                              "stanza-create")
    # The new primary's archiver pushes already, and each push holds the archive lock a moment.
    for _attempt in range(STANZA_TRIES - 1):
        done = site.provider.run_as_service_user(node, argv, timeout=120)
        if done.returncode == 0:
            return f"; WAL archived to {node.name}'s repository"
        if "unable to acquire lock" not in done.stderr + done.stdout:
            break
        time.sleep(1)
    site.provider.check_as_service_user(node, argv, "pgbackrest stanza-create", PglabError, timeout=120)
    return f"; WAL archived to {node.name}'s repository"


def demote_site(lab: Lab, name: str, follow: str, timeout: float = 180,
                on_event: EventSink = ignore_event, once_fenced: Callable[[], None] | None = None) -> OpResult:
    """Make site ``name``'s cluster a standby cluster of site ``follow``: its leader becomes a
    standby leader streaming from the other site's write endpoint (the stack rewinds it where its
    timeline went ahead, else copies it anew), its own permanent slots dropped. ``follow`` is the
    primary site (fail-back: the site comes back behind the new primary), or still the standby
    cluster of this one (a planned switch: this site stops taking writes first, the other catches
    up, then `pglab site promote` makes it the primary). Nothing to do when it follows already.
    ``once_fenced`` is called once the site takes no writes (a drill starts its router then)."""
    if follow == name or _other_site(lab, name) != follow:
        raise InputError(f"--follow names the other site: {_other_site(lab, name)}")
    site, followed = lab.site(name), lab.site(follow)
    source = _source(lab, name, follow)
    stack = site.stack()
    role = lab.site_role(follow)
    # Following already: done, unless the site was made to follow while it was down
    # (:func:`follow_while_down`) and does not stream yet: then wait for it below.
    already = _follows(stack, source)
    if already and (role != "primary" or _streams(followed, source)):
        if once_fenced is not None:  # it takes no writes: its router may start (a drill's fail-back)
            once_fenced()
        return OpResult("site demote", 0.0, f"site {name} follows site {follow} already; nothing changed",
                        {"site": name, "follow": follow, "changed": False})
    planned = role == "standby" and _follows(followed.stack(), _source(lab, follow, name))
    if role != "primary" and not planned:
        raise InputError(f"site {follow} is neither the primary site nor a standby of site {name}: promote it "
                         f"first (`pglab site promote {follow}`)")
    started = time.monotonic()
    if not already:
        if not planned:
            followed.stack().keep_slots([source.slot])
        stack.follow(source)
        stack.keep_slots([])
    wait_until(lambda: (_site_leader_answers(site) is None, f"site {name} still takes writes"), timeout,
               f"site {name} to stop taking writes", on_event)
    if once_fenced is not None:
        once_fenced()
    if planned:
        seconds = time.monotonic() - started
        return OpResult("site demote", seconds,
                        f"site {name} stopped taking writes after {seconds:.1f} s; it follows site {follow} once "
                        f"that is promoted (`pglab site promote {follow}`)",
                        {"site": name, "follow": follow, "changed": True, "planned": True})

    def streaming() -> tuple[bool, str]:
        return _streams(followed, source), f"site {name} does not stream through slot {source.slot} yet"

    wait_until(streaming, timeout, f"site {name} to stream from site {follow}", on_event, interval=0.5)
    health = site.wait_healthy(timeout, on_event)
    seconds = time.monotonic() - started
    return OpResult("site demote", seconds,
                    f"site {name} follows site {follow}: its standby leader {health.leader} streams after "
                    f"{seconds:.1f} s",
                    {"site": name, "follow": follow, "changed": True, "planned": False,
                     "standby_leader": health.leader})


def follow_while_down(lab: Lab, name: str, follow: str, timeout: float = 120) -> OpResult:
    """Site ``name``'s cluster made a standby cluster of site ``follow`` (the primary site) in its
    own state store while its data nodes are down and the store runs: a lost site coming back
    then rejoins as the standby (rewound where its timeline went ahead), none of its members
    promoted on the way. `pglab site demote` afterwards waits for it to stream."""
    if follow == name or _other_site(lab, name) != follow:
        raise InputError(f"--follow names the other site: {_other_site(lab, name)}")
    if lab.site_role(follow) != "primary":
        raise InputError(f"site {follow} is not the primary site: promote it first (`pglab site promote {follow}`)")
    started = time.monotonic()
    site = lab.site(name)
    source = _source(lab, name, follow)
    lab.site(follow).stack().keep_slots([source.slot])
    node = site.topology.with_role("postgres")[0]
    argv = stacks.spec(site.topology.stack).follow_while_down(
        site.topology, site.provider.node_root(node), site.provider.nodes_on_this_machine, source)

    def written() -> tuple[bool, str]:
        done = site.provider.run_as_service_user(node, list(argv), timeout=60)
        return done.returncode == 0, failure_detail(done.stderr or done.stdout)

    # The site's DCS may have just started: it answers within seconds.
    wait_until(written, timeout, f"site {name}'s DCS to make it a standby cluster of site {follow}", interval=1)
    seconds = time.monotonic() - started
    return OpResult("site follow", seconds, f"site {name} made a standby cluster of site {follow} while down",
                    {"site": name, "follow": follow, "changed": True})


SINGLE_USER_VALUE = re.compile(r'^\s*1: value = "(.*)"\t', re.MULTILINE)


def query_stopped(lab: Lab, name: str, query: str, timeout: float = 300) -> str | None:
    """The one value ``query`` returns on data node ``name`` while its PostgreSQL is down, read by
    PostgreSQL in single-user mode over the node's data directory: no listener, no archiver, so
    no client reaches it and no WAL leaves it. A crashed directory is recovered first and left
    cleanly shut down, as Patroni's own crash recovery leaves it (pg_rewind wants that). None
    when the query gave no value (an error: a table missing)."""
    node = lab.node(name)
    version = lab.topology.postgres.version
    data = paths.postgres_data_dir(lab.provider.node_root(node), version)
    postgres = f"{paths.postgres_bin_dir(version)}/postgres"
    script = ('printf "%s\\n" "$1" | "$2" --single -D "$3" -c archive_mode=on -c archive_command=false '
              '-c log_min_messages=warning postgres')
    output = lab.provider.check_as_service_user(
        node, ["sh", "-c", script, "sh", f"SELECT ({query})::text AS value", postgres, data],
        f"reading {name}'s data directory", PglabError, timeout)
    found = SINGLE_USER_VALUE.search(output)
    return None if found is None else found.group(1)


def _streams(followed: Lab, source: StandbySource) -> bool:
    """Whether the standby site streams from ``followed`` (the primary site) through its slot."""
    lag = sites_view.lag_between_sites(followed.writes_conninfo("direct"), source.slot)
    return bool(lag and lag.streaming)


def _follows(stack: Stack, source: StandbySource) -> bool:
    """Whether the cluster is a standby cluster of ``source`` already."""
    current = stack.standby_source() or {}
    return (current.get("host"), current.get("port")) == (source.host, source.port)


def _wal_position(site: Lab, function: str) -> int | None:
    """``function`` (an LSN function) on the site's first member that answers, in bytes from 0/0."""
    password, port = site.superuser_password(), site.topology.ports.postgres
    for node in site.topology.with_role("postgres"):
        with contextlib.suppress(psycopg.Error, OSError):
            rows = sql.query(site.address(node.name), port, password,
                             f"SELECT pg_wal_lsn_diff({function}(), '0/0')::bigint", tls=site.libpq_tls())
            if rows and rows[0][0] is not None:
                return int(rows[0][0])
    return None


WAL_SEGMENT = 16 * 1024 * 1024
# What a primary that archives writes when it shuts down (demoted), after its last data: a segment
# switch (unless the segment is new), then its shutdown checkpoint. Its router cuts the other
# site's stream as soon as it marks the demoted leader down (HAProxy shuts that server's sessions),
# so that checkpoint never arrives; no data is in it.
SHUTDOWN_TAIL = 512


def _caught_up(site: Lab, other: Lab) -> tuple[bool, str]:
    """Whether ``site``'s standby leader has received all the data ``other`` (a former primary,
    now a standby that takes no writes) wrote: everything, or all but its shutdown's tail."""
    theirs = _wal_position(other, "pg_last_wal_replay_lsn")
    ours = _wal_position(site, "pg_last_wal_receive_lsn")
    if theirs is None or ours is None:
        return False, f"received {ours}, theirs {theirs}"
    return received_all(ours, theirs), f"{theirs - ours} bytes behind"


def received_all(ours: int, theirs: int) -> bool:
    """Whether WAL received up to ``ours`` holds all the data of WAL that ends at ``theirs`` (a
    demoted primary's end): all of it, or all but its shutdown checkpoint, alone (the segment had
    just been switched) or after a switch to the next segment. The drills count the rows to prove
    no acknowledged write was in what is missing."""
    if ours >= theirs or theirs - ours <= SHUTDOWN_TAIL:
        return True
    return theirs // WAL_SEGMENT == ours // WAL_SEGMENT + 1 and theirs % WAL_SEGMENT <= SHUTDOWN_TAIL
