"""pglab's objects rebuilt from the JSON it printed on a live lab (tests/fixtures/output/), so that
unit tests can render tables and re-serialise them without a lab."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from pglab.backups.backup import Backup, BackupList, Window
from pglab.components.haproxy import Backend
from pglab.lab import LabStatus, PoolerView, UpResult
from pglab.sites import SiteLag, SiteView
from pglab.stacks.base import Health, Member
from pglab.verify import CheckResult, VerifyReport


def status(value: dict[str, Any]) -> LabStatus:
    return LabStatus(**{**value, "members": [Member(**m) for m in value["members"]],
                        "haproxy": [Backend(**b) for b in value["haproxy"]],
                        "poolers": {node: PoolerView(**p) if p else None
                                    for node, p in value.get("poolers", {}).items()},
                        "sites": [_site(v) for v in value.get("sites", [])]})


def _site(value: dict[str, Any]) -> SiteView:
    lag = value.get("lag")
    return SiteView(**{**value, "members": [Member(**m) for m in value["members"]],
                       "lag": SiteLag(**lag) if lag else None})


def up(value: dict[str, Any]) -> UpResult:
    health = value["health"]
    return UpResult(**{**value, "secrets_file": Path(value["secrets_file"]), "pgpass": Path(value["pgpass"]),
                       "health": Health(**{**health, "members": [Member(**m) for m in health["members"]],
                                           "routing": [Backend(**b) for b in health["routing"]]})})


def _moment(text: str | None) -> datetime.datetime | None:
    return None if text is None else datetime.datetime.fromisoformat(text)


def backups(value: dict[str, Any]) -> BackupList:
    listed = [Backup(**{**b, "start": _moment(b["start"]), "stop": _moment(b["stop"])}) for b in value["backups"]]
    window = value["window"]
    return BackupList(value["stanza"], listed, Window(_moment(window["earliest"]), _moment(window["latest"])))


def verify(value: dict[str, Any]) -> VerifyReport:
    junit = value["junit_xml"]
    return VerifyReport([CheckResult(**r) for r in value["results"]], value["seconds"], value["exit_code"],
                        Path(junit) if junit else None)
