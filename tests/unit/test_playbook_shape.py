"""The shape that keeps `up` fast: site.yml orders only what must be ordered, the opt-in Mitogen
switch. (How fast it is, bench/up.py measures; these only guard the structure.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pglab import ansible, paths
from pglab.errors import PglabError


def site_plays() -> list[dict]:
    return yaml.safe_load(paths.playbook("site.yml").read_text())


def included(play: dict) -> list[tuple[str, str]]:
    """(role, tasks_from) of every include_role in a play's tasks."""
    found = []
    for task in play.get("tasks", []):
        include = task.get("ansible.builtin.include_role")
        if include:
            found.append((include["name"], include.get("tasks_from", "main")))
    return found


def test_only_the_creation_of_new_data_nodes_runs_one_node_at_a_time() -> None:
    serial = [play for play in site_plays() if "serial" in play]
    assert len(serial) == 1
    assert serial[0]["hosts"] == "pglab_postgres:&pglab_pg_auto_failover_new"
    assert included(serial[0]) == [("postgresql", "variables"), ("pg_auto_failover", "node")]


def test_every_role_of_a_node_runs_in_the_first_play_without_waiting_for_other_nodes() -> None:
    first = site_plays()[0]
    assert first["hosts"] == "all" and first["strategy"] == "free"
    roles = [role for role, _ in included(first)]
    for role in ("pglab", "etcd", "consul", "postgresql", "patroni", "pg_auto_failover_monitor", "haproxy"):
        assert role in roles


def test_pgbackrest_runs_on_data_nodes_before_postgresql_and_on_the_repository_after_them() -> None:
    plays = site_plays()
    roles = [role for role, _ in included(plays[0])]
    # archive_command and replica creation call pgBackRest: it is there before PostgreSQL starts.
    assert roles.index("pgbackrest") < roles.index("patroni")
    assert roles.index("pgbackrest") < roles.index("pg_auto_failover")
    # The repository's configuration names every data node's directories: the last play.
    last = plays[-1]
    assert last["hosts"] == "pglab_backup" and [r["role"] for r in last["roles"]] == ["pgbackrest"]
    assert included({"tasks": last["post_tasks"]}) == [("pgbackrest", "stanza")]


def test_no_play_uses_run_once_which_free_plays_would_break() -> None:
    for play in site_plays():
        assert "run_once" not in play
        assert all("run_once" not in task for task in play.get("tasks", []))
    for tasks in paths.roles_dir().glob("*/tasks/*.yml"):
        assert "run_once:" not in tasks.read_text(), tasks


def test_mitogen_is_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ansible.MITOGEN_SWITCH, raising=False)
    assert ansible.mitogen_envvars() == {}
    monkeypatch.setenv(ansible.MITOGEN_SWITCH, "0")
    assert ansible.mitogen_envvars() == {}


def test_mitogen_when_asked_gives_strategies_named_like_ansibles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ansible.MITOGEN_SWITCH, "1")
    try:
        import ansible_mitogen  # noqa: F401
    except ImportError:
        with pytest.raises(PglabError, match="pip install mitogen"):
            ansible.mitogen_envvars()
        return
    strategies = Path(ansible.mitogen_envvars()["ANSIBLE_STRATEGY_PLUGINS"])
    assert {p.name for p in strategies.glob("*.py")} >= {"linear.py", "free.py"}
