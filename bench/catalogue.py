"""The fault catalogue: every fault kind on every configuration, and the docs' "What happens when…"
table written from what it measured.

For each configuration (Patroni asynchronous, with ``synchronous_mode``, with ``failsafe_mode``;
pg_auto_failover) one lab of its own is brought up and reused by its faults, one
``pglab drill KIND --json`` after another; between two, the lab is brought back to healthy
(``pglab up`` when the drill left it unhealthy, destroyed and made again when even that fails), so
one bad cell spoils none of the others. Each finished cell is appended to ``--results`` at once;
``--resume`` skips the cells already there. ``--write-docs`` writes the table between its markers
in docs/drills.md.

    .venv/bin/python bench/catalogue.py --write-docs                      # the whole catalogue
    .venv/bin/python bench/catalogue.py --configs patroni --kinds crash,postgres-kill --loopback 127.0.60.0/24
    .venv/bin/python bench/catalogue.py --resume --write-docs             # go on where it stopped
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import _catalogue_results as results
import psycopg
from _catalogue_cells import render
from _catalogue_plan import CONFIGS, FAULTS, Cell, Config, plan, remaining
from _catalogue_table import block, replace_between_markers
from _common import BenchFailure, TimeLimit, log, time_limit, write_topology
from drills import apply_settings

from pglab.lab import Lab, PglabError, Step
from pglab.stacks.base import StackError

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = REPO / "build" / "catalogue.jsonl"
DEFAULT_PAGE = REPO / "docs" / "drills.md"
DEFAULT_WORKDIR = Path("/tmp/pglab-catalogue")  # short: the labs' sockets live under it
UP_LIMIT = 300.0  # seconds for a lab to come up
HEALTHY_WAIT = 60.0  # seconds a drill's lab may take to look healthy again before `up` is tried
REPAIR_HEALTH_WAIT = 90.0  # seconds an `up` on a drill's broken lab may wait for health before it is made again
CELL_TIMEOUT = 900.0  # seconds one drill may take before it is interrupted
STOP_WAIT = 180.0  # seconds an interrupted drill has to undo its fault
FAILED = (PglabError, StackError, OSError, psycopg.Error)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", help=f"comma-separated, of {', '.join(c.name for c in CONFIGS)} (default all)")
    parser.add_argument("--kinds", help=f"comma-separated, of {', '.join(f.kind for f in FAULTS)} (default all)")
    parser.add_argument("--count", type=int, default=1, help="drills per cell (default 1)")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS,
                        help=f"the JSON lines file, one line per finished cell (default {DEFAULT_RESULTS})")
    parser.add_argument("--resume", action="store_true", help="skip the cells already in --results")
    parser.add_argument("--write-docs", nargs="?", type=Path, const=DEFAULT_PAGE, metavar="PAGE",
                        help=f"write the table between the page's markers (default {DEFAULT_PAGE})")
    parser.add_argument("--loopback", default="127.0.32.0/24", help="loopback range (default 127.0.32.0/24)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                        help=f"where the labs' topology files and directories go (default {DEFAULT_WORKDIR})")
    parser.add_argument("--cell-timeout", type=float, default=CELL_TIMEOUT,
                        help=f"seconds before a drill is interrupted (default {CELL_TIMEOUT:.0f})")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    if not args.loopback.startswith("127."):
        parser.error("--loopback must be a 127.x.y.z range: the benchmark only uses loopback addresses")
    try:
        args.cells = plan(args.configs, args.kinds, args.count)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def pglab_command() -> str:
    beside = Path(sys.executable).with_name("pglab")
    found = str(beside) if beside.exists() else shutil.which("pglab")
    if found is None:
        raise BenchFailure("no pglab command beside this Python nor on PATH: install the project (pip install -e .)")
    return found


def lab_name(config: Config) -> str:
    return "cat-" + config.name.replace("_", "-")


def lab_file(workdir: Path, config: Config) -> Path:
    return workdir / config.name / "pglab.yml"


def prepare_lab(workdir: Path, config: Config, loopback: str) -> Lab:
    """The configuration's topology file, a leftover of a run cut short destroyed first."""
    path = lab_file(workdir, config)
    if path.exists():
        log(f"{config.name}: destroying a lab left by an earlier run")
        try:
            Lab.from_file(path).destroy()
        except FAILED as exc:
            log(f"{config.name}: could not destroy the leftover: {exc}")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_topology(path.parent, lab_name(config), loopback, config.stack)
    apply_settings(path, [f"{key}={value}" for key, value in config.settings])
    return Lab.from_file(path)


