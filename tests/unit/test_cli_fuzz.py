"""No command-line argument makes pglab print a traceback: every command parses, refuses with a
message and exit code 2 (or 1 when the lab is not there), never crashes.

The lab these commands name is written but never created, on the test loopback range, so nothing
here starts or signals a process.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pglab import operations
from pglab.cli import main
from pglab.errors import InputError
from tests.conftest import write_topology

FUZZ = settings(derandomize=True, max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
# Any text an argument could hold, odd characters and option-like words included.
words = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", "-", "--", "-f", "--help", "pg1", "pg-1", "dcs", "[/red]", "\x1b[31m", "a\x00b", "9" * 400]),
)


@pytest.fixture(scope="module")
def topology_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_topology(tmp_path_factory.mktemp("cli-fuzz"), name="fuzz")


def _invoke(args: list[str]) -> Result:
    return CliRunner().invoke(main, args, catch_exceptions=True)


def _clean(result: Result) -> None:
    """The command ended by itself: exit 0, 1 or 2, no exception escaped, no traceback printed."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"exception escaped: {result.exception!r}\n{result.output}") from result.exception
    assert result.exit_code in (0, 1, 2), result.output
    assert "Traceback" not in result.output


@FUZZ
@given(command=st.sampled_from(["stop", "start", "logs", "psql"]), node=words)
def test_any_node_name(topology_file: Path, command: str, node: str) -> None:
    _clean(_invoke([command, "-f", str(topology_file), "--", node]))


@FUZZ
@given(command=st.sampled_from(["switchover", "failover"]), to=words)
def test_any_to(topology_file: Path, command: str, to: str) -> None:
    _clean(_invoke([command, "-f", str(topology_file), "--to", to]))


@FUZZ
@given(assignments=st.lists(words, min_size=1, max_size=3))
def test_any_config_set_assignment(topology_file: Path, assignments: list[str]) -> None:
    _clean(_invoke(["config", "set", "-f", str(topology_file), "--", *assignments]))


@FUZZ
@given(command=st.sampled_from([["switchover"], ["stop", "pg1"], ["start", "pg1"], ["restart"],
                                ["config", "set", "work_mem=8MB"]]),
       timeout=st.one_of(words, st.floats().map(str), st.integers().map(str)))
def test_any_timeout(topology_file: Path, command: list[str], timeout: str) -> None:
    result = _invoke([*command, "-f", str(topology_file), "--timeout", timeout])
    _clean(result)


@FUZZ
@given(service=words, lines=st.one_of(words, st.integers().map(str)))
def test_any_logs_options(topology_file: Path, service: str, lines: str) -> None:
    _clean(_invoke(["logs", "-f", str(topology_file), "pg1", "--service", service, "-n", lines]))


@FUZZ
@given(name=words)
def test_any_init_name(tmp_path: Path, name: str) -> None:
    target = tmp_path / "init.yml"
    target.unlink(missing_ok=True)
    result = _invoke(["init", "-f", str(target), "--name", name])
    _clean(result)
    assert target.exists() == (result.exit_code == 0)  # refused means nothing written


@FUZZ
@given(path=words)
def test_any_file_option(path: str) -> None:
    _clean(_invoke(["status", "-f", path]))


@pytest.mark.parametrize("timeout", ["nan", "inf", "-inf", "-1", "0", "1e309", "86401", "ten"])
def test_absurd_timeouts_are_refused_before_anything_runs(topology_file: Path, timeout: str) -> None:
    result = _invoke(["switchover", "-f", str(topology_file), "--timeout", timeout])
    assert result.exit_code == 2 and "--timeout" in result.output, result.output


@pytest.mark.parametrize("assignment", ["=1", "a b=1", "x=\x00", "x=a\nb", "max_connections;drop=1", "é=1",
                                        "a" * 64 + "=1"])
def test_bad_assignments_are_refused(assignment: str) -> None:
    with pytest.raises(InputError):
        operations.parse_assignments([assignment])


def test_good_assignments_are_kept() -> None:
    assert operations.parse_assignments(["max_connections=200", "auto_explain.log_min_duration = 10ms", "x="]) == {
        "max_connections": "200", "auto_explain.log_min_duration": "10ms", "x": ""}


def test_markup_in_an_error_is_printed_as_written(tmp_path: Path) -> None:
    path = tmp_path / "[/red]lab.yml"
    result = _invoke(["status", "-f", str(path)])
    assert result.exit_code == 2 and "[/red]lab.yml" in result.output, result.output


@pytest.mark.parametrize("target", ["/nonexistent-dir/pglab.yml", "/proc/pglab.yml"])
def test_init_says_when_it_cannot_write(target: str) -> None:
    result = _invoke(["init", "-f", target])
    assert result.exit_code == 2 and "cannot be written" in result.output, result.output
