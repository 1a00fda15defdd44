"""The pglab command line: parse, call the library, print. No logic a test would want lives here."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import sys
import typing
import warnings
import xmlrpc.client
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click
import psycopg
from rich.markup import escape

from pglab import catalog, operations, providers, stacks, topology, ui
from pglab.backups import backup as backups_module
from pglab.backups import restore as restoring
from pglab.backups import restore_target
from pglab.components import haproxy
from pglab.drills import frame, kinds, workloads
from pglab.drills import result as drill_result
from pglab.drills import summary as drill_summary
from pglab.drills.crowd import CrowdSpec
from pglab.drills.kind import DrillKind, Option
from pglab.errors import InputError, PglabError
from pglab.lab import Lab, LabWarning, Step
from pglab.providers import crun_cgroups
from pglab.vm import box, image

_python_showwarning = warnings.showwarning


class Seconds(click.ParamType[float]):
    """A timeout: a finite number of seconds, more than 0 and at most a day."""

    name = "SECONDS"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds; write for example 120", param, ctx)
        if not 0 < seconds <= 86400:  # also false for nan
            self.fail(f"{value!r} is not between 0 and 86400 seconds (a day)", param, ctx)
        return seconds


class Registered(click.Choice[str]):
    """A choice among the names a registry holds when the command runs (stacks, providers), so a
    stack registered by a plugin or a test is offered without editing the CLI."""

    def __init__(self, registry: Mapping[str, object]) -> None:
        self.registry = registry
        super().__init__([])

    @property  # click's Choice stores a plain attribute; ours follows the registry
    def choices(self) -> tuple[str, ...]:
        return tuple(self.registry)

    @choices.setter
    def choices(self, _value: object) -> None:
        pass


class FilePath(click.Path):
    """A path; one with a NUL character (which no file can have) is refused, not a traceback."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if "\0" in str(value):
            self.fail("a path cannot contain a NUL character", param, ctx)
        return super().convert(value, param, ctx)


file_option = click.option(
    "-f", "--file", "topology_file", type=FilePath(path_type=Path), default=topology.DEFAULT_FILE,
    envvar="PGLAB_FILE", show_default=True, show_envvar=True,
    help="The lab's topology YAML (written by `pglab init`).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts instead of tables.")
wide_option = click.option("--wide", is_flag=True,
                           help="Every column, even past 80 (the table fits 80 columns without it; --json has all).")


def reports_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn pglab's errors into a message on stderr and their exit code (2: bad input)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except PglabError as exc:
            ui.print_error(str(exc))
            sys.exit(exc.exit_code)
        except (OSError, psycopg.Error, xmlrpc.client.Error) as exc:
            # A service of the lab did not answer: say which, without a traceback.
            message = str(exc).strip() or type(exc).__name__
            ui.print_error(f"{type(exc).__name__}: {message}. Is the lab up? See `pglab status` and `pglab logs NODE`.")
            sys.exit(1)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="pglab")
def main() -> None:
    """Build, prove and tear down PostgreSQL high-availability labs.

    \b
    A lab is described by one YAML file (pglab.yml) and lives in .pglab/<name>/ beside it:
      pglab init        write the default lab (the 3-node Patroni + etcd + HAProxy lab)
      pglab up          render, create the machines, run the playbooks, wait until healthy
      pglab status      members, roles, lag and HAProxy routing, like `patronictl list`
      pglab destroy     stop everything and remove the lab's files

    \b
    Rehearse failover (each command waits for the outcome and says how long it took):
      pglab switchover [--to NODE]     pglab failover --to NODE
      pglab stop NODE [--crash|--hang|--partition]     pglab start NODE
      pglab drill crash --count 3      measure what clients see: write outage, lost writes
      pglab drill crash --clients 16 --workload bank --readers 4   many clients, checked invariants
      pglab report      one HTML page of the drills and the last verify run
      pglab config set max_connections=200, then pglab restart --rolling
      pglab verify      prove it: services, replication, routing, switchover, failover,
                        node loss and a restart-requiring change, as a results table

    Provider `local` (default) runs every node as processes on this machine, each on its own
    loopback address (127.0.11.x); provider `vagrant` makes one VM per node.
    """
    warnings.showwarning = _show_lab_warning


def _show_lab_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      file: typing.TextIO | None = None, line: str | None = None) -> None:
    """A lab's warnings on one line of stderr; Python's own format for any other."""
    if issubclass(category, LabWarning):
        click.echo(f"pglab: warning: {message}", err=True)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


@main.command()
@file_option
@click.option("--name", default=topology.Topology.model_fields["name"].default, show_default=True,
              help="Lab name, also the Patroni cluster name (scope) and the directory .pglab/<name>/.")
@click.option("--stack", type=Registered(stacks.STACKS), default=stacks.default_name(),
              show_default=True, help="The HA stack.")