def show_steps(event: Any) -> None:
    """The stages of an `up` (not every task), so a long one shows where it is."""
    if isinstance(event, Step):
        log(f"    {event.name}")


def bring_up(lab: Lab, health_timeout: float = 180.0) -> float:
    started = time.monotonic()
    # ansible-runner takes SIGINT and SIGTERM for itself and never gives them back: without this,
    # neither Ctrl-C nor a kill would stop the catalogue once a lab was up.
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        with time_limit(UP_LIMIT):
            lab.up(show_steps, timeout=health_timeout)
    except TimeLimit:
        raise BenchFailure(f"lab {lab.topology.name} not healthy after {UP_LIMIT:.0f} s") from None
    except FAILED as exc:
        raise BenchFailure(f"`up` of {lab.topology.name} failed: {exc}") from None
    finally:
        stopped = any(_asked_to_stop(signal.getsignal(number)) for number in handlers)
        for number, handler in handlers.items():
            signal.signal(number, handler)
        if stopped:
            raise KeyboardInterrupt  # what ansible-runner took for a cancel of its playbook
    return time.monotonic() - started


def _asked_to_stop(handler: Any) -> bool:
    """Whether ansible-runner's handler (a closure over the event it sets) caught a signal."""
    cells = getattr(handler, "__closure__", None) or ()
    return any(isinstance(c.cell_contents, threading.Event) and c.cell_contents.is_set() for c in cells)


def bring_back(lab: Lab) -> str:
    """Make the lab healthy for the next drill: what that took (healthy, up, recreated)."""
    try:
        lab.wait_healthy(HEALTHY_WAIT)
        return "healthy"
    except FAILED as exc:
        log(f"  not healthy after the drill ({str(exc).splitlines()[0]}): pglab up")
    try:
        bring_up(lab, REPAIR_HEALTH_WAIT)
        return "up"
    except BenchFailure as exc:
        log(f"  {exc}: destroying and making the lab again")
    try:
        lab.destroy()
    except FAILED as exc:
        log(f"  destroy failed: {exc}")
    bring_up(lab)  # a BenchFailure here abandons the configuration
    return "recreated"


