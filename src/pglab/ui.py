"""Everything pglab shows a person: progress on long work, patronictl-like tables, JSON."""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from pglab.ansible import PlaybookEvent
from pglab.components.haproxy import Backend
from pglab.lab import LabStatus, Step, UpCheck, Waiting
from pglab.stacks.base import Member

# soft_wrap: long lines (connection strings, commands to copy) are never broken by rich.
console = Console(soft_wrap=True)
err_console = Console(stderr=True)


def print_error(message: str) -> None:
    """``error: message`` on stderr; the message is shown as written (never read as rich markup)."""
    err_console.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False, soft_wrap=True)


class Progress:
    """An event sink for long operations: a live line on a terminal, plain lines elsewhere; on
    stderr, so that `--json` output on stdout stays parseable."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.started = time.monotonic()
        self.step = ""
        self.task = ""
        self.hosts_done = 0
        self.changed = 0
        self.live: Live | None = None

    def __enter__(self) -> Progress:
        if err_console.is_terminal:
            self.live = Live(self._render(), console=err_console, refresh_per_second=8, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def _render(self) -> Text:
        elapsed = time.monotonic() - self.started
        line = Text(f"{self.title} [{elapsed:5.1f}s] ", style="bold")
        line.append(self.step, style="cyan")
        if self.task:
            line.append(f"  task: {self.task} ({self.hosts_done} hosts done, {self.changed} changed)")
        return line

    def __call__(self, event: Any) -> None:
        elapsed = time.monotonic() - self.started
        if isinstance(event, Step):
            self.step, self.task = event.name, ""
            err_console.print(f"[dim]{elapsed:6.1f}s[/dim] {event.name}")
        elif isinstance(event, PlaybookEvent):
            if event.kind == "task":
                self.task, self.hosts_done = event.name, 0
            elif event.kind in ("ok", "changed", "skipped", "failed"):
                self.hosts_done += 1
                self.changed += event.kind == "changed"
            elif event.kind == "play" and self.live is None:
                err_console.print(f"[dim]{elapsed:6.1f}s[/dim]   play: {event.name}")
        elif isinstance(event, Waiting):
            self.task = event.detail
        if self.live is not None:
            self.live.update(self._render())


def to_jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: to_jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


def print_json(value: Any) -> None:
    print(json.dumps(to_jsonable(value), indent=2))


def show(value: Any, table: Callable[[Any, bool], RenderableType], as_json: bool, wide: bool = False) -> None:
    """What a listing command prints, in the spirit of patronictl: ``value`` as JSON (every field),
    or its table: the columns a person needs first, readable at 80 columns, or all of them with ``wide``."""
    if as_json:
        print_json(value)
    else:
        print_table(table(value, wide), wide)


def print_table(renderable: RenderableType, wide: bool = False) -> None:
    """A table at the terminal's width; a wide one at its own full width (the terminal wraps its
    long lines, as `kubectl -o wide` does), since cutting its cells would defeat the point."""
    width = Measurement.get(console, console.options.update_width(1000), renderable).maximum if wide else 0
    if width <= console.width:
        console.print(renderable)
    else:  # the console would cut it at the terminal's width
        Console(file=console.file, width=width, soft_wrap=True).print(renderable)


def members_table(cluster: str, members: list[Member], wide: bool = False, leader_word: str = "Leader") -> Table:
    """The members; ``leader_word`` names the leader's role (a standby cluster's "Standby leader")."""
    table = Table(title=f"Cluster: {cluster}", title_justify="left")
    # The stack's own state words (pg_auto_failover's current and assigned state), when it has them.
    own_states = any(m.assigned_state for m in members)
    # Names, hosts and roles are never wrapped or cut ("127.0.11.1…" would mislead); headers may wrap.
    for column in ("Member", "Host", "Role"):
        table.add_column(column, no_wrap=True)
    if own_states and wide:
        table.add_column("Current", no_wrap=True)
        table.add_column("Assigned", no_wrap=True)
    else:
        table.add_column("State", min_width=9)
    table.add_column("TL", justify="right", no_wrap=True)
    table.add_column("Lag in MB", justify="right", min_width=3, max_width=6)
    table.add_column("Pending restart", justify="center", max_width=8, min_width=7)
    if wide:
        table.add_column("Pending changes", overflow="fold")
    for m in members:
        role = {"leader": leader_word, "replica": "Replica"}.get(m.role, m.role)
        style = "bold green" if m.role == "leader" else ("red" if m.state not in ("running", "streaming") else "")
        current = m.current_state or m.state
        if own_states and wide:
            states = [current, m.assigned_state or ""]
        elif own_states and m.assigned_state and m.assigned_state != current:
            states = [f"{current} -> {m.assigned_state}"]  # on its way: both words, wrapped between them
        else:
            states = [current]
        changes = [", ".join(f"{name} {change.get('old_value')} -> {change.get('new_value')}"
                             for name, change in m.pending_changes.items())] if wide else []
        table.add_row(
            m.name, f"{m.host}:{m.port}" if m.port else m.host, role, *states,
            "" if m.timeline is None else str(m.timeline),
            "" if m.lag_mb is None or m.role == "leader" else f"{m.lag_mb:g}",
            "*" if m.pending_restart else "",
            *changes,
            style=style,
        )
    return table


def sites_table(views: list[Any]) -> Table:
    """A two-site lab's sites (:class:`pglab.sites.SiteView`): role, cluster, leader, and the
    standby site's lag behind the primary site (WAL not yet received, seconds of replay delay)."""
    table = Table(title="Sites", title_justify="left")
    for column in ("Site", "Role", "Cluster", "Leader", "Lag in bytes", "Lag in s"):
        table.add_column(column, no_wrap=column in ("Site", "Role", "Cluster", "Leader"),
                         justify="right" if column.startswith("Lag") else "left")
    for view in views:
        lag = view.lag
        received = "" if lag is None or lag.received_bytes is None else str(lag.received_bytes)
        seconds = "" if lag is None or lag.seconds is None else f"{lag.seconds:g}"
        style = "bold green" if view.role == "primary" else ("" if view.healthy else "red")
        table.add_row(view.name, view.role, view.cluster, view.leader or "none", received, seconds, style=style)
    return table