@click.option("--provider", type=Registered(providers.PROVIDERS), default=providers.default_name(),
              show_default=True, help="Processes on loopback, or VMs.")
@click.option("--dcs", type=click.Choice(typing.get_args(topology.Dcs)), default=typing.get_args(topology.Dcs)[0],
              show_default=True, help="Patroni's DCS (consul needs --provider vagrant).")
@click.option("--sites", type=click.IntRange(1, topology.MAX_SITES), default=1, show_default=True,
              help="2: a second site, a standby cluster of the first (its own DCS, HAProxy and repository).")
@click.option("--force", is_flag=True, help="Overwrite an existing topology file.")
@reports_errors
def init(topology_file: Path, name: str, stack: str, provider: str, dcs: str, sites: int, force: bool) -> None:
    """Write a topology YAML: by default the classic Patroni lab.

    \b
    Nodes: dcs (etcd, or Consul on VMs), haproxy (5000 -> leader, 5001 -> replicas, through
    PgBouncer; 5002 / 5003 direct; 7000 -> stats), pg1, pg2, pg3 (PostgreSQL + Patroni + PgBouncer).
    Edit the file, then `pglab up`.
    """
    text = catalog.default_yaml(name, stack, provider, dcs, sites=sites)
    try:
        catalog.parse(text, str(topology_file))
    except topology.TopologyError as exc:
        raise InputError(str(exc)) from None
    if topology_file.exists() and not force:
        raise InputError(f"{topology_file} already exists; edit it, or pass --force to overwrite it.")
    try:
        topology_file.write_text(text)
    except OSError as exc:
        raise InputError(f"{topology_file}: cannot be written ({exc.strerror or exc}); "
                         "pass a writable path with --file.") from None
    where = f", sites {' and '.join(catalog.SITE_NAMES[:sites])}" if sites > 1 else ""
    ui.console.print(f"wrote {topology_file}: lab {name!r}, stack {stack}, provider {provider}{where}. "
                     "Next: `pglab up`.", markup=False)


@main.command()
@file_option
@reports_errors
def render(topology_file: Path) -> None:
    """Write the Ansible inventory and the secrets (and the vagrant provider's Vagrantfile) into
    .pglab/<name>/."""
    lab = Lab.from_file(topology_file)
    rendered = lab.render()
    extra = "".join(f", {path.name} {path}" for path in rendered.provider_files)
    ui.console.print(f"rendered {rendered.lab_dir}: inventory {rendered.inventory}, "
                     f"secrets {rendered.secrets_file} (0600){extra}", markup=False)


@main.command()
@file_option
@click.option("--stack", type=Registered(stacks.STACKS), default=stacks.default_name(), show_default=True,
              help="Without a topology file: prepare for the default lab of this stack.")
@click.option("--cgroups-for-crun", "cgroups", flag_value="give",
              help="Containers (podman): on a hybrid cgroup layout whose v2 hierarchy holds a controller, "
                   "which crun refuses, mount a v1 hierarchy for it (a change to this machine, until reboot).")
@click.option("--give-back-cgroups", "cgroups", flag_value="give-back",
              help="Undo --cgroups-for-crun: unmount those v1 hierarchies, so that v2 holds the controllers again.")
@reports_errors
def prepare(topology_file: Path, stack: str, cgroups: str | None) -> None:
    """Install what the lab needs on this machine (as root: apt packages and Patroni's venv, or
    pg_auto_failover's packages), and check the host for containers.

    `pglab up` does this by itself when something is missing; without a topology file the
    default lab's needs (of --stack) are installed. For a podman lab it also checks the one host
    change crun may need and makes it only when asked (--cgroups-for-crun).
    """
    if cgroups:
        ui.console.print(crun_cgroups.change(give=cgroups == "give"))
        return
    lab = Lab.from_file(topology_file) if topology_file.exists() else Lab.default(topology_file, stack)
    missing = lab.missing_prerequisites()
    if missing:
        with ui.Progress("prepare") as progress:
            lab.check_prerequisites(progress)  # installs, or says what to install and how
    ui.console.print("installed: " + "; ".join(missing) if missing else "everything the lab needs is installed")
    changes = lab.provider.host_changes()
    if changes:
        raise PglabError(" ".join(changes))


@main.command()
@file_option
@click.option("--timeout", type=Seconds(), default=180.0, show_default=True, help="Seconds to wait for health.")
@click.option("--check", "dry_run", is_flag=True,
              help="Only say what `up` would install and change on existing servers (provider hosts): "
                   "Ansible's check mode, nothing changed.")
