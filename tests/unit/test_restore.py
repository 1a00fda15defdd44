"""`pglab restore` and `pglab drill restore` without a cluster: the target's parsing and its
window, pgBackRest's options, each stack's restore steps (forget, register again), the drill's
choice of a target and its judging (lost, extra), and the CLI's refusals (exit 2, nothing touched). A real restore is in
tests/integration/test_restore.py."""

from __future__ import annotations

import datetime
import shlex
from pathlib import Path

import jinja2
import pytest
from click.testing import CliRunner

from pglab import paths, stacks
from pglab.backups import restore_target
from pglab.backups.restore_target import Target
from pglab.cli import main
from pglab.drills.kinds import restore as restore_drill
from pglab.drills.probe import Attempt, tally
from pglab.drills.result import DrillResult
from pglab.errors import InputError
from pglab.lab import Lab
from pglab.stacks.base import StackSpec
from tests.conftest import write_topology

UTC = datetime.UTC
EARLIEST = datetime.datetime(2026, 11, 25, 22, 0, 0, tzinfo=UTC)
NOW = datetime.datetime(2026, 11, 25, 23, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("text, expected", [
    ("2026-11-25 22:30:01.250+00:00", datetime.datetime(2026, 11, 25, 22, 30, 1, 250000, tzinfo=UTC)),
    ("2026-11-25T22:30:01Z", datetime.datetime(2026, 11, 25, 22, 30, 1, tzinfo=UTC)),
    ("2026-11-25 23:30:01+01:00", datetime.datetime(2026, 11, 25, 22, 30, 1, tzinfo=UTC)),
])
def test_a_target_is_read_as_iso_8601_with_its_zone(text: str, expected: datetime.datetime) -> None:
    assert restore_target.parse(text) == expected


def test_a_target_without_a_zone_is_local_time() -> None:
    moment = restore_target.parse("2026-11-25 22:30:01")
    assert moment.tzinfo is not None and moment.replace(tzinfo=None) == datetime.datetime(2026, 11, 25, 22, 30, 1)


@pytest.mark.parametrize("text", ["yesterday", "", "2026-13-01 00:00", "12:00:00x"])
def test_a_target_that_is_no_time_is_refused_with_the_form(text: str) -> None:
    with pytest.raises(InputError, match=r"is not a time; write it as ISO 8601.*--latest"):
        restore_target.parse(text)


def test_a_target_inside_the_window_passes() -> None:
    restore_target.check_window(Target(datetime.datetime(2026, 11, 25, 22, 59, 59, tzinfo=UTC)), EARLIEST, NOW)
    restore_target.check_window(Target(), EARLIEST, NOW)  # --latest


@pytest.mark.parametrize("moment, words", [
    (datetime.datetime(2026, 11, 25, 21, 59, 59, tzinfo=UTC), "before the end of the oldest backup"),
    (EARLIEST, "before the end of the oldest backup"),
    (datetime.datetime(2026, 11, 25, 23, 0, 1, tzinfo=UTC), "in the future"),
])
def test_a_target_outside_the_window_is_refused_naming_the_window(moment: datetime.datetime, words: str) -> None:
    with pytest.raises(InputError, match=words) as caught:
        restore_target.check_window(Target(moment), EARLIEST, NOW)
    assert "restorable window is 2026-11-25 22:00:00.000000+00 .. now (2026-11-25 23:00:00.000000+00)" in str(
        caught.value)
    assert "nothing was changed" in str(caught.value)


def test_no_backup_means_nothing_to_restore() -> None:
    with pytest.raises(InputError, match=r"holds no backup yet.*pglab backup"):
        restore_target.check_window(Target(), None, NOW)


def test_pgbackrest_options_stop_at_the_moment_and_promote() -> None:
    moment = datetime.datetime(2026, 11, 25, 22, 30, 1, 250001, tzinfo=UTC)
    assert Target(moment).pgbackrest_options() == [
        "--type=time", "--target=2026-11-25 22:30:01.250001+00", "--target-action=promote"]
    assert Target().pgbackrest_options() == ["--type=default"]


ROOTS = {"pg1": "/run/pg1", "pg2": "/run/pg2", "pg3": "/run/pg3"}


def test_patroni_forgets_its_cluster_with_patronictl_remove_answering_its_questions(tmp_path: Path) -> None:
    lab = Lab.from_file(write_topology(tmp_path, name="rtest"))
    steps = stacks.spec("patroni").restore_steps(lab.topology, ROOTS, True, "pg2")
    assert steps is not None
    [(node, argv)] = steps.forget
    assert node == "pg2" and argv[:2] == ("sh", "-c")
    assert "patronictl -c /run/pg2/etc/patroni/patroni.yml remove rtest" in argv[2]
    assert "'rtest\nYes I am aware\npg2\n'" in argv[2]
    # Patroni adopts the restored leader and makes the replicas itself, all at once.
    assert steps.rejoin == {} and steps.replicas_at_once


def test_pg_auto_failover_drops_every_node_replicas_first_keeping_their_data(tmp_path: Path) -> None:
    lab = Lab.from_file(write_topology(tmp_path, name="ftest", stack="pg_auto_failover"))
    steps = stacks.spec("pg_auto_failover").restore_steps(lab.topology, ROOTS, True, "pg2")
    assert steps is not None
    # The leader last: while a standby is still registered, removing the primary would start a failover.
    assert [node for node, _ in steps.forget] == ["pg1", "pg3", "pg2"]
    _, argv = steps.forget[0]
    assert argv == ("env", "HOME=/run/pg1/var/lib/postgresql", "PGPASSFILE=/run/pg1/var/lib/postgresql/.pgpass",
                    "/usr/bin/pg_autoctl", "drop", "node", "--force",
                    "--pgdata=/run/pg1/var/lib/postgresql/15/main")
    assert "--destroy" not in argv  # the keeper's configuration stays for the registration again


def test_pg_auto_failover_registers_the_leader_first_then_one_replica_at_a_time(tmp_path: Path) -> None:
    lab = Lab.from_file(write_topology(tmp_path, name="ftest", stack="pg_auto_failover"))
    steps = stacks.spec("pg_auto_failover").restore_steps(lab.topology, ROOTS, False, "pg2")
    assert steps is not None and not steps.replicas_at_once
    assert list(steps.rejoin) == ["pg2", "pg1", "pg3"]
    # The role's own registration command, written where the role's defaults say.
    assert steps.rejoin["pg1"] == ("/run/pg1/var/lib/postgresql/pglab-register",)
    defaults = (paths.roles_dir() / "pg_auto_failover" / "defaults" / "main.yml").read_text()
    assert 'pg_auto_failover_register_script: "{{ pg_auto_failover_home }}/pglab-register"' in defaults
    assert "pg_auto_failover_binary: /usr/bin/pg_autoctl" in defaults


def test_the_registration_script_runs_pg_autoctl_create_with_the_node_environment(tmp_path: Path) -> None:
    template = (paths.roles_dir() / "pg_auto_failover" / "templates" / "register.sh.j2").read_text()
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["quote"] = shlex.quote  # Ansible's quote filter
    rendered = env.from_string(template).render(
        pg_auto_failover_environment={"HOME": "/run/pg1/var/lib/postgresql", "PGHOST": "/run/pg1/run/postgresql"},
        pg_auto_failover_create_argv=["/usr/bin/pg_autoctl", "create", "postgres",
                                      "--monitor=postgres://autoctl_node@m:5431/pg_auto_failover?sslmode=a&b=c"],
        pg_auto_failover_ssl_options=["--no-ssl"])
    assert rendered.startswith("#!/bin/sh\n")
    assert "export HOME=/run/pg1/var/lib/postgresql\n" in rendered
    monitor = "'--monitor=postgres://autoctl_node@m:5431/pg_auto_failover?sslmode=a&b=c'"
    assert rendered.rstrip().endswith(f"exec /usr/bin/pg_autoctl create postgres {monitor} --no-ssl")


def test_a_stack_without_restore_steps_is_refused_before_anything_is_touched(tmp_path: Path) -> None:
    lab = Lab.from_file(write_topology(tmp_path, name="ftest", stack="pg_auto_failover"))
    assert StackSpec.restore_steps(stacks.spec("pg_auto_failover"), lab.topology, ROOTS, True, "pg1") is None


def _attempt(id_: int, start: float, ok: bool = True) -> Attempt:
    return Attempt(id_, start, start + 0.004, ok)


def test_the_target_goes_between_the_last_two_consecutive_acknowledged_writes() -> None:
    attempts = [_attempt(1, 0.0), _attempt(2, 0.01), _attempt(3, 0.02, ok=False), _attempt(4, 0.03),
                _attempt(5, 0.04, ok=False)]
    assert restore_drill.pick_pair(attempts) == (attempts[0], attempts[1])
    assert restore_drill.pick_pair(attempts[:1]) is None


def test_judging_counts_lost_writes_before_the_target_and_extra_ones_after() -> None:
    attempts = [_attempt(i, i / 100, ok=i != 3) for i in range(1, 9)]
    # A = 4, B = 5: 1, 2, 4 acknowledged before (3 failed: either way is right); 5..8 must be gone.
    assert restore_drill.judge(attempts, {1, 2, 4}, 4, 5) == ([], [])
    assert restore_drill.judge(attempts, {1, 2, 3, 4}, 4, 5) == ([], [])
    assert restore_drill.judge(attempts, {1, 4, 6}, 4, 5) == ([2], [6])  # one lost, one extra
    assert restore_drill.judge(attempts, {1, 2}, 4, 5) == ([4], [])  # stopped short of the target


def test_a_restore_drill_with_extra_writes_fails_and_says_so_in_its_json_line() -> None:
    figures = restore_drill.RestoreFigures("2026-11-25 22:30:01.250000+00", 4, 5, [], [6], 21.5,
                                           {"stop": 1.0}, 3)
    result = DrillResult("restore", 1, "2026-11-25T22:30:00+00:00", None, "pg1", "pg1", True,
                         tally([], set(), 0.0), part=figures)
    line = result.as_json()
    assert line["lost"] == 0 and line["extra"] == 1 and line["extra_ids"] == [6] and line["restore_s"] == 21.5
    assert not result.ok
    result.part = restore_drill.RestoreFigures(figures.target, 4, 5, [], [], 21.5, {}, 3)
    assert result.ok


@pytest.mark.parametrize("args, words", [
    ([], "give one of --to TIME or --latest"),
    (["--latest", "--to", "2026-11-25 22:00:00"], "give one of --to TIME or --latest"),
    (["--to", "soon"], "is not a time"),
])
def test_restore_refuses_a_missing_or_bad_target_with_exit_2(tmp_path: Path, args: list[str], words: str) -> None:
    path = write_topology(tmp_path, name="ctest")
    result = CliRunner().invoke(main, ["restore", *args, "-f", str(path)])
    assert result.exit_code == 2 and words in result.output
    assert not (tmp_path / ".pglab").exists()  # nothing created


def test_restore_refuses_a_lab_without_backups(tmp_path: Path) -> None:
    path = write_topology(tmp_path, name="nbtest")
    path.write_text(path.read_text().replace("  enabled: true", "  enabled: false"))
    result = CliRunner().invoke(main, ["restore", "--latest", "--yes", "-f", str(path)])
    assert result.exit_code == 2 and "no backups to restore from" in result.output


@pytest.mark.parametrize("option", [["--clients", "2"], ["--workload", "bank"], ["--node", "pg1"]])
def test_drill_restore_refuses_options_it_cannot_judge(tmp_path: Path, option: list[str]) -> None:
    path = write_topology(tmp_path, name="dtest")
    result = CliRunner().invoke(main, ["drill", "restore", *option, "-f", str(path)])
    assert result.exit_code == 2, result.output


def test_an_interrupted_restore_saves_what_it_needs_to_go_on() -> None:
    """After the first stop no primary can archive or tell the time: the plan saved then (with the
    phases that must not run twice) is what `pglab restore` run again goes on with, aimed at the
    target it is given now."""
    from pglab.backups.restore import Plan

    first = Plan(Target(NOW - datetime.timedelta(minutes=5)), EARLIEST, NOW, "pg2", ["pg1", "pg3"], 4, ["x"])
    again = Plan.resuming(first.to_json(["stop", "forget"]), Target(), [])
    assert again.resumed and again.done == ("stop", "forget")
    assert (again.earliest, again.now, again.leader, again.replicas, again.timeline) == (EARLIEST, NOW, "pg2",
                                                                                         ["pg1", "pg3"], 4)
    assert again.target.latest and again.describe().startswith("go on with the restore")