def run_drill(command: list[str], timeout: float) -> tuple[int | None, str, list[str], bool]:
    """Run one `pglab drill` (its progress shown as it comes): exit code, stdout, stderr's lines,
    whether it was interrupted for taking too long. Interrupted (Ctrl-C, a timeout), the drill
    gets a SIGINT and time to undo its fault."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "COLUMNS": "200"},  # its progress lines unwrapped
                               start_new_session=True)  # our Ctrl-C reaches it only through us
    out: list[str] = []
    said: list[str] = []

    def follow() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            said.append(line.rstrip("\n"))
            log("    " + said[-1])

    def collect() -> None:
        assert process.stdout is not None
        out.append(process.stdout.read())

    readers = [threading.Thread(target=follow, daemon=True), threading.Thread(target=collect, daemon=True)]
    for reader in readers:
        reader.start()
    timed_out = False
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _interrupt(process)
    except BaseException:
        _interrupt(process)
        raise
    for reader in readers:
        reader.join(timeout=10)
    return process.returncode, "".join(out), said, timed_out


def _interrupt(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=STOP_WAIT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_cell(cell: Cell, path: Path, out: Path, timeout: float) -> dict[str, Any]:
    """One drill of the cell: its record for the results file (without its aftermath)."""
    command = [pglab_command(), "drill", cell.fault.kind, "-f", str(path), "--json", "--count", "1",
               "--out", str(out), *cell.fault.options]
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    began = time.monotonic()
    code, stdout, said, timed_out = run_drill(command, timeout)
    drill = None
    with contextlib.suppress(ValueError, KeyError, IndexError, TypeError):  # no JSON: the drill did not run
        drill = json.loads(stdout)["drills"][0]
    errors = [line for line in said if line.startswith("error:")]
    message = None if drill is not None else (errors[-1] if errors else (said[-1] if said else "no output"))
    return {"type": "cell", "config": cell.config.name, "kind": cell.fault.kind, "run": cell.run,
            "command": " ".join(["pglab drill", cell.fault.label]), "started": started,
            "seconds": round(time.monotonic() - began, 1), "exit": code, "timed_out": timed_out,
            "message": message, "drill": drill}


def run_config(config: Config, cells: list[Cell], args: argparse.Namespace, progress: dict[str, Any]) -> None:
    """Every cell of one configuration on one lab, always destroyed at the end."""
    try:
        lab = prepare_lab(args.workdir, config, args.loopback)
    except FAILED as exc:
        log(f"{config.name}: FAILED, no lab (its cells are left for --resume): {exc}")
        return
    out = args.results.parent / f"{args.results.stem}-drills" / config.name
    try:
        log(f"{config.name}: lab {lab.topology.name} on {args.loopback} up ...")
        log(f"{config.name}: healthy after {bring_up(lab):.0f} s")
        for cell in cells:
            log(f"{config.name} / {cell.fault.label} #{cell.run} ...")
            record = run_cell(cell, lab.topology_file, out, args.cell_timeout)
            record["aftermath"] = bring_back(lab)
            results.append(args.results, record)
            progress["done"] += 1
            log(f"{config.name} / {cell.fault.label} #{cell.run}: exit {record['exit']} in {record['seconds']:.0f} s: "
                f"{render([record])}  [{progress['done']}/{progress['todo']}, "
                f"{(time.monotonic() - progress['began']) / 60:.1f} min]")
    except BenchFailure as exc:
        log(f"{config.name}: FAILED, its remaining cells are left for --resume: {exc}")
    finally:
        log(f"{config.name}: destroy")
        try:
            lab.destroy()
        except FAILED as exc:
            log(f"{config.name}: destroy failed: {exc}")


def _terminate(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt  # so that the drill undoes its fault and the lab is destroyed


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    records = results.read(args.results)
    measured = results.done(records)
    if measured and not args.resume:
        log(f"{args.results} already holds {len(measured)} cells: pass --resume to go on, or another --results")
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    todo = remaining(args.cells, measured)
    log(f"catalogue: {len(todo)} drills to run, {len(args.cells) - len(todo)} already in {args.results}")
    sitting: dict[str, Any] = {"type": "sitting", "started": datetime.datetime.now(datetime.UTC).isoformat(
        timespec="seconds"), "ended": None, "seconds": None, "load_start": results.load(), "load_end": None,
        "machine": results.machine()}
    progress = {"done": 0, "todo": len(todo), "began": time.monotonic()}
    if todo:
        results.append(args.results, sitting)
    interrupted = False
    try:
        for config, cells in itertools.groupby(todo, key=lambda c: c.config):
            run_config(config, list(cells), args, progress)
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: the cells measured so far are in the results file (--resume goes on)")
    finally:
        elapsed = time.monotonic() - progress["began"]
        if todo:
            results.append(args.results, {**sitting, "ended": datetime.datetime.now(datetime.UTC).isoformat(
                timespec="seconds"), "seconds": round(elapsed, 1), "load_end": results.load()})
    records = results.read(args.results)
    text = block(records, results.sittings(records), CONFIGS, FAULTS)
    print(text)
    print(f"\ncatalogue: {progress['done']} drills in {elapsed / 60:.1f} min ({elapsed:.0f} s); "
          f"load average {sitting['load_start']} at the start, {results.load()} at the end")
    if args.write_docs is not None and not interrupted:
        page = args.write_docs
        page.write_text(replace_between_markers(page.read_text(), text))
        log(f"wrote the table into {page}")
    return 1 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