@json_option
@reports_errors
def up(topology_file: Path, timeout: float, dry_run: bool, as_json: bool) -> None:
    """Create the lab, or converge it: render, create machines, run playbooks, wait for health.

    Running it again on a healthy lab changes nothing (Ansible reports 0 changed).
    """
    lab = Lab.from_file(topology_file)
    if dry_run:
        with ui.Progress(f"up --check {lab.topology.name}") as progress:
            plan = lab.check_up(progress)
        if as_json:
            ui.print_json(plan)
        else:
            ui.console.print(ui.up_check_text(plan), markup=False, highlight=False)
        return
    with ui.Progress(f"up {lab.topology.name}") as progress:
        result = lab.up(progress, timeout=timeout)
    if as_json:
        ui.print_json(result)
        return
    ui.console.print(ui.members_table(lab.topology.postgres.scope, result.health.members))
    ui.console.print(
        f"[bold green]lab {lab.topology.name} is healthy[/bold green] in {result.seconds:.1f} s; "
        f"Ansible changed {result.changed} thing(s)"
        + (f"; postgres.parameters applied: {', '.join(result.parameters_changed)} "
           "(`pglab status` shows any pending restart)" if result.parameters_changed else "")
        + (f"; {lab.topology.stack} settings applied: "
           f"{', '.join(f'{k}={v}' for k, v in result.settings_changed.items())}"
           if result.settings_changed else "") + ".\n"
        f"  writes:   PGPASSFILE={escape(str(result.pgpass))} psql '{result.dsn}'\n"
        + (f"  reads:    PGPASSFILE={escape(str(result.pgpass))} psql '{result.replicas_dsn}'\n"
           if result.replicas_dsn else "")
        + (f"  vip:      PGPASSFILE={escape(str(result.pgpass))} psql '{result.vip_dsn}'\n"
           if result.vip_dsn else "")
        + (f"  stats:    {result.stats_url} (user {haproxy.STATS_ACCOUNT.user})\n" if result.stats_url else "")
        + f"  secrets:  {escape(str(result.secrets_file))}",
        highlight=False,
    )


@main.command()
@file_option
@wide_option
@json_option
@reports_errors
def status(topology_file: Path, wide: bool, as_json: bool) -> None:
    """Members (role, state, timeline, lag, pending restart) and HAProxy routing."""
    ui.show(Lab.from_file(topology_file).status(), ui.status_view, as_json, wide)


@main.command()
@file_option
@click.option("--type", "kind", type=click.Choice(["full", "diff", "incr"]), default="full", show_default=True,
              help="full copies everything; diff what changed since the last full; incr since the last backup.")
@json_option
@reports_errors
def backup(topology_file: Path, kind: str, as_json: bool) -> None:
    """Back up the cluster to the repository (pgBackRest, from the primary): size, duration, WAL range."""
    lab = Lab.from_file(topology_file)
    with ui.Progress(f"taking a {kind} backup"):
        result = backups_module.take_backup(lab, typing.cast(backups_module.BackupType, kind))
    if as_json:
        ui.print_json(result)
    else:
        ui.console.print(f"[green]{escape(result.summary)}[/green]", highlight=False)


@main.command()
@file_option
@wide_option
@json_option
@reports_errors
def backups(topology_file: Path, wide: bool, as_json: bool) -> None:
    """The backups in the repository and the window a restore can reach (earliest and latest time)."""
    ui.show(backups_module.list_backups(Lab.from_file(topology_file)), ui.backups_table, as_json, wide)


@main.command("restore")
@file_option
@click.option("--to", "to", metavar="TIME",
              help="The moment to restore to, ISO 8601 ('2026-11-25 23:59:01.25+00:00'; no zone: local time).")
@click.option("--latest", is_flag=True, help="Restore to the latest point: everything archived up to now.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--timeout", type=Seconds(), default=180.0, show_default=True, help="Seconds to wait for each phase.")
@json_option
@reports_errors
def restore_command(topology_file: Path, to: str | None, latest: bool, yes: bool, timeout: float,
                    as_json: bool) -> None:
    """Restore the whole cluster in place to a moment (point-in-time recovery from the repository).

    \b
    Checks that the moment is in the restorable window (exit 2 otherwise, nothing touched), makes
    sure the WAL up to now is archived, stops every member, restores the primary from the
    repository to the moment (a new timeline), starts it as the leader, makes the replicas again
    from the repository and waits until the cluster is healthy; prints how long each phase took.
    Every write after the moment is gone afterwards.
    """
    if bool(to) == latest:
        raise InputError("give one of --to TIME or --latest (`pglab backups` shows the restorable window)")
    target = restore_target.Target(None if latest else restore_target.parse(to or ""))
    lab = Lab.from_file(topology_file)
    plan = restoring.plan(lab, target)
    if not yes:
        if not sys.stdin.isatty():
            raise InputError(f"{plan.describe()}. Confirm with --yes (no terminal here to ask on)")
        click.confirm(f"{plan.describe()}. Go on?", abort=True, err=True)
    with ui.Progress(f"restoring to {target.describe()}") as progress:
        result = restoring.restore(lab, target, timeout, on_event=progress, checked=plan)
    if as_json:
        ui.print_json(result)
    else:
        ui.console.print(ui.restore_table(result))
        ui.console.print(f"[green]{escape(result.summary)}[/green]", highlight=False)


