"""A cell of the "What happens when…" table from the recorded runs of one fault on one
configuration: a few words and the figures that answer the question (did it fail over, how long
were writes down, what did a commit feel, was anything acknowledged lost), short enough for a
Markdown table.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# The faults that slow rather than break: their cell says what a commit felt (p50 before -> during).
ABOUT_LATENCY = {"latency", "loss", "slow-disk", "cpu-starve"}
NOT_MEASURED = "not measured yet"
NOT_RUN = "-"
WIDTH = 48  # characters a free-text part of a cell may take

# What the usual exit-2 messages come down to: (a pattern in the message, the cell's words).
REFUSALS: tuple[tuple[str, str], ...] = (
    (r"netem", "needs netem (missing here)"),
    (r"needs the (\w+) cgroup controller", r"needs the \1 cgroup (missing here)"),
    (r"needs root and cgroup", "needs root and cgroups"),
    (r"plain directories", "needs a disk per node (no loop devices)"),
    (r"no rebuild", "no rebuild in pglab for this stack"),
    (r"keeps no state outside", "no state store to lose"),
    (r"provider cannot produce", "the provider cannot produce it"),
)
POSTMASTER = {"stayed up and reinitialized": "crash recovery", "restarted": "new postmaster",
              "stayed up, its other": "postmaster untouched"}


@dataclass
class Outcome:
    """What one run says, ready to be merged with the other runs of its cell."""

    exit: int | None
    note: str | None = None  # the whole cell when the drill did not run (exit 2, a timeout)
    words: str = ""  # what happened, in a few words ("failover", "restarted in place" ...)
    words_after_s: float | None = None  # the figure that goes with the words, when they have one
    down_s: float | None = None
    healthy_s: float | None = None
    p50: tuple[float | None, float | None] = (None, None)  # commit p50 before, during (ms)
    lost: int = 0
    failed: str | None = None  # why the run exited 1, when it lost nothing
    aftermath: str = "healthy"
    notes: list[str] = field(default_factory=list)


def shorten(text: str, width: int = WIDTH) -> str:
    """The first line of ``text``, at most ``width`` characters; pipes would break the table."""
    line = (text.strip().splitlines() or [""])[0].replace("|", "/")
    return line if len(line) <= width else line[:width - 1].rstrip() + "\u2026"


def refusal(message: str) -> str:
    """An exit-2 message in a few words: what is missing."""
    text = re.sub(r"^(error:\s*)?(drill [\w-]+:\s*)?", "", message.strip())
    for pattern, words in REFUSALS:
        found = re.search(pattern, text)
        if found:
            return found.expand(words)
    return shorten(text)


def outcome(record: dict[str, Any]) -> Outcome:
    """One run's record (a line of the results file) as an :class:`Outcome`."""
    code = record.get("exit")
    drill = record.get("drill")
    aftermath = record.get("aftermath") or "healthy"
    if record.get("timed_out"):
        return Outcome(code, f"timed out after {record.get('seconds', 0):.0f} s", aftermath=aftermath)
    if drill is None:
        message = record.get("message") or "no output"
        note = f"exit 2: {refusal(message)}" if code == 2 else f"exit {code}: {shorten(message)}"
        return Outcome(code, note, aftermath=aftermath)
    checks = drill.get("checks") or {}
    # every client's, the one beside a cut-off node too (the probe's own count is only its writes)
    lost = max(int(drill.get("lost") or 0), int(checks.get("lost") or 0))
    result = Outcome(code, down_s=drill.get("unavailable_s"), healthy_s=drill.get("healthy_again_s"),
                     lost=lost, aftermath=aftermath)
    if (drill.get("cut_off_side") or {}).get("lost"):
        result.notes.append("on the cut-off side")
    result.words, result.words_after_s = _words(drill)
    if drill.get("kind") in ABOUT_LATENCY:
        result.p50 = _p50(drill)
    if code == 1 and not result.lost:
        problem = re.sub(r"^the [\w-]+ did not complete: ", "", drill.get("problem") or "")
        broken = ", ".join(f"{check} {count}" for check, count in checks.items() if count)
        result.failed = shorten(problem or broken or ("not recovered" if not drill.get("recovered") else "not ok"))
    return result


def _leader_change(drill: dict[str, Any]) -> str:
    old, new = drill.get("old_leader"), drill.get("new_leader")
    if new is None:
        return "no leader at the end"
    return "failover" if old is not None and old != new else "no failover"


