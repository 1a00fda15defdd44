"""Run a playbook with ansible-runner, stream its events, return what happened.

This module knows nothing about providers: it gets an inventory and a playbook, and reports
progress through a callback so the caller decides how (or whether) to show it.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner

from pglab import paths
from pglab.errors import PglabError

MITOGEN_SWITCH = "PGLAB_MITOGEN"


@dataclass
class TaskFailure:
    host: str
    task: str
    message: str


@dataclass(frozen=True)
class TaskChange:
    """A task that changed (or, in check mode, would change) something on a host: the packages
    it installs and the files it writes, where the module says."""

    host: str
    task: str
    packages: tuple[str, ...] = ()
    files: tuple[str, ...] = ()


@dataclass
class PlaybookResult:
    rc: int
    status: str
    changed: int = 0
    failures: list[TaskFailure] = field(default_factory=list)
    log: Path | None = None
    changes: list[TaskChange] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.rc == 0 and not self.failures


@dataclass(frozen=True)
class PlaybookEvent:
    """A simplified runner event: ``kind`` is play, task, ok, changed, failed, skipped."""

    kind: str
    name: str = ""
    host: str = ""


class PlaybookEvents:
    """Turns ansible-runner's raw events into :class:`PlaybookEvent`s.

    A play is reported only once it runs a task on a host of this lab: Ansible announces every
    play of site.yml, also those for another stack's hosts, and only then says that it matched
    no host (``playbook_on_no_hosts_matched``), so the announcement is held until a task starts.
    """

    def __init__(self, on_event: Callable[[PlaybookEvent], None]) -> None:
        self.on_event = on_event
        self.pending_play: str | None = None
        self.shown_play: str | None = None

    def __call__(self, event: dict[str, Any]) -> None:
        data = event.get("event_data") or {}
        kind = event.get("event", "")
        host = data.get("host", "")
        if kind == "playbook_on_play_start":
            self.pending_play = data.get("play", "")
            return
        if kind in ("playbook_on_no_hosts_matched", "playbook_on_no_hosts_remaining"):
            self.pending_play = None
            return
        if kind == "playbook_on_task_start" and self.pending_play is not None:
            # A play run in batches (serial) starts once per batch: one line is enough.
            if self.pending_play != self.shown_play:
                self.on_event(PlaybookEvent("play", self.pending_play))
            self.shown_play, self.pending_play = self.pending_play, None
        simple = {
            "playbook_on_task_start": PlaybookEvent("task", data.get("task", "")),
            "runner_on_ok": PlaybookEvent(
                "changed" if (data.get("res") or {}).get("changed") else "ok", data.get("task", ""), host
            ),
            "runner_on_failed": PlaybookEvent("failed", data.get("task", ""), host),
            "runner_on_skipped": PlaybookEvent("skipped", data.get("task", ""), host),
        }.get(kind)
        if simple is not None:
            self.on_event(simple)


def task_change(host: str, task: str, res: dict[str, Any]) -> TaskChange:
    """What a changed task's result says it did: apt's simulated or real installs ("Inst NAME"
    lines), the files named by its diffs, its destination or pglab_files' list."""
    out = str(res.get("stdout") or "")
    packages = tuple(dict.fromkeys(line.split()[1] for line in out.splitlines()
                                   if line.startswith("Inst ") and len(line.split()) > 1))
    diffs = res.get("diff") or []
    files = [str(d.get("after_header") or d.get("before_header") or "")
             for d in (diffs if isinstance(diffs, list) else [diffs]) if isinstance(d, dict)]
    files += [str(res[key]) for key in ("dest", "path") if isinstance(res.get(key), str)]
    # The pglab role's module (pglab_files) names the files it wrote in its directory.
    directory = ((res.get("invocation") or {}).get("module_args") or {}).get("directory")
    if isinstance(directory, str):
        files += [f"{directory.rstrip('/')}/{name}" for name in res.get("changed_files") or []]
    return TaskChange(host, task, packages, tuple(dict.fromkeys(f for f in files if f.startswith("/"))))


def _failure_message(res: dict[str, Any]) -> str:
    parts = [str(res.get("msg") or "").strip()]
    for key in ("stderr", "stdout", "module_stderr"):
        text = str(res.get(key) or "").strip()
        if text and text not in parts[0]:
            parts.append(text[-1500:])
    return "\n".join(p for p in parts if p) or "failed without a message"


def failure_text(what: str, result: PlaybookResult, notes: list[str] | None = None, tasks: int = 5) -> str:
    """What went wrong in a playbook run, for a person: ``what`` failed, each of the first failed
    tasks with its node and message (or the run's status when no task failed), the caller's
    ``notes`` (a failed node's recent logs), and where the full output is."""
    lines = [f"{what} failed."]
    lines += [f"Task {f.task!r} failed on node {f.host}: {f.message}" for f in result.failures[:tasks]]
    if not result.failures:
        lines.append(f"ansible-playbook ended with status {result.status} (rc {result.rc}).")
    lines += notes or []
    if result.log:
        lines.append(f"Full Ansible output: {result.log}")
    return "\n".join(lines)