@main.command()
@file_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (provider hosts asks, naming the servers).")
@click.option("--keep-packages", is_flag=True,
              help="Provider hosts: keep the packages pglab installed on the servers.")
@reports_errors
def destroy(topology_file: Path, yes: bool, keep_packages: bool) -> None:
    """Stop every process (or VM) of the lab and remove its directory.

    On existing servers (provider hosts) it removes the lab's units, its data and what pglab made
    there, and the packages pglab recorded installing (unless --keep-packages), after asking.
    """
    lab = Lab.from_file(topology_file)
    warning = lab.destroy_warning(keep_packages)
    if warning and not yes:
        if not sys.stdin.isatty():
            raise InputError(f"{warning}. Confirm with --yes (no terminal here to ask on)")
        click.confirm(f"{warning}. Go on?", abort=True, err=True)
    lab.destroy(keep_packages=keep_packages)
    ui.console.print(f"destroyed lab {lab.topology.name}: {lab.dir} removed", markup=False)


def _run_operation(title: str, operation: Callable[..., Any], as_json: bool, *args: Any, **kwargs: Any) -> None:
    """Run a waiting operation with progress, then print its outcome (or JSON)."""
    with ui.Progress(title) as progress:
        result = operation(*args, on_event=progress, **kwargs)
    if as_json:
        ui.print_json(result)
    else:
        ui.console.print(f"[green]{escape(result.summary)}[/green]", highlight=False)


timeout_option = click.option("--timeout", type=Seconds(), default=90.0, show_default=True,
                              help="Seconds to wait for the outcome before failing.")


@main.command()
@file_option
@click.option("--to", "to", metavar="NODE", help="The replica to promote (default: Patroni picks one).")
@timeout_option
@json_option
@reports_errors
def switchover(topology_file: Path, to: str | None, timeout: float, as_json: bool) -> None:
    """Planned switchover, like `patronictl switchover`: the leader hands over and rejoins as a replica.

    Waits until the new leader runs, the old one streams again and HAProxy routes writes (5000)
    to the new leader.
    """
    _run_operation("switchover", operations.switchover, as_json, Lab.from_file(topology_file), to, timeout)


@main.command()
@file_option
@click.option("--to", "to", metavar="NODE", required=True, help="The replica to promote.")
@timeout_option
@json_option
@reports_errors
def failover(topology_file: Path, to: str, timeout: float, as_json: bool) -> None:
    """Manual failover to a chosen replica, like `patronictl failover` (works without a healthy leader)."""
    _run_operation("failover", operations.failover, as_json, Lab.from_file(topology_file), to, timeout)


@main.command()
@file_option
@click.argument("node")
@click.option("--crash", "mode", flag_value="crash", help="kill -9 every process of the node.")
@click.option("--hang", "mode", flag_value="hang",
              help="Freeze every process of the node at once; `pglab start` thaws it.")
@click.option("--partition", "mode", flag_value="partition",
              help="Cut the node off the network to every other node (its processes keep running); "
                   "`pglab start` heals it.")
@timeout_option
@json_option
@reports_errors
def stop(topology_file: Path, node: str, mode: str | None, timeout: float, as_json: bool) -> None:
    """Take a whole node down, like `systemctl stop patroni` on a server, and wait for the outcome.

    Stopping the leader waits until a replica is promoted and writes through HAProxy resume.
    """
    lab = Lab.from_file(topology_file)
    _run_operation(f"stop {node}", operations.stop_node, as_json, lab, node, mode or "stop", timeout)


@main.command()
@file_option
@click.argument("node")
@click.option("--timeout", type=Seconds(), default=120.0, show_default=True,
              help="Seconds to wait for the node to rejoin.")
@json_option
@reports_errors
def start(topology_file: Path, node: str, timeout: float, as_json: bool) -> None:
    """Start (or thaw, or reconnect) a node and wait until it rejoins, a former leader as a streaming replica."""
    lab = Lab.from_file(topology_file)
    _run_operation(f"start {node}", operations.start_node, as_json, lab, node, timeout)


@main.command()
@file_option
@click.argument("node")
@click.option("--timeout", type=Seconds(), default=300.0, show_default=True,
              help="Seconds to wait for the replica to stream again.")
@json_option
@reports_errors
def rebuild(topology_file: Path, node: str, timeout: float, as_json: bool) -> None:
    """Make a replica's data anew from the leader and wait until it streams, like `patronictl reinit`.

    For a replica whose data directory was lost or damaged. On pg_auto_failover the node is dropped
    from the monitor and created again (it clones the primary).
    """
    lab = Lab.from_file(topology_file)
    _run_operation(f"rebuild {node}", operations.rebuild, as_json, lab, node, timeout)


