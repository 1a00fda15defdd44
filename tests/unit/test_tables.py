"""Every listing table reads whole at 80 columns, from output recorded on a live lab: no "…"
anywhere, no line past 80, and each key cell (a name, a date, a figure, a result) on one line."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import pytest
from rich.console import Console, RenderableType

from pglab import ui
from pglab.verify import CheckResult
from tests import recorded, shapes


def _render(renderable: RenderableType, width: int = 80) -> list[str]:
    # soft_wrap as pglab's console: a line too long for the terminal is not folded by rich.
    console = Console(width=width, record=True, soft_wrap=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(renderable)
    console.file.close()
    return console.export_text().splitlines()


def assert_whole(lines: list[str], key_cells: Iterable[str]) -> None:
    text = "\n".join(lines)
    assert "…" not in text, text
    assert max(len(line) for line in lines) <= 80, text
    for cell in key_cells:
        assert any(cell in line for line in lines), f"{cell!r} is cut or wrapped:\n{text}"


def _failing_drill(row: dict[str, Any]) -> dict[str, Any]:
    """A recorded row turned into the worst case: many drills, long outages, violations."""
    return {**row, "ok": False, "drills": 12, "lost": 3, "failed_committed": 1,
            "setting": "append, 16 clients, 4 readers, load 200/s, sync",
            "unavailable_s": {"min": 19.85, "median": 20.71, "max": 121.02},
            "checks": {"lost": 3, "split_brain": 0, "append_duplicate": 12, "append_order": 1}}


def test_members_and_routing_at_80_columns() -> None:
    for value in shapes.recorded("status"):
        status = recorded.status(value)
        # The connection strings below the tables are one line each on purpose, to copy whole.
        tables = _render(ui.members_table(status.cluster, status.members)) + _render(ui.backends_table(status.haproxy))
        keys = [cell for m in status.members
                for cell in (m.name, f"{m.host}:{m.port}" if m.port else m.host, m.current_state or m.state)]
        assert_whole(tables, keys + [f"{b.proxy} " for b in status.haproxy])
        assert "healthy" in _render(ui.status_view(status))[-1]


def test_members_of_a_lab_being_changed_at_80_columns() -> None:
    for value in shapes.recorded("status"):
        status = recorded.status(value)
        members = [dataclasses.replace(m, pending_restart=True, state="starting",
                                       current_state="wait_primary" if m.current_state else None,
                                       pending_changes={"max_connections": {"old_value": "100", "new_value": "200"}})
                   for m in status.members]
        lines = _render(ui.members_table(status.cluster, members))
        assert_whole(lines, [cell for m in members for cell in (f"│ {m.name} ", m.host)])


def test_certs_at_80_columns() -> None:
    rows = shapes.recorded("certs")[0]
    rows.append({**rows[-2], "name": "pg4", "days_left": 3.2, "served": "old: 1e74396dc5e5ab8349, yes"})
    lines = _render(ui.certs_table(rows))
    assert_whole(lines, [cell for r in rows for cell in (f"│ {r['name']} ", r["not_after"][:10])])
    assert any("6 names" in line for line in lines) and any("old, yes" in line for line in lines)


def test_backups_at_80_columns() -> None:
    listing = recorded.backups(shapes.recorded("backups")[0])
    lines = _render(ui.backups_table(listing))
    assert_whole(lines, [cell for b in listing.backups
                         for cell in (f"{b.label} ", f" {b.type} ", f"{b.stop:%Y-%m-%d %H:%M:%S}")])


def test_drill_summary_at_80_columns() -> None:
    rows = [row for value in shapes.recorded("drill") for row in value["summary"]]
    rows.append(_failing_drill(rows[-1]))
    lines = _render(ui.drill_table(rows))
    keys = [cell for r in rows for cell in (f"│ {r['kind']} ", f"{r['unavailable_s']['median']:.2f}")]
    assert_whole(lines, [*keys, "FAILED", "lost 3", "append_duplicate 12", "append_order 1"])
    assert not any("split_brain" in line for line in lines)  # a check that held is only counted in --wide


def test_verify_at_80_columns() -> None:
    report = recorded.verify(shapes.recorded("verify")[0])
    results = [*report.results, CheckResult("manual_failover", "the latest backup restores and holds a marker "
                                            "written before it", "pg3", "failed", 12.3,
                                            "pg3 is not streaming after 30 s: state starting, timeline 3")]
    lines = _render(ui.verify_table(results))
    assert_whole(lines, [f"│ {r.check} " for r in results] + [f" {r.node} " for r in results if r.node]
                 + [f" {r.outcome} " for r in results])


@pytest.mark.parametrize("table", ["status", "certs", "backups", "drill", "verify"])
def test_wide_shows_what_80_columns_leave_out(table: str) -> None:
    drill_rows = [_failing_drill(shapes.recorded("drill")[0]["summary"][0])]
    render = {
        "status": lambda: ui.status_view(recorded.status(shapes.recorded("status")[0]), wide=True),
        "certs": lambda: ui.certs_table(shapes.recorded("certs")[0], wide=True),
        "backups": lambda: ui.backups_table(recorded.backups(shapes.recorded("backups")[0]), wide=True),
        "drill": lambda: ui.drill_table(drill_rows, wide=True),
        "verify": lambda: ui.verify_table(recorded.verify(shapes.recorded("verify")[0]).results, wide=True),
    }[table]
    text = "\n".join(_render(render(), width=250))
    assert "…" not in text
    expected = {"status": "Pending changes", "certs": "192.168.11.120", "backups": "WAL start",
                "drill": "19.85/20.71/121.02", "verify": "Seconds"}[table]
    assert expected in text
