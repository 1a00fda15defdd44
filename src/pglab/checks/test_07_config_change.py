"""Check 7, a configuration change needing a restart: raising max_connections leaves every
member pending restart; a rolling restart applies it everywhere and clears the flag; the
original value is then restored the same way, so the suite can run again."""

from __future__ import annotations

from typing import Any

import pytest

from pglab import operations
from pglab.checks import leader, members, setting
from pglab.lab import Lab

PARAMETER = "max_connections"


def _values(lab: Lab, password: str) -> dict[str, str]:
    return {n.name: setting(lab, n.name, password, PARAMETER) for n in lab.topology.with_role("postgres")}


def _pending(lab: Lab) -> list[str]:
    return sorted(m.name for m in members(lab).values() if m.pending_restart)


@pytest.fixture(scope="module")
def change(lab: Lab, password: str) -> dict[str, Any]:
    original = int(setting(lab, leader(lab), password, PARAMETER))
    wanted = original + 10
    seen: dict[str, Any] = {"original": original, "wanted": wanted}
    operations.set_config(lab, {PARAMETER: str(wanted)})
    try:
        seen["pending_after_set"] = _pending(lab)
        operations.restart(lab, rolling=True)
        seen["values_after_restart"] = _values(lab, password)
        seen["pending_after_restart"] = _pending(lab)
    finally:
        # Back to the original value, the same way, even when the change went wrong.
        operations.set_config(lab, {PARAMETER: str(original)})
        operations.restart(lab, rolling=True)
    seen["values_restored"] = _values(lab, password)
    seen["pending_restored"] = _pending(lab)
    return seen


def test_change_leaves_every_member_pending_restart(lab: Lab, change: dict[str, Any]) -> None:
    everyone = sorted(n.name for n in lab.topology.with_role("postgres"))
    assert change["pending_after_set"] == everyone, (
        f"after setting {PARAMETER}={change['wanted']}, pending restart on "
        f"{', '.join(change['pending_after_set']) or 'no member'}; expected {', '.join(everyone)}")


def test_rolling_restart_applies_it_everywhere(change: dict[str, Any]) -> None:
    wrong = {n: v for n, v in change["values_after_restart"].items() if v != str(change["wanted"])}
    assert not wrong, "after the rolling restart " + ", ".join(
        f"{n} shows {PARAMETER} = {v}, not {change['wanted']}" for n, v in wrong.items())


def test_no_restart_pending_afterwards(change: dict[str, Any]) -> None:
    assert not change["pending_after_restart"], (
        f"still pending restart after the rolling restart: {', '.join(change['pending_after_restart'])}")


def test_original_value_is_restored(change: dict[str, Any]) -> None:
    wrong = {n: v for n, v in change["values_restored"].items() if v != str(change["original"])}
    assert not wrong, "after restoring " + ", ".join(
        f"{n} shows {PARAMETER} = {v}, not {change['original']}" for n, v in wrong.items())
    assert not change["pending_restored"], (
        f"still pending restart after restoring {PARAMETER}: {', '.join(change['pending_restored'])}")