@main.group()
def site() -> None:
    """A two-site lab's sites (`pglab init --sites 2`): promote the standby site, demote a site
    to follow the other. `pglab status` shows which is which."""


@site.command("promote")
@file_option
@click.argument("name", metavar="SITE")
@click.option("--force", is_flag=True,
              help="Promote even while the other site's leader still takes writes (fence it yourself).")
@timeout_option
@json_option
@reports_errors
def site_promote(topology_file: Path, name: str, force: bool, timeout: float, as_json: bool) -> None:
    """Make SITE's standby cluster the primary (Patroni's standby_cluster removed through its DCS).

    Refused (exit 2, nothing changed) while the other site's leader still takes writes, unless
    --force. Nothing to do when SITE is the primary already.
    """
    lab = Lab.from_file(topology_file)
    with ui.Progress(f"site promote {name}") as progress:
        result = operations.promote_site(lab, name, force, timeout, on_event=progress)
    if as_json:
        ui.print_json(result)
        return
    ui.console.print(f"[green]{escape(result.summary)}[/green]", highlight=False)
    if result.details.get("fence"):
        ui.console.print(f"[yellow]fence: {escape(result.details['fence'])}[/yellow]", highlight=False)


@site.command("demote")
@file_option
@click.argument("name", metavar="SITE")
@click.option("--follow", metavar="OTHER", required=True, help="The primary site SITE follows from now on.")
@click.option("--timeout", type=Seconds(), default=180.0, show_default=True,
              help="Seconds to wait for SITE to stream from OTHER.")
@json_option
@reports_errors
def site_demote(topology_file: Path, name: str, follow: str, timeout: float, as_json: bool) -> None:
    """Make SITE's cluster a standby cluster of OTHER (pg_rewind where its timeline allows it, else
    a new copy). Nothing to do when SITE follows OTHER already."""
    _run_operation(f"site demote {name}", operations.demote_site, as_json, Lab.from_file(topology_file), name,
                   follow, timeout)


@main.group()
def config() -> None:
    """Cluster-wide PostgreSQL configuration (Patroni's dynamic configuration, or ALTER SYSTEM on
    every pg_auto_failover node)."""


@config.command("set")
@file_option
@click.argument("assignments", nargs=-1, required=True, metavar="NAME=VALUE...")
@click.option("--timeout", type=Seconds(), default=60.0, show_default=True, help="Seconds to wait for Patroni.")
@json_option
@reports_errors
def config_set(topology_file: Path, assignments: tuple[str, ...], timeout: float, as_json: bool) -> None:
    """Set parameters on every member, like `patronictl edit-config`; says which need a restart.

    Then `pglab restart --rolling` applies those.

    Example: pglab config set max_connections=200 work_mem=8MB
    """
    parameters = operations.parse_assignments(list(assignments))
    _run_operation("config set", operations.set_config, as_json, Lab.from_file(topology_file), parameters,
                   timeout)


@config.command("show")
@file_option
@reports_errors
def config_show(topology_file: Path) -> None:
    """Print the stack's configuration (JSON): Patroni's dynamic configuration (like
    `patronictl show-config`), or the pg_auto_failover formation's settings and parameters."""
    ui.print_json(Lab.from_file(topology_file).stack().configuration())


@main.command()
@file_option
@click.option("--rolling/--in-place", default=True, show_default=True,
              help="Replicas one at a time then the leader by switchover; or every member restarted in place, "
                   "one at a time, the leader included (a brief write outage).")
@click.option("--timeout", type=Seconds(), default=240.0, show_default=True, help="Seconds to wait for each step.")
@json_option
@reports_errors
def restart(topology_file: Path, rolling: bool, timeout: float, as_json: bool) -> None:
    """Restart members pending a restart (every member if none is pending), until none is pending."""
    _run_operation("restart", operations.restart, as_json, Lab.from_file(topology_file), rolling, timeout)


