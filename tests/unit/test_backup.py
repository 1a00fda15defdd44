"""pglab.backups.backup without a cluster: pgBackRest's info JSON read into backups, and a lab without
backups refused with the fix. (A real lab's backups are checked by the integration tests.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from pglab.backups import backup
from pglab.lab import Lab
from tests.conftest import write_topology

INFO_ENTRY = {
    "label": "20261125-221725F", "type": "full",
    "timestamp": {"start": 1764109045, "stop": 1764109051},
    "info": {"size": 23045984, "repository": {"delta": 4549377, "size": 4549377}},
    "archive": {"start": "00000001000000000000000A", "stop": "00000001000000000000000A"},
}


def test_pgbackrest_info_entries_become_backups() -> None:
    entry = backup._backup(INFO_ENTRY)
    assert entry.label == "20261125-221725F" and entry.type == "full"
    assert (entry.stop - entry.start).total_seconds() == 6
    assert entry.repository_bytes == 4549377 and entry.wal_stop.endswith("0A")


def test_a_lab_without_backups_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = write_topology(tmp_path, name="nbtest")
    path.write_text(path.read_text().replace("  enabled: true", "  enabled: false"))
    with pytest.raises(backup.BackupError, match=r"has no backups.*enabled: true"):
        backup.list_backups(Lab.from_file(path))
