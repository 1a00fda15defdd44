"""The "What happens when…" table: one row per fault, one column per configuration, each cell
from the results file (:mod:`_catalogue_cells`), a line under it saying when, on what machine and
under what load it was measured; and the page's text between its two markers replaced by it.
"""

from __future__ import annotations

import datetime
from typing import Any

from _catalogue_cells import NOT_MEASURED, NOT_RUN, render
from _catalogue_plan import Config, Fault

BEGIN = "<!-- catalogue:begin (written by bench/catalogue.py: edits up to catalogue:end are lost) -->"
END = "<!-- catalogue:end -->"


def table(records: list[dict[str, Any]], configs: tuple[Config, ...], faults: tuple[Fault, ...]) -> str:
    """The Markdown table of every fault and configuration; cells without a run say so."""
    by_cell: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        if r.get("type") == "cell":
            by_cell.setdefault((r["config"], r["kind"]), []).append(r)
    lines = ["| what happens when… | " + " | ".join(c.title for c in configs) + " |",
             "|---|" + "---|" * len(configs)]
    for fault in faults:
        cells = [render(by_cell.get((c.name, fault.kind), [])) if c.runs(fault.kind) else NOT_RUN for c in configs]
        lines.append(f"| `{fault.label}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _when(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)


def footer(records: list[dict[str, Any]], sittings: list[dict[str, Any]]) -> str:
    """When, where and under what load the table was measured, and how long it took."""
    cells = [r for r in records if r.get("type") == "cell"]
    if not cells:
        return f"{NOT_MEASURED.capitalize()}: run `bench/catalogue.py --write-docs` to fill the table."
    days = sorted({_when(r["started"]).date().isoformat() for r in cells})
    machine = (sittings[0].get("machine") if sittings else None) or {}
    where = (f"{machine.get('cores', '?')} cores, {machine.get('memory_gb', '?')} GB, "
             f"kernel {machine.get('kernel', '?')}" if machine else "an unrecorded machine")
    ends = [s["started"] for s in sittings[1:]] + [None]
    seconds = (sum(_sitting_seconds(s, cells, until) for s, until in zip(sittings, ends, strict=True)) if sittings
               else sum(r.get("seconds", 0) for r in cells))
    load_start = sittings[0].get("load_start") if sittings else None
    load_end = sittings[-1].get("load_end") if sittings else None
    load = f"load average {_load(load_start)} at the start, {_load(load_end)} at the end"
    took = f"{seconds / 60:.0f} min in all" + (f" over {len(sittings)} sittings" if len(sittings) > 1 else "")
    return (f"Measured {' to '.join(dict.fromkeys([days[0], days[-1]]))} on the local provider ({where}; default labs, "
            f"one writer through the write endpoint): {load}; {len(cells)} drills, {took}.")


def _load(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f}"


def _sitting_seconds(sitting: dict[str, Any], cells: list[dict[str, Any]], until: str | None) -> float:
    """A sitting's length; one cut short (no end line) lasted until its last cell ended (the
    cells that began before the next sitting did)."""
    if sitting.get("seconds") is not None:
        return float(sitting["seconds"])
    began = _when(sitting["started"])
    ends = [(_when(r["started"]) - began).total_seconds() + float(r.get("seconds", 0)) for r in cells
            if began <= _when(r["started"]) and (until is None or _when(r["started"]) < _when(until))]
    return max(ends, default=0.0)


def block(records: list[dict[str, Any]], sittings: list[dict[str, Any]], configs: tuple[Config, ...],
          faults: tuple[Fault, ...]) -> str:
    """What goes between the markers: the table, then the line under it (only that line before
    anything was measured)."""
    if not any(r.get("type") == "cell" for r in records):
        return footer(records, sittings)
    return f"{table(records, configs, faults)}\n\n{footer(records, sittings)}"


def replace_between_markers(page: str, text: str) -> str:
    """``page`` with what lies between the markers replaced by ``text`` (the markers stay)."""
    begin, end = page.find(BEGIN), page.find(END)
    if begin < 0 or end < begin:
        raise ValueError(f"the page has no {BEGIN!r} ... {END!r} markers in that order")
    return page[:begin + len(BEGIN)] + "\n" + text.strip("\n") + "\n" + page[end:]
