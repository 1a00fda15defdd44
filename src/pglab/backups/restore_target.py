"""What a restore aims at: a moment (``--to``) or the latest archived point (``--latest``), and
whether the repository can reach it.

Pure: no lab, no clock of its own. The window runs from the end of the oldest backup (a backup is
consistent only once it has ended) to the primary's clock now (:mod:`pglab.backups.restore` archives the
WAL up to now before it stops anything).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from pglab.errors import InputError


@dataclass(frozen=True)
class Target:
    """A moment to restore to; ``at`` None: the latest point the archive holds."""

    at: datetime.datetime | None = None

    @property
    def latest(self) -> bool:
        return self.at is None

    def describe(self) -> str:
        return "the latest archived point" if self.at is None else stamp(self.at)

    def pgbackrest_options(self) -> list[str]:
        """pgBackRest restore's options for this target: recovery stops before the first commit
        after the moment, then promotes (a new timeline); the latest point replays every archived
        segment, then promotes."""
        if self.at is None:
            return ["--type=default"]
        return ["--type=time", f"--target={stamp(self.at)}", "--target-action=promote"]


def stamp(moment: datetime.datetime) -> str:
    """A moment as PostgreSQL's recovery_target_time reads it, in UTC, to the microsecond."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")


def parse(text: str) -> datetime.datetime:
    """An ISO 8601 moment (``2026-11-25 23:59:01.25+00:00``, ``...T...Z``); without a zone it is
    this machine's local time. Raises InputError naming the option and the form."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise InputError(f"--to {text!r} is not a time; write it as ISO 8601, for example "
                         "'2026-11-25 23:59:01.250+00:00' (UTC) or '2026-11-25T23:59:01' (this machine's "
                         "local time), or use --latest") from None
    return moment if moment.tzinfo is not None else moment.astimezone()


def check_window(target: Target, earliest: datetime.datetime | None, now: datetime.datetime) -> None:
    """Refuse (InputError, exit 2) a target the repository cannot reach: no backup yet, a moment
    before the oldest backup ended, or one after ``now`` (the primary's clock)."""
    if earliest is None:
        raise InputError("the repository holds no backup yet, so there is nothing to restore from; "
                         "take one with `pglab backup` (a lab's `pglab up` takes the first)")
    window = f"the restorable window is {stamp(earliest)} .. now ({stamp(now)})"
    if target.at is None:
        return
    if target.at <= earliest:
        raise InputError(f"cannot restore to {stamp(target.at)}: it is before the end of the oldest backup; "
                         f"{window}. Pick a time inside it; nothing was changed")
    if target.at >= now:
        raise InputError(f"cannot restore to {stamp(target.at)}: it is in the future of the primary's clock; "
                         f"{window}. Pick a time inside it (or --latest); nothing was changed")
