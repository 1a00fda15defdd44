"""`pglab verify`: run the shipped check suite (:mod:`pglab.checks`) against a live lab, in-process,
and collect one result per check.

pytest runs with its own settings only (``-c /dev/null``, ``--rootdir`` and ``--confcutdir`` at
the checks), so neither the repository's pytest configuration nor the directory it is started
from changes what runs.
"""

from __future__ import annotations

import datetime
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pglab.checks import CHECKS_DIR
from pglab.errors import InputError
from pglab.lab import Lab
from pglab.stacks import STACKS

Outcome = str  # passed, failed, skipped, error


@dataclass
class CheckResult:
    check: str  # the check (file): services, replication, routing ...
    name: str  # the test, readable: "patroni rest api answers"
    node: str | None  # the node a per-node test ran for
    outcome: Outcome
    seconds: float
    message: str = ""  # the assertion's message (first line) when it did not pass


@dataclass
class VerifyReport:
    results: list[CheckResult]
    seconds: float
    exit_code: int
    junit_xml: Path | None = None

    @property
    def checks(self) -> list[str]:
        """The checks that ran, in order."""
        return list(dict.fromkeys(r.check for r in self.results))

    @property
    def passed(self) -> bool:
        """Every selected check passed (a skip says why and fails nothing) and at least one ran."""
        return (self.exit_code == 0 and any(r.outcome == "passed" for r in self.results)
                and not any(r.outcome in ("failed", "error") for r in self.results))

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.outcome in ("failed", "error")]


def _check_name(path: Path) -> str:
    """``test_01_services_pg_auto_failover.py`` -> ``services``: a stack's own file of a check."""
    name = re.sub(r"^test_\d+_", "", path.stem)
    for stack in STACKS:
        name = name.removesuffix(f"_{stack}")
    return name.replace("_", " ")


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        line = line.strip()
        if line:
            # "AssertionError: pg2 is not streaming" -> "pg2 is not streaming"; keep other exception names.
            line = re.sub(r"^AssertionError: ", "", line)
            return re.sub(r"^(?:[a-z_]+\.)+(?=[A-Z]\w*: )", "", line)  # pglab.errors.WaitTimeout:
    return ""


class _Collector:
    """A pytest plugin recording each test's outcome, duration and one-line message."""

    def __init__(self) -> None:
        self.results: dict[str, CheckResult] = {}
        self.order: list[str] = []

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        # Every collected item; those -k deselects never report, so `ran` leaves them out.
        for item in items:
            params = getattr(getattr(item, "callspec", None), "params", {})
            node = next((str(v) for k, v in params.items() if k.endswith("_node")), None)
            name = getattr(item, "originalname", item.name).removeprefix("test_").replace("_", " ")
            check = _check_name(item.path)
            self.results[item.nodeid] = CheckResult(check, name, node, "", 0.0)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        result = self.results.get(report.nodeid)
        if result is None:
            return
        if report.nodeid not in self.order:
            self.order.append(report.nodeid)
        result.seconds += report.duration
        if report.when == "call" or report.skipped or report.failed:
            if report.skipped:
                outcome = "skipped"
                longrepr = report.longrepr
                message = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
                message = message.removeprefix("Skipped: ")
            elif report.failed:
                outcome = "failed" if report.when == "call" else "error"
                crash = getattr(report.longrepr, "reprcrash", None)
                message = _first_line(crash.message if crash is not None else str(report.longrepr))
                if report.when == "teardown":
                    message = f"after the test: {message}"
            else:
                outcome, message = "passed", ""
            # A teardown error after a passed call still makes the result an error.
            if not (result.outcome in ("failed", "error") and outcome == "passed"):
                result.outcome, result.message = outcome, message

    def ran(self) -> list[CheckResult]:
        return [self.results[nodeid] for nodeid in self.order if self.results[nodeid].outcome]


def pytest_args(lab_file: Path, junit_xml: Path | None = None, keyword: str | None = None,
                keep_going: bool = False) -> list[str]:
    args = [
        str(CHECKS_DIR),
        "-c", "/dev/null",  # no ini file: the repository's pyproject.toml must not steer the run
        "--rootdir", str(CHECKS_DIR),
        "--confcutdir", str(CHECKS_DIR),
        "-p", "no:cacheprovider",
        "-p", "no:randomly",
        "-p", "no:xdist",
        "-o", "python_files=test_*.py",
        "-o", "python_functions=test_*",
        "-o", "junit_suite_name=pglab-verify",
        "-o", "junit_family=xunit2",
        "-o", "console_output_style=classic",
        "-q", "--tb=short", "--no-header",
        "--pglab-file", str(lab_file),
    ]
    if not keep_going:
        args.append("-x")
    if keyword:
        args += ["-k", keyword]
    if junit_xml:
        args += ["--junit-xml", str(junit_xml)]
    return args


def run_verify(lab_file: Path, junit_xml: Path | None = None, keyword: str | None = None,
               keep_going: bool = False) -> VerifyReport:
    """Run the checks against the lab of ``lab_file``; stop at the first failure unless
    ``keep_going``. The lab is left as the checks leave it (for inspection after a failure)."""
    lab_file = Path(lab_file).resolve()
    lab = Lab.from_file(lab_file)  # a bad file is the user's to fix: InputError, before any check
    lab.secrets()  # a lab never brought up: PglabError naming `pglab up`
    if junit_xml is not None:
        junit_xml = Path(junit_xml).resolve()
        junit_xml.parent.mkdir(parents=True, exist_ok=True)
    collector = _Collector()
    started = time.monotonic()
    exit_code = int(pytest.main(pytest_args(lab_file, junit_xml, keyword, keep_going), plugins=[collector]))
    if exit_code in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERNAL_ERROR):
        hint = f"; check the -k expression {keyword!r}" if keyword else ""
        raise InputError(f"the verify suite could not run (pytest exit code {exit_code}){hint}")
    results = collector.ran()
    report = VerifyReport(results, time.monotonic() - started, exit_code, junit_xml)
    _keep(lab, report)
    return report


def _keep(lab: Lab, report: VerifyReport) -> None:
    """The run, as `--json` prints it, in the lab's directory for `pglab report`."""
    if lab.dir.is_dir():
        record = {**report_dict(report), "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
        lab.layout.last_verify.write_text(json.dumps(record, indent=1) + "\n")


def report_dict(report: VerifyReport) -> dict[str, Any]:
    return {"passed": report.passed, "seconds": round(report.seconds, 1), "exit_code": report.exit_code,
            "junit_xml": str(report.junit_xml) if report.junit_xml else None,
            "results": [{"check": r.check, "name": r.name, "node": r.node, "outcome": r.outcome,
                         "seconds": round(r.seconds, 2), "message": r.message} for r in report.results]}
