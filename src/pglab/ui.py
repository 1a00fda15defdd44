"""Everything pglab shows a person: progress on long work, patronictl-like tables, JSON."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, is_dataclass
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from pglab.ansible import PlaybookEvent
from pglab.components.haproxy import Backend
from pglab.lab import LabStatus, Step, Waiting
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


def members_table(cluster: str, members: list[Member]) -> Table:
    table = Table(title=f"Cluster: {cluster}", title_justify="left")
    # The stack's own state words (pg_auto_failover's current and assigned state), when it has them.
    own_states = any(m.assigned_state for m in members)
    # Names, hosts and roles are never wrapped or cut ("127.0.11.1…" would mislead); headers may wrap.
    for column in ("Member", "Host", "Role"):
        table.add_column(column, no_wrap=True)
    if own_states:
        table.add_column("Current", no_wrap=True)
        table.add_column("Assigned", no_wrap=True)
    else:
        table.add_column("State", overflow="fold")
    table.add_column("TL", justify="right", no_wrap=True)
    table.add_column("Lag in MB", justify="right", min_width=3, max_width=6)
    table.add_column("Pending restart", justify="center", max_width=8, min_width=7)
    for m in members:
        role = {"leader": "Leader", "replica": "Replica"}.get(m.role, m.role)
        style = "bold green" if m.role == "leader" else ("red" if m.state not in ("running", "streaming") else "")
        states = [m.current_state or m.state, m.assigned_state or ""] if own_states else [m.state]
        table.add_row(
            m.name, f"{m.host}:{m.port}" if m.port else m.host, role, *states,
            "" if m.timeline is None else str(m.timeline),
            "" if m.lag_mb is None or m.role == "leader" else f"{m.lag_mb:g}",
            "*" if m.pending_restart else "",
            style=style,
        )
    return table


def backends_table(backends: list[Backend]) -> Table:
    table = Table(title="HAProxy", title_justify="left")
    for column in ("Listener", "Server", "Status"):
        table.add_column(column)
    for b in backends:
        table.add_row(b.proxy, b.server, b.status, style="green" if b.status == "UP" else "dim")
    return table


def verify_table(results: list[Any]) -> Table:
    """`pglab verify`'s results (:class:`pglab.verify.CheckResult`): one row per check and node."""
    table = Table(title="pglab verify", title_justify="left")
    for column in ("Check", "Test", "Node", "Outcome", "Seconds"):
        table.add_column(column, justify="right" if column == "Seconds" else "left")
    styles = {"passed": "green", "failed": "bold red", "error": "bold red", "skipped": "yellow"}
    for r in results:
        outcome = Text(r.outcome, style=styles.get(r.outcome, ""))
        test = Text(r.name)
        if r.message:
            test.append(f"\n{r.message}", style=styles.get(r.outcome, "dim"))
        table.add_row(r.check, test, r.node or "", outcome, f"{r.seconds:.1f}")
    return table


def print_status(status: LabStatus) -> None:
    console.print(members_table(status.cluster, status.members))
    if status.haproxy:
        console.print(backends_table(status.haproxy))
    for node, services in status.services.items():
        for name, state in services.items():
            if state != "RUNNING":
                console.print(f"[yellow]{node}: {name} is {state}[/yellow]")
    if status.uri:
        console.print(f"formation URI: {status.uri}", highlight=False)
    console.print(f"writes: PGPASSFILE={status.endpoints['pgpass']} psql '{status.endpoints['write']}'",
                  highlight=False)
    if status.endpoints.get("read"):
        console.print(f"reads:  PGPASSFILE={status.endpoints['pgpass']} psql '{status.endpoints['read']}'",
                      highlight=False)
    change = status.last_leader_change
    if change:
        console.print(f"last leader change: {change['new_leader'] or 'a member'} became leader at "
                      f"{change['time']} (timeline {change['timeline'] + 1})", highlight=False)
    for warning in status.warnings:
        console.print(Text(f"warning: {warning}", style="yellow"))
    if status.healthy:
        console.print("[green]healthy[/green]")
    else:
        console.print("[red]unhealthy: " + "; ".join(status.problems) + "[/red]")


def certs_table(rows: list[dict[str, Any]]) -> Table:
    """`pglab certs` (:func:`pglab.tls.report.rows`): one row per certificate."""
    table = Table(title="pglab certs", title_justify="left")
    for column in ("Node", "Services", "Common name", "Names (SANs)", "Not after", "Days left", "Served"):
        table.add_column(column, justify="right" if column == "Days left" else "left")
    for r in rows:
        days = Text(f"{r['days_left']:.0f}", style="bold red" if r["days_left"] < 30 else "")
        served = Text(r["served"], style="green" if r["served"] == "yes" else "yellow")
        common_name = r["subject"].split(",")[0].removeprefix("CN=")
        table.add_row(r["name"], r["services"], common_name, ", ".join(r["sans"]), r["not_after"][:10], days, served)
    return table


def drill_table(rows: list[dict[str, Any]]) -> Table:
    """`pglab drill`'s summary (:func:`pglab.drills.frame.summary`): one row per kind of drill."""
    table = Table(title="pglab drill", title_justify="left")
    table.add_column("Drill", no_wrap=True)
    table.add_column("Setting")
    table.add_column("n", justify="right")
    table.add_column("Writes down (s)\nmin/median/max", no_wrap=True)
    table.add_column("Acked\nlost", justify="right")
    table.add_column("Failed,\ncommitted", justify="right")
    table.add_column("Checks\n(violations)")
    table.add_column("Leader\nold->new", no_wrap=True)
    table.add_column("Result", no_wrap=True)
    for r in rows:
        u = r["unavailable_s"]
        spread = "-" if u is None else f"{u['min']:.2f}/{u['median']:.2f}/{u['max']:.2f}"
        outcome = Text("ok" if r["ok"] else "FAILED", style="green" if r["ok"] else "bold red")
        checks = Text()
        for i, (check, count) in enumerate(r.get("checks", {}).items()):
            checks.append(("\n" if i else "") + f"{check} {count}", style="bold red" if count else "")
        table.add_row(r["kind"], r.get("setting", ""), str(r["drills"]), spread, str(r["lost"]),
                      str(r["failed_committed"]), checks,
                      "\n".join(leader.replace(" -> ", "->") for leader in r["leaders"]), outcome)
    return table


def backups_table(listing: Any) -> Table:
    """`pglab backups`: one row per backup, the restorable window in the title."""
    window = listing.window
    span = (f"restorable from {window.earliest:%Y-%m-%d %H:%M:%S} to {window.latest:%Y-%m-%d %H:%M:%S} UTC"
            if window.earliest and window.latest else "nothing restorable yet")
    table = Table(title=f"Backups of {listing.stanza}: {span}", title_justify="left")
    for column in ("Label", "Type", "Start (UTC)", "Stop (UTC)", "Size", "Stored"):
        table.add_column(column, no_wrap=True)
    for b in listing.backups:
        table.add_row(b.label, b.type, f"{b.start:%Y-%m-%d %H:%M:%S}", f"{b.stop:%Y-%m-%d %H:%M:%S}",
                      f"{b.size_bytes / 2**20:.1f} MB", f"{b.repository_bytes / 2**20:.1f} MB")
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
