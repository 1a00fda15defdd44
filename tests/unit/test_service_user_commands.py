"""Commands run on a node as the service user: one check and one error format for every caller,
pgBackRest's command line built in one place, and one text for a failed playbook."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pglab import ansible
from pglab.backups import backup
from pglab.components import pgbackrest
from pglab.errors import PglabError
from pglab.lab import Lab
from pglab.providers.base import FAILURE_DETAIL_CHARS, failure_detail
from tests.conftest import write_topology


class Refused(PglabError):
    pass


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return Lab.from_file(write_topology(tmp_path, name="sutest"))


def _answer(monkeypatch: pytest.MonkeyPatch, lab: Lab, returncode: int, stdout: str = "",
            stderr: str = "") -> list[list[str]]:
    """The provider answers every command so; the argv it was given, in order."""
    calls: list[list[str]] = []

    def run(node: object, argv: list[str], timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, returncode, stdout, stderr)

    monkeypatch.setattr(lab.provider, "run_as_service_user", run)
    return calls


def test_a_command_that_succeeds_gives_its_output(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    _answer(monkeypatch, lab, 0, stdout="ok\n")
    assert lab.provider.check_as_service_user(lab.node("pg1"), ["true"], "nothing", Refused) == "ok\n"


def test_a_failed_command_says_what_where_and_why_on_one_line(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    _answer(monkeypatch, lab, 3, stdout="ignored", stderr="ERROR: [056]: unable to find\n  HINT: is it up?\n")
    with pytest.raises(Refused) as caught:
        lab.provider.check_as_service_user(lab.node("pg1"), ["x"], "pgbackrest check", Refused)
    assert str(caught.value) == "pgbackrest check failed on pg1 (exit 3): ERROR: [056]: unable to find HINT: is it up?"


def test_a_long_failure_keeps_its_end() -> None:
    detail = failure_detail("start " + "x" * 3 * FAILURE_DETAIL_CHARS + " the reason")
    assert detail.startswith("…") and detail.endswith("the reason")
    assert len(detail) == FAILURE_DETAIL_CHARS + 1
    assert failure_detail(None) == "" and failure_detail("  a\n b ") == "a b"


def test_pgbackrest_commands_name_their_configuration_and_stanza() -> None:
    config = pgbackrest.config_file("/var/lib/pglab/lab/pg1")
    assert config == "/var/lib/pglab/lab/pg1/etc/pgbackrest/pgbackrest.conf"
    assert pgbackrest.command(config, "pglab", "--delta", "restore") == [
        "/usr/bin/pgbackrest", f"--config={config}", "--stanza=pglab", "--delta", "restore"]


def test_backup_commands_run_on_the_repository_node(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _answer(monkeypatch, lab, 0, stdout="[]")
    assert backup.command(lab, "--output=json", "info") == "[]"
    repository = pgbackrest.repository_node(lab.topology)
    assert calls == [pgbackrest.command(pgbackrest.config_file(lab.provider.node_root(repository)),
                                        lab.topology.postgres.scope, "--output=json", "info")]
    _answer(monkeypatch, lab, 28, stderr="ERROR: [028]: backup and archive info files exist but do not match")
    with pytest.raises(backup.BackupError, match=rf"^pgbackrest info failed on {repository.name} \(exit 28\): "):
        backup.command(lab, "info")


def test_a_failed_playbook_names_each_task_its_node_and_the_output() -> None:
    result = ansible.PlaybookResult(rc=2, status="failed", log=Path("/tmp/out"), failures=[
        ansible.TaskFailure("pg1", "Deliver the certificates", "no such file")])
    text = ansible.failure_text("Delivering the certificates", result, ["Recent logs:\nline"])
    assert text.splitlines() == ["Delivering the certificates failed.",
                                 "Task 'Deliver the certificates' failed on node pg1: no such file",
                                 "Recent logs:", "line", "Full Ansible output: /tmp/out"]
    bare = ansible.failure_text("`pglab up`", ansible.PlaybookResult(rc=4, status="failed"))
    assert bare == "`pglab up` failed.\nansible-playbook ended with status failed (rc 4)."