def mitogen_envvars() -> dict[str, str]:
    """Ansible's settings for Mitogen when ``PGLAB_MITOGEN=1`` asks for it (off by default: the
    README says why), else none."""
    if os.environ.get(MITOGEN_SWITCH, "").lower() not in ("1", "true", "yes"):
        return {}
    try:
        import ansible_mitogen  # noqa: F401
    except ImportError:
        raise PglabError(f"{MITOGEN_SWITCH}=1 asks for Mitogen for Ansible, which is not installed in pglab's "
                         f"environment: install it (`pip install mitogen`) or unset {MITOGEN_SWITCH}.") from None
    return {"ANSIBLE_STRATEGY_PLUGINS": str(Path(__file__).resolve().parent / "mitogen")}


def run_playbook(
    playbook: Path,
    inventory: Path,
    work_dir: Path,
    on_event: Callable[[PlaybookEvent], None] | None = None,
    extra_vars: dict[str, Any] | None = None,
    check: bool = False,
) -> PlaybookResult:
    """Run ``playbook`` against ``inventory``; artifacts go under ``work_dir``. ``check``: Ansible's
    check mode with diffs (``--check --diff``): what would change, nothing changed."""
    work_dir.mkdir(parents=True, exist_ok=True)
    failures: list[TaskFailure] = []
    changes: list[TaskChange] = []
    events = PlaybookEvents(on_event) if on_event is not None else None

    def handle(event: dict[str, Any]) -> bool:
        data = event.get("event_data") or {}
        kind = event.get("event", "")
        if (kind == "runner_on_failed" and not data.get("ignore_errors")) or kind == "runner_on_unreachable":
            failures.append(TaskFailure(data.get("host", ""), data.get("task", ""),
                                        _failure_message(data.get("res") or {})))
        if kind == "runner_on_ok" and (data.get("res") or {}).get("changed"):
            changes.append(task_change(data.get("host", ""), data.get("task", ""), data.get("res") or {}))
        if events is not None:
            events(event)
        return True

    bin_dir = str(Path(sys.executable).parent)
    envvars = {
        "ANSIBLE_ROLES_PATH": str(paths.roles_dir()),
        # The pglab role's module (pglab_files), which every role uses to write its configuration.
        "ANSIBLE_LIBRARY": str(paths.roles_dir() / "pglab" / "library"),
        "ANSIBLE_PIPELINING": "True",
        # SSH (VMs, servers): one connection per host kept for the whole run, no compression
        # (a slow guest spends more on it than the small transfers save).
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=600s",
        "ANSIBLE_FORKS": "10",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(work_dir / "tmp"),
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_COLLECTIONS_ON_ANSIBLE_VERSION_MISMATCH": "ignore",
        # Runner starts ansible-playbook by name: make sure it is this environment's.
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        **mitogen_envvars(),
    }
    # ansible-runner takes SIGINT and SIGTERM to cancel the playbook and never gives them back:
    # once it returns, Ctrl-C must stop pglab again.
    in_main_thread = threading.current_thread() is threading.main_thread()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)} if in_main_thread else {}
    try:
        runner = ansible_runner.run(
            private_data_dir=str(work_dir),
            playbook=str(playbook),
            inventory=str(inventory),
            envvars=envvars,
            extravars=extra_vars or {},
            event_handler=handle,
            quiet=True,
            rotate_artifacts=3,
            # Runner would keep a cmdline in env/cmdline, and every later run of the lab would read
            # it there and run in check mode too: none of a check run's options go to a file.
            **({"cmdline": "--check --diff", "suppress_env_files": True} if check else {}),
        )
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    if runner.status == "canceled" and in_main_thread:
        raise KeyboardInterrupt  # only a signal cancels it: the user's Ctrl-C (or a TERM) stops pglab
    changed = 0
    stats = runner.stats or {}
    for host_counts in (stats.get("changed") or {}).values():
        changed += host_counts
    log = Path(runner.config.artifact_dir) / "stdout" if runner.config.artifact_dir else None
    if not failures and runner.rc != 0 and log is not None and log.exists():
        # Errors outside any task (syntax, a missing role) only show in the output.
        errors = [line for line in log.read_text(errors="replace").splitlines() if "ERROR" in line]
        if errors:
            failures.append(TaskFailure("", "(playbook)", "\n".join(errors[-5:])))
    return PlaybookResult(runner.rc, runner.status, changed, failures, log, changes)