crowd_options = [
    click.option("--workload", type=click.Choice(list(workloads.WORKLOADS)), default="insert", show_default=True,
                 help="insert: one row per write; bank: transfers between accounts with a fixed total; "
                      "append: per-key append-only lists."),
    click.option("--clients", type=click.IntRange(1, 64), default=1, show_default=True,
                 help="Writers, each on its own connection through the write endpoint."),
    click.option("--readers", type=click.IntRange(0, 16), default=0, show_default=True,
                 help="bank: readers summing the balances through the write and through the read endpoint "
                      "(each); insert, append: readers looking for each write on the read endpoint."),
    click.option("--load", "load_tps", type=click.FloatRange(0, 5000), default=0, show_default=True, metavar="TPS",
                 help="Background write load, transactions a second, so that replicas lag."),
]
drill_options = [
    file_option,
    click.option("--count", default=1, show_default=True, type=click.IntRange(1, 100),
                 help="Drills to run, one after another."),
    click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
                 help="Where the JSON lines (drills.jsonl) and PNG timelines go (default: .pglab/<name>/drills)."),
    timeout_option,
    json_option,
    wide_option,
    click.option("--via", type=click.Choice(["pooler", "direct", "vip"]), default=None,
                 help="The clients' path: through the pooler (HAProxy 5000 -> the leader's PgBouncer), "
                      "straight to PostgreSQL (5002, or the multi-host URI), or the virtual IP (its PgBouncer "
                      "port, PostgreSQL's without the pooler) [default: the write endpoint's]."),
]
DRILL_HELP = """
--clients writers run the --workload through the write endpoint (HAProxy 5000, or the
multi-host URI) while the fault happens, the cluster recovers and the fault is undone; then the
workload's state is read back from the new primary and checked: writes lost, two primaries
acknowledging at once, the bank's total, the appends' order. One JSON line and one PNG timeline
per drill go to --out. Exits 1 on any anomaly, or if the cluster did not recover.
"""


def _kind_option(option: Option) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A kind's own option on its subcommand."""
    kind: Any = option.type
    if option.type is bool:
        return click.option(option.flag or f"--{option.name.replace('_', '-')}", option.name, is_flag=True,
                            default=bool(option.default), help=option.help)
    if option.type is float and (option.low is not None or option.high is not None):
        kind = click.FloatRange(option.low, option.high)
    elif option.type is int and (option.low is not None or option.high is not None):
        kind = click.IntRange(None if option.low is None else int(option.low),
                              None if option.high is None else int(option.high))
    flag = option.flag or f"--{option.name.replace('_', '-')}"
    return click.option(flag, option.name, type=kind, default=option.default, metavar=option.metavar,
                        show_default=option.default is not None, help=option.help)


def _drill_command(kind: type[DrillKind]) -> click.Command:
    """`pglab drill KIND`: the shared options, the clients' options when the kind runs clients,
    the kind's own."""

    def command(topology_file: Path, count: int, out_dir: Path | None, timeout: float, as_json: bool, wide: bool,
                via: str | None = None, workload: str = "insert", clients: int = 1, readers: int = 0,
                load_tps: float = 0.0, **options: Any) -> None:
        _run_drills(kind, options, topology_file, count, out_dir, timeout, as_json, wide, workload,
                    CrowdSpec(clients, readers, load_tps), via)

    params: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        *drill_options, *(crowd_options if kind.takes_clients else []), *map(_kind_option, kind.options)]
    decorated: Callable[..., Any] = reports_errors(command)
    for param in reversed(params):
        decorated = param(decorated)
    return click.command(kind.name, short_help=kind.summary,
                         help=f"Drill: {kind.summary}.\n\n{DRILL_HELP if kind.takes_clients else ''}")(decorated)