def backends_table(backends: list[Backend]) -> Table:
    table = Table(title="HAProxy", title_justify="left")
    for column in ("Listener", "Server", "Status"):
        table.add_column(column, no_wrap=True)
    for b in backends:
        table.add_row(b.proxy, b.server, b.status, style="green" if b.status == "UP" else "dim")
    return table


def poolers_table(poolers: dict[str, Any]) -> Table:
    """Each data node's PgBouncer (:class:`pglab.lab.PoolerView`, None when it did not answer)."""
    table = Table(title="PgBouncer", title_justify="left")
    for column in ("Node", "Clients", "Waiting", "Servers", "Pool mode"):
        table.add_column(column, no_wrap=True, justify="left" if column in ("Node", "Pool mode") else "right")
    for node, view in poolers.items():
        if view is None:
            table.add_row(node, "", "", "", "not answering", style="red")
        else:
            table.add_row(node, str(view.clients), str(view.waiting), str(view.servers), view.pool_mode)
    return table


def verify_table(results: list[Any], wide: bool = False) -> Table:
    """`pglab verify`'s results (:class:`pglab.verify.CheckResult`): one row per check and node; the
    test's words and its message wrap, the check, node and outcome never do."""
    table = Table(title="pglab verify", title_justify="left")
    table.add_column("Check", no_wrap=True)
    table.add_column("Test", min_width=16)
    table.add_column("Node", no_wrap=True)
    table.add_column("Outcome", no_wrap=True)
    if wide:
        table.add_column("Seconds", justify="right", no_wrap=True)
    styles = {"passed": "green", "failed": "bold red", "error": "bold red", "skipped": "yellow"}
    for r in results:
        outcome = Text(r.outcome, style=styles.get(r.outcome, ""))
        test = Text(r.name)
        if r.message:
            test.append(f"\n{r.message}", style=styles.get(r.outcome, "dim"))
        table.add_row(r.check, test, r.node or "", outcome, *([f"{r.seconds:.1f}"] if wide else []))
    return table