def _words(drill: dict[str, Any]) -> tuple[str, float | None]:
    """What the kind's own figures say happened, and the time that goes with it."""
    kind = drill.get("kind")
    change = _leader_change(drill)
    if kind == "postgres-kill":
        return str(drill.get("outcome") or change), drill.get("back_after_s")
    if kind == "pgdata-lost":
        if drill.get("rebuilt_after_s") is None:
            return "not rebuilt", None
        return f"rebuilt by {drill.get('rebuilt_by')} after", drill["rebuilt_after_s"]
    if kind == "dcs-loss":
        if drill.get("leader_kept_writes"):
            return f"leader kept writing, {change}", None
        return f"{change}, leader demoted after", drill.get("demoted_after_s")
    if kind == "disk-full":
        if drill.get("first_failure_s") is None:
            return f"{change}, no write refused", None
        return f"{change}, writes refused after", drill["first_failure_s"]
    if kind == "memory":
        postmaster = next((short for long, short in POSTMASTER.items()
                           if str(drill.get("postmaster", "")).startswith(long)), "postmaster ?")
        killed = "OOM kill" if drill.get("oom_kills") else "no OOM kill"
        return f"{killed}, {postmaster}, {change}", None
    return change, None


def _p50(drill: dict[str, Any]) -> tuple[float | None, float | None]:
    """Commit p50 before and during the fault (ms): the kind's own windows where it has them
    (they follow the fault's own start and end), else the frame's."""
    own = drill.get("commit_latency") or drill.get("commit_ms")
    if own:
        return ((own.get("before") or {}).get("p50_ms"), (own.get("during") or {}).get("p50_ms"))
    frame = drill.get("commit_latency_ms") or {}
    return ((frame.get("before") or {}).get("p50"), (frame.get("during") or {}).get("p50"))


def number(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}"


def span(values: list[float]) -> str:
    """One figure, or the lowest and the highest of several runs ("3.3-3.9")."""
    low, high = number(min(values)), number(max(values))
    return low if low == high else f"{low}-{high}"


def render(records: list[dict[str, Any]]) -> str:
    """The cell of every run of one fault on one configuration."""
    if not records:
        return NOT_MEASURED
    runs = [outcome(r) for r in sorted(records, key=lambda r: int(r.get("run", 1)))]
    measured = [o for o in runs if o.note is None]
    if not measured:
        return runs[0].note or NOT_MEASURED
    parts = [_merged_words(measured)]
    downs = [o.down_s for o in measured if o.down_s is not None]
    if downs:
        parts.append(f"down {span(downs)} s")
    before = [o.p50[0] for o in measured if o.p50[0] is not None]
    during = [o.p50[1] for o in measured if o.p50[1] is not None]
    if before and during:
        parts.append(f"p50 {span(before)} -> {span(during)} ms")
    healthy = [o.healthy_s for o in measured if o.healthy_s is not None]
    if healthy:
        parts.append(f"healthy again {span(healthy)} s")
    lost = sum(o.lost for o in measured)
    if lost:
        where = sorted({note for o in measured for note in o.notes})
        parts.append(f"**{lost} acked lost**" + (f" ({', '.join(where)})" if where else ""))
    failed = [o.failed for o in measured if o.failed]
    if failed:
        parts.append(f"exit 1: {failed[0]}")
    if len(measured) < len(runs):
        parts.append(f"{len(runs) - len(measured)} of {len(runs)} runs: {next(o.note for o in runs if o.note)}")
    aftermaths = {o.aftermath for o in runs} - {"healthy"}
    if "recreated" in aftermaths:
        parts.append("left the lab broken (recreated)")
    elif "up" in aftermaths:
        parts.append("needed `pglab up` after")
    return ", ".join(p for p in parts if p)


def _merged_words(runs: list[Outcome]) -> str:
    """The runs' words: once when they agree (with their figures), else each with its share."""
    said = Counter(o.words for o in runs)
    if len(said) == 1:
        after = [o.words_after_s for o in runs if o.words_after_s is not None]
        words = runs[0].words
        return f"{words} {span(after)} s" if after else words.removesuffix(" after")
    return ", ".join(f"{words.removesuffix(' after')} {n}/{len(runs)}" for words, n in said.most_common())