class DrillKinds(click.Group):
    """One subcommand per registered drill kind, made when asked: a kind added to the registry is
    offered without editing the CLI."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(kinds.KINDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        kind = kinds.KINDS.get(cmd_name)
        return None if kind is None else _drill_command(kind)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                           list[str]]:
        if args and not args[0].startswith("-") and args[0] not in kinds.KINDS:
            ctx.fail(f"{args[0]!r} is not one of: {', '.join(kinds.KINDS)}")
        return super().resolve_command(ctx, args)


@main.group("drill", cls=DrillKinds)
def drill_group() -> None:
    """Rehearse a failure and measure what clients see: write unavailability, acknowledged writes
    lost, failed writes that committed anyway, the leader change.

    \b
    pglab drill switchover --count 3
    pglab drill crash --node pg2 --clients 16 --workload bank --readers 4
    pglab drill KIND --help      the kind's options
    """


def _run_drills(kind: type[DrillKind], options: dict[str, Any], topology_file: Path, count: int,
                out_dir: Path | None, timeout: float, as_json: bool, wide: bool, workload: str,
                spec: CrowdSpec, via: str | None = None) -> None:
    from pglab.drills import timeline

    lab = Lab.from_file(topology_file)
    frame.check(lab, kind(**options), workload, spec)  # exit 2 before the lab is touched
    out = out_dir or lab.layout.drills
    results = []
    for number in range(1, count + 1):
        with ui.Progress(f"drill {kind.name} {number}/{count}") as progress:
            result = frame.run(lab, kind(**options), number, timeout, on_event=progress,
                               log=lambda text: ui.err_console.print(text, highlight=False), workload=workload,
                               spec=spec, via=via)
        drill_result.write_json_line(result, out)
        png = timeline.write_png(result, out / drill_result.png_name(result))
        results.append(result)
        t = result.tally
        ui.err_console.print(
            f"drill {kind.name} #{number}: {result.old_leader} -> {result.new_leader}, writes unavailable "
            f"{t.unavailable:.2f} s, {t.failed} failed attempts, {len(t.lost)} acknowledged lost, "
            f"{len(t.failed_committed)} failed but committed, {result.stale_primary_errors} stale-primary errors "
            f"(via {result.via}); {png}"
            + f"\n  {result.measures.line()}\n  {result.measures.said_line()}"
            + (f"\n  problem: {result.problem}" if result.problem else "")
            + "".join(f"\n  anomaly ({a.check}): {a.what}" for a in result.anomalies[:10]), highlight=False)
    rows = drill_summary.summary(results)
    if as_json:
        ui.print_json({"out": str(out), "summary": rows, "drills": [r.as_json() for r in results]})
    else:
        ui.print_table(ui.drill_table(rows, wide), wide)
        ui.console.print(f"JSON lines: {out / 'drills.jsonl'}; timelines: {out}/*.png", highlight=False)
    if not all(r.ok for r in results):
        sys.exit(1)


@main.command("report")
@file_option
@click.option("--drills", "drills_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the drills' JSON lines and timelines are (default: .pglab/<name>/drills).")
@click.option("-o", "--output", type=FilePath(dir_okay=False, path_type=Path),
              help="The HTML file to write (default: .pglab/<name>/report.html).")
@reports_errors
def report_command(topology_file: Path, drills_dir: Path | None, output: Path | None) -> None:
    """Write one self-contained HTML page (plots inline, no network) from the lab's drills and its
    last `pglab verify` run: a summary per drill kind and setting, the checks and any anomaly with
    its evidence, the timelines, the verify results."""
    from pglab.drills import report

    lab = Lab.from_file(topology_file)
    out = output or lab.dir / "report.html"
    written = report.write(lab.topology.name, drills_dir or lab.layout.drills, lab.layout.last_verify, out)
    ui.console.print(f"report: {escape(str(written))}", highlight=False)


@main.group(name="certs", invoke_without_command=True)
@file_option
@wide_option
@json_option
@click.pass_context
@reports_errors
def certs_group(ctx: click.Context, topology_file: Path, wide: bool, as_json: bool) -> None:
    """The lab's CA and certificates: node, services, subject, names, expiry, and whether the
    services serve them now (a table, or --json).

    \b
    pglab certs rotate         new certificates for every node, no restart, under load
    pglab certs rotate --ca    a new CA too: trusted beside the old one, then the old one retired
    """
    if ctx.invoked_subcommand is not None:
        return
    from pglab.tls import report

    ui.show(report.rows(Lab.from_file(topology_file)), ui.certs_table, as_json, wide)


@certs_group.command(name="rotate")
@file_option
@click.option("--ca", "new_ca", is_flag=True,
              help="Also a new CA: every node trusts it beside the old one, gets a certificate of it, then the "
                   "old CA is retired.")
@timeout_option
@json_option
@reports_errors
def certs_rotate(topology_file: Path, new_ca: bool, timeout: float, as_json: bool) -> None:
    """Issue new certificates and make every service use them without a cluster restart
    (PostgreSQL, Patroni and HAProxy reload; etcd reads them for each new connection)."""
    from pglab.tls import rotation

    _run_operation("certs rotate", rotation.rotate, as_json, Lab.from_file(topology_file), new_ca, timeout)


@main.command(context_settings={"ignore_unknown_options": True})
@file_option
@click.argument("node", required=False)
@click.argument("psql_args", nargs=-1, type=click.UNPROCESSED)
@reports_errors
def psql(topology_file: Path, node: str | None, psql_args: tuple[str, ...]) -> None:
    """Open psql on the leader (through HAProxy or the multi-host URI), or on NODE directly;
    extra arguments go to psql.

    Example: pglab psql -- -c 'select pg_is_in_recovery()'
    """
    lab = Lab.from_file(topology_file)
    if node and node.startswith("-"):  # `pglab psql -- -c ...`: no node, only psql's arguments
        psql_args, node = (node, *psql_args), None
    if node:
        lab.node(node)
        dsn = lab.dsn(host=lab.address(node), port=lab.topology.ports.postgres)
    else:
        dsn = lab.endpoints()["write"]  # HAProxy's writes port, or the multi-host URI
    pgpass = lab.pgpass
    if not pgpass.exists():
        raise PglabError(f"lab {lab.topology.name} has not been created ({pgpass} is missing); run `pglab up`.")
    env = {**os.environ, "PGPASSFILE": str(pgpass), "PGCONNECT_TIMEOUT": "5"}
    binary = shutil.which("psql")
    if binary is None:
        raise PglabError(f"psql is not installed: install postgresql-client-{lab.topology.postgres.version}")
    os.execvpe(binary, [binary, dsn, *psql_args], env)


@main.command()
@file_option
@click.argument("node")
@click.option("--service", help="Only this service (patroni, etcd, haproxy).")
@click.option("-n", "--lines", type=click.IntRange(1, 100_000), default=50, show_default=True,
              help="How many lines per log.")
@reports_errors
def logs(topology_file: Path, node: str, service: str | None, lines: int) -> None:
    """Show the last lines of a node's service logs."""
    lab = Lab.from_file(topology_file)
    if service is not None and not re.fullmatch(r"[a-z][a-z0-9_-]{0,40}", service):
        raise InputError(f"{service!r} is not a service name; name one such as patroni, etcd or haproxy")
    print(lab.provider.logs(lab.node(node), service, lines))