def status_view(status: LabStatus, wide: bool = False) -> Group:
    """`pglab status`: the members, HAProxy's routing, then what to connect to and what is wrong."""
    parts: list[RenderableType] = [members_table(status.cluster, status.members, wide)]
    if status.sites:  # a two-site lab: the sites, then each site's members (the primary's first)
        parts = [sites_table(status.sites)]
        for view in sorted(status.sites, key=lambda v: v.role != "primary"):
            leader_word = "Standby leader" if view.role == "standby" else "Leader"
            parts.append(members_table(f"{view.cluster} (site {view.name}, {view.role})", view.members, wide,
                                       leader_word))
    if status.haproxy:
        parts.append(backends_table(status.haproxy))
    if status.poolers:
        parts.append(poolers_table(status.poolers))
    for node, services in status.services.items():
        for name, state in services.items():
            if state != "RUNNING":
                parts.append(Text(f"{node}: {name} is {state}", style="yellow"))
    # Connection strings are one line each (the console does not wrap them), to copy whole.
    if status.uri:
        parts.append(Text(f"formation URI: {status.uri}"))
    parts.append(Text(f"writes: PGPASSFILE={status.endpoints['pgpass']} psql '{status.endpoints['write']}'"))
    if status.endpoints.get("read"):
        parts.append(Text(f"reads:  PGPASSFILE={status.endpoints['pgpass']} psql '{status.endpoints['read']}'"))
    vip = status.endpoints.get("vip_pooled") or status.endpoints.get("vip")
    if vip:
        parts.append(Text(f"vip:    PGPASSFILE={status.endpoints['pgpass']} psql '{vip}'"))
        parts.append(Text(f"virtual IP on {status.vip_node}") if status.vip_node
                     else Text("virtual IP held by no node", style="yellow"))
    change = status.last_leader_change
    if change:
        parts.append(Text(f"last leader change: {change['new_leader'] or 'a member'} became leader at "
                          f"{change['time']} (timeline {change['timeline'] + 1})"))
    parts += [Text(f"warning: {warning}", style="yellow") for warning in status.warnings]
    if status.healthy:
        parts.append(Text("healthy", style="green"))
    else:
        parts.append(Text("unhealthy: " + "; ".join(status.problems), style="red"))
    return Group(*parts)


def print_status(status: LabStatus, wide: bool = False) -> None:
    console.print(status_view(status, wide))


