"""What `pglab status`, `up`, `certs` and `backups` print with --json on the session's real lab
fits the shapes pinned from recorded output (tests/fixtures/output/shapes.json): no key renamed,
added or dropped, no value of another kind. The tables beside them may change; this may not."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pglab import ui
from pglab.backups import backup
from pglab.lab import Lab, UpResult
from tests import shapes


def _cli_json(lab: Lab, *command: str) -> object:
    out = subprocess.run([sys.executable, "-m", "pglab.cli", *command, "--json", "-f", str(lab.topology_file)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def _assert_fits(name: str, value: object) -> None:
    assert shapes.misfits(shapes.shape(value, shapes.FREE[name]), shapes.pinned(name)) == []


def test_up_json_keeps_its_shape(lab_and_result: tuple[Lab, UpResult]) -> None:
    _assert_fits("up", ui.to_jsonable(lab_and_result[1]))  # what `pglab up --json` prints


@pytest.mark.parametrize("name", ["status", "certs"])
def test_listing_json_keeps_its_shape(lab: Lab, name: str) -> None:
    _assert_fits(name, _cli_json(lab, name))


def test_backups_json_keeps_its_shape(lab: Lab) -> None:
    if not backup.list_backups(lab).backups:
        backup.take_backup(lab, "full")
    _assert_fits("backups", _cli_json(lab, "backups"))