@main.command()
@file_option
@click.option("--junit-xml", "junit_xml", type=FilePath(path_type=Path, dir_okay=False), metavar="PATH",
              help="Also write the results as JUnit XML (for CI).")
@click.option("-k", "keyword", metavar="EXPR",
              help="Only the checks matching this pytest -k expression, e.g. 'services or routing'.")
@click.option("--keep-going", is_flag=True, help="Run every selected check instead of stopping at the first failure.")
@wide_option
@json_option
@reports_errors
def verify(topology_file: Path, junit_xml: Path | None, keyword: str | None, keep_going: bool, wide: bool,
           as_json: bool) -> None:
    """Prove the lab works: run the shipped checks (pytest + testinfra) against it.

    \b
    In order: services, replication, routing, switchover, manual failover, node loss,
    a configuration change needing a restart, final health. Checks 4-7 change the lab
    (leader, max_connections) and put it back; exit code 0 only when every selected check passes.
    """
    from pglab import verify as verification

    if as_json:
        with contextlib.redirect_stdout(sys.stderr):  # pytest's own output must not spoil the JSON
            report = verification.run_verify(topology_file, junit_xml, keyword, keep_going)
        ui.print_json(verification.report_dict(report))
    else:
        report = verification.run_verify(topology_file, junit_xml, keyword, keep_going)
        ui.print_table(ui.verify_table(report.results, wide), wide)
        ran = len(report.results)
        if report.passed:
            ui.console.print(f"[bold green]all {ran} tests of {len(report.checks)} check(s) passed[/bold green] "
                             f"in {report.seconds:.1f} s"
                             + (f"; JUnit XML: {escape(str(junit_xml))}" if junit_xml else ""), highlight=False)
        else:
            what = (f"{len(report.failures)} of {ran} tests failed" if ran
                    else f"no check ran{f' (nothing matches -k {escape(repr(keyword))})' if keyword else ''}")
            ui.console.print(
                f"[bold red]{what}[/bold red] after {report.seconds:.1f} s. The lab was left as it is for "
                f"inspection: `pglab status -f {escape(str(topology_file))}`, "
                f"`pglab logs NODE -f {escape(str(topology_file))}`.",
                highlight=False,
            )
    if not report.passed:
        sys.exit(1)


@main.group(name="box")
def box_group() -> None:
    """The offline Debian 12 box for VMs (vagrant.box: pglab/debian12) and containers."""


BOX_FORMATS = click.Choice(["vagrant", "oci"])


@box_group.command(name="build")
@click.option("--force", is_flag=True, help="Rebuild even when the box is already added.")
@click.option("--format", "output", type=BOX_FORMATS, default="vagrant", show_default=True,
              help="vagrant: a vagrant-libvirt box for VMs; oci: a podman image for systemd containers.")
@reports_errors
def box_build(force: bool, output: str) -> None:
    """Build pglab/debian12 here (debootstrap, as root) and add it to Vagrant or podman; reused
    when present.

    It holds PostgreSQL 15, etcd, HAProxy, pg_auto_failover and Patroni's venv, so VMs and
    containers made from it need no internet. Both formats come from one recipe. A VM's kernel
    and initrd are kept in pglab's cache for libvirt to boot.
    """
    with ui.Progress("box build") as progress:
        if output == "oci":
            made = image.build(lambda text: progress(Step(text)), force=force)
        else:
            result = box.build(lambda text: progress(Step(text)), force=force)
    if output == "oci":
        done = f"built and imported in {made.seconds:.0f} s" if made.built else "already imported"
        ui.console.print(f"image {made.name}: {done}", highlight=False)
        return
    done = f"built and added in {result.seconds:.0f} s" if result.built else "already added"
    ui.console.print(f"box {result.name}: {done}; kernel {result.boot.kernel}", highlight=False)


@box_group.command(name="remove")
@click.option("--format", "output", type=BOX_FORMATS, default="vagrant", show_default=True,
              help="Which of the two to remove.")
@reports_errors
def box_remove(output: str) -> None:
    """Remove pglab/debian12 from Vagrant (and its kernel from pglab's cache) or from podman."""
    if output == "oci":
        image.remove(ui.console.print)
    else:
        box.remove(ui.console.print)


if __name__ == "__main__":
    main()