def _utc(iso: str, seconds: bool) -> str:
    """An ISO 8601 moment as ``2027-12-06 05:59`` (UTC), whole: the date is never cut."""
    moment = datetime.datetime.fromisoformat(iso).astimezone(datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def _summary(items: list[str], noun: str) -> str:
    """A list summarised for a narrow column: its only item when short, else how many ("5 names")."""
    distinct = list(dict.fromkeys(items))
    if not distinct:
        return "-"
    if len(distinct) == 1 and len(distinct[0]) <= 12:
        return distinct[0]
    return f"{len(distinct)} {noun}{'s' if len(distinct) != 1 else ''}"


def certs_table(rows: list[dict[str, Any]], wide: bool = False) -> Table:
    """`pglab certs` (:func:`pglab.tls.report.rows`): one row per certificate. At 80 columns the
    names are counted and "served" says yes, old or unreachable; --wide (and --json) shows every
    name, the subject, the serial and what exactly is served."""
    table = Table(title="pglab certs", title_justify="left")
    table.add_column("Node", no_wrap=True)
    table.add_column("Services", min_width=13)
    if wide:
        table.add_column("Common name", overflow="fold")
    table.add_column("Names (SANs)" if wide else "Names", overflow="fold", no_wrap=not wide)
    table.add_column("Not after (UTC)", no_wrap=True)
    table.add_column("Days\nleft", justify="right", no_wrap=True)
    if wide:
        table.add_column("Serial", no_wrap=True)
    table.add_column("Served", no_wrap=not wide, overflow="fold")
    for r in rows:
        days = Text(f"{r['days_left']:.0f}", style="bold red" if r["days_left"] < 30 else "")
        parts = [part.strip() for part in r["served"].split(",") if part.strip()]
        served_text = r["served"] if wide else ", ".join(dict.fromkeys(p.split(":")[0] for p in parts))
        served = Text(served_text, style="green" if r["served"] == "yes" else "yellow")
        names = ", ".join(dict.fromkeys(r["sans"])) if wide else _summary(r["sans"], "name")
        common_name = r["subject"].split(",")[0].removeprefix("CN=")
        table.add_row(r["name"], r["services"], *([common_name] if wide else []), names,
                      _utc(r["not_after"], seconds=wide), days, *([r["serial"]] if wide else []), served)
    return table


def drill_table(rows: list[dict[str, Any]], wide: bool = False) -> Table:
    """`pglab drill`'s summary (:func:`pglab.drills.summary.summary`): one row per kind of drill and
    setting. At 80 columns the setting goes under the kind, the writes' outage is the median and
    the result names only the checks that were violated; ``wide`` shows the setting, the spread
    (min/median/max), every check and the leaders in columns of their own."""
    table = Table(title="pglab drill", title_justify="left")
    table.add_column("Drill", min_width=10)  # the longest kind (switchover) on one line
    if wide:
        table.add_column("Setting")
    table.add_column("n", justify="right", no_wrap=True)
    table.add_column("Writes down (s)\nmin/median/max" if wide else "Writes\ndown (s)\nmedian", justify="right",
                     no_wrap=True)
    table.add_column("Acked\nlost", justify="right", no_wrap=True)
    table.add_column("Failed,\ncommitted", justify="right", no_wrap=True)
    if wide:
        table.add_column("Checks\n(violations)", no_wrap=True)
        table.add_column("Leader\nold->new", no_wrap=True)
    table.add_column("Result", no_wrap=True)
    for r in rows:
        u = r["unavailable_s"]
        if u is None:
            spread = "-"
        elif wide and r["drills"] > 1:
            spread = f"{u['min']:.2f}/{u['median']:.2f}/{u['max']:.2f}"
        else:
            spread = f"{u['median']:.2f}"
        checks: dict[str, int] = r.get("checks", {})
        outcome = Text("ok" if r["ok"] else "FAILED", style="green" if r["ok"] else "bold red")
        if not wide:  # one violated check a line, whole: "bank_total 1"
            for check, count in checks.items():
                if count:
                    outcome.append(f"\n{check} {count}", style="bold red")
        drill = Text(r["kind"])
        if not wide and r.get("setting"):
            drill.append(f"\n{r['setting']}", style="dim")
        spelled: list[RenderableType] = [
            Text("\n".join(f"{check} {count}" for check, count in checks.items())),
            "\n".join(leader.replace(" -> ", "->") for leader in r["leaders"]),
        ] if wide else []
        table.add_row(drill, *([r.get("setting", "")] if wide else []), str(r["drills"]), spread, str(r["lost"]),
                      str(r["failed_committed"]), *spelled, outcome)
    return table


def backups_table(listing: Any, wide: bool = False) -> Table:
    """`pglab backups`: one row per backup, the restorable window in the title. At 80 columns: the
    label, the type, when it finished (a restore can reach from there on) and its size; --wide adds
    the start, the space it takes in the repository and its WAL range."""
    window = listing.window
    span = "nothing restorable yet"
    if window.earliest and window.latest:
        # The latest moment's date only when it differs, so that the title fits 80 columns.
        latest = f"{window.latest:%H:%M:%S}" if window.latest.date() == window.earliest.date() else \
            f"{window.latest:%Y-%m-%d %H:%M:%S}"
        span = f"restorable {window.earliest:%Y-%m-%d %H:%M:%S} to {latest} UTC"
    table = Table(title=f"Backups of {listing.stanza}: {span}", title_justify="left")
    columns = ["Label", "Type", *(["Start (UTC)"] if wide else []), "Stop (UTC)", "Size",
               *(["Stored", "WAL start", "WAL stop"] if wide else [])]
    for column in columns:
        table.add_column(column, no_wrap=True, justify="right" if column in ("Size", "Stored") else "left")
    for b in listing.backups:
        table.add_row(b.label, b.type, *([f"{b.start:%Y-%m-%d %H:%M:%S}"] if wide else []),
                      f"{b.stop:%Y-%m-%d %H:%M:%S}", f"{b.size_bytes / 2**20:.1f} MB",
                      *([f"{b.repository_bytes / 2**20:.1f} MB", b.wal_start, b.wal_stop] if wide else []))
    return table


def restore_table(result: Any) -> Table:
    """`pglab restore`: how long each phase took, the time back to health in the title."""
    table = Table(title=f"Restore to {result.target}: healthy {result.restore_s:.1f} s after the first stop "
                        f"({result.total_s:.1f} s in all)", title_justify="left")
    for column, justify in (("Phase", "left"), ("Seconds", "right"), ("Outcome", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for phase in result.phases:
        table.add_row(phase.name, f"{phase.seconds:.1f}", phase.detail)
    return table


def up_check_text(plan: UpCheck) -> str:
    """`pglab up --check`: per node, the packages `up` would install, how many tasks would change
    something and which files they would write; where check mode stopped, and why that can be."""
    lines = []
    for node in plan.nodes:
        if not (node.packages or node.tasks or node.stopped):
            lines.append(f"{node.node}: nothing would change")
            continue
        lines.append(f"{node.node}: {len(node.tasks)} task(s) would change something")
        if node.packages:
            lines.append(f"  would install {len(node.packages)} package(s): {', '.join(node.packages)}")
        if node.files:
            lines.append(f"  would write: {', '.join(node.files)}")
        if node.stopped:
            lines.append(f"  check mode stopped at {node.stopped} (a task may need what an earlier one only "
                         "pretended to do, such as a package not installed yet)")
    lines.append(f"Nothing was changed ({plan.seconds:.1f} s). Full Ansible output: {plan.log}")
    return "\n".join(lines)
