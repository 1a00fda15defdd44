"""`up` shows only the plays that run on a host of this lab: from ansible-runner's events recorded
during `pglab up` of a Patroni lab and of a pg_auto_failover lab (site.yml holds both stacks' plays)."""

from __future__ import annotations

import json
from pathlib import Path

from pglab.ansible import PlaybookEvent, PlaybookEvents

FIXTURES = Path(__file__).parents[1] / "fixtures" / "output"


def _replay(stack: str) -> tuple[list[dict], list[PlaybookEvent]]:
    raw = [json.loads(line) for line in (FIXTURES / stack / "up_events.jsonl").read_text().splitlines()]
    seen: list[PlaybookEvent] = []
    events = PlaybookEvents(seen.append)
    for event in raw:
        events(event)
    return raw, seen


def test_a_patroni_lab_shows_no_pg_auto_failover_play() -> None:
    raw, seen = _replay("patroni")
    announced = [e["event_data"]["play"] for e in raw if e["event"] == "playbook_on_play_start"]
    assert any("pg_auto_failover" in play for play in announced)  # Ansible did announce them
    assert [e.name for e in seen if e.kind == "play"] == ["Prepare every node and run its services",
                                                          "Keep the backup repository"]


def test_a_play_run_in_batches_is_shown_once() -> None:
    raw, seen = _replay("pg_auto_failover")
    announced = [e["event_data"]["play"] for e in raw if e["event"] == "playbook_on_play_start"]
    plays = [e.name for e in seen if e.kind == "play"]
    assert len(announced) > len(plays) and plays == list(dict.fromkeys(announced))


def test_tasks_and_host_results_still_pass() -> None:
    raw, seen = _replay("patroni")
    assert sum(e.kind == "task" for e in seen) == sum(e["event"] == "playbook_on_task_start" for e in raw)
    assert sum(e.kind in ("ok", "changed", "skipped") for e in seen) == sum(
        e["event"] in ("runner_on_ok", "runner_on_skipped") for e in raw)
    assert {e.host for e in seen if e.host} == {"dcs", "haproxy", "pg1", "pg2", "pg3"}
