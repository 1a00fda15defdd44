"""The JSON that scripts read (`status`, `up`, `certs`, `backups`, `verify`, `drill` with --json)
keeps its shape: the outputs recorded on a live lab match the pinned shapes, and the objects
rebuilt from them serialise to the same shape again. tests/integration/test_json_shapes.py holds a
live lab's output against the same pins. After a deliberate change: `python -m tests.shapes`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from pglab import ui
from pglab.backups.backup import Backup, BackupList, Window
from pglab.components.haproxy import Backend
from pglab.drills import summary
from pglab.lab import LabStatus, UpResult
from pglab.stacks.base import Health, Member
from pglab.verify import report_dict
from tests import recorded, shapes


@pytest.mark.parametrize("name", sorted(shapes.FREE))
def test_the_recorded_outputs_have_the_pinned_shapes(name: str) -> None:
    assert shapes.recorded(name), f"no recording of {name} in {shapes.FIXTURES}"
    assert shapes.as_text(shapes.recorded_shape(name)) == shapes.as_text(shapes.pinned(name))


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


@pytest.mark.parametrize(("name", "path", "cls"), [
    ("status", "", LabStatus), ("status", "members[]", Member), ("status", "haproxy[]", Backend),
    ("up", "", UpResult), ("up", "health", Health), ("up", "health.members[]", Member),
    ("up", "health.routing[]", Backend),
    ("backups", "", BackupList), ("backups", "backups[]", Backup), ("backups", "window", Window),
])
def test_every_field_of_the_object_is_a_pinned_key(name: str, path: str, cls: type) -> None:
    prefix = f"{path}." if path else ""
    pinned = {p[len(prefix):] for p in shapes.pinned(name) if p.startswith(prefix)}
    keys = {p for p in pinned if "." not in p and "[" not in p and p}
    assert keys == _fields(cls)


REBUILD: dict[str, Callable[[Any], Any]] = {
    "status": recorded.status, "up": recorded.up, "backups": recorded.backups,
    "verify": lambda value: report_dict(recorded.verify(value)),
}


@pytest.mark.parametrize("name", sorted(REBUILD))
def test_the_rebuilt_objects_serialise_to_the_recorded_shape(name: str) -> None:
    for value in shapes.recorded(name):
        again = ui.to_jsonable(REBUILD[name](value))
        assert shapes.shape(again, shapes.FREE[name]) == shapes.shape(value, shapes.FREE[name])


def test_the_drill_summary_is_computed_again_from_the_recorded_json_lines() -> None:
    for value in shapes.recorded("drill"):
        assert summary.summary_of_lines(value["drills"]) == value["summary"]


def test_a_changed_shape_is_named() -> None:
    status = shapes.recorded("status")[0]
    members = [{("lag" if key == "lag_mb" else key): value for key, value in m.items()} for m in status["members"]]
    renamed = {**status, "members": members, "healthy": "yes"}
    misfits = shapes.misfits(shapes.shape(renamed, shapes.FREE["status"]), shapes.pinned("status"))
    assert "members[].lag: new" in misfits and "members[].lag_mb: missing" in misfits
    assert any(m.startswith("healthy: ['str']") for m in misfits)
    assert shapes.misfits(shapes.shape(status, shapes.FREE["status"]), shapes.pinned("status")) == []
