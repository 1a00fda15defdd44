"""The shape of pglab's JSON output: which keys, holding which kinds of value, so that a test can
say "this output still has the shape scripts rely on" without comparing values that change.

A shape is a flat mapping from a path to the kinds of value seen there: ``members[].lag_mb`` ->
``{"number", "null"}``. Objects whose keys are data (a node's name, a parameter) are given as
``free`` paths; their keys become ``*``.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

Shape = dict[str, set[str]]


def kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"  # 0 and 0.5 are the same kind to a script
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    raise TypeError(f"not a JSON value: {value!r}")


def shape(value: Any, free: Collection[str] = (), path: str = "") -> Shape:
    """The shape of ``value`` (parsed JSON); lists' items are merged into one shape."""
    out: Shape = {path: {kind(value)}}
    children: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        children = [(_join(path, "*" if path in free else str(key)), item) for key, item in value.items()]
    elif isinstance(value, list):
        children = [(f"{path}[]", item) for item in value]
    for child_path, item in children:
        for key, kinds in shape(item, free, child_path).items():
            out.setdefault(key, set()).update(kinds)
    return out


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def as_text(s: Shape) -> dict[str, str]:
    """A shape as JSON can hold it (sorted kinds joined by "|"), for a pinned file."""
    return {path: "|".join(sorted(kinds)) for path, kinds in sorted(s.items())}


def from_text(text: dict[str, str]) -> Shape:
    return {path: set(kinds.split("|")) for path, kinds in text.items()}


def misfits(seen: Shape, pinned: Shape) -> list[str]:
    """What in ``seen`` does not fit ``pinned``: a path pinned nowhere, a kind of value not pinned
    there, or a key pinned under an object that the object no longer has."""
    problems = [f"{path}: new" for path in seen if path not in pinned]
    problems += [f"{path}: {sorted(kinds - pinned[path])} where {sorted(pinned[path])} was pinned"
                 for path, kinds in seen.items() if path in pinned and not kinds <= pinned[path]]
    for path, kinds in seen.items():
        if "object" not in kinds:
            continue
        prefix = f"{path}." if path else ""
        keys = {p for p in pinned if p.startswith(prefix) and "." not in p[len(prefix):].replace("[]", "")
                and p[len(prefix):] != "*" and not p[len(prefix):].endswith("[]")}
        problems += [f"{key}: missing" for key in sorted(keys) if key not in seen]
    return problems


FIXTURES = Path(__file__).parent / "fixtures" / "output"
PINNED = FIXTURES / "shapes.json"

# Each recorded output (tests/fixtures/output/<stack>/<name>.json) and the paths whose keys are data.
FREE: dict[str, tuple[str, ...]] = {
    "up": ("parameters_changed", "settings_changed", "health.members[].pending_changes"),
    "status": ("services", "services.*", "members[].pending_changes", "poolers"),
    "certs": (),
    "backups": (),
    "drill": ("summary[].checks", "drills[].checks", "drills[].errors", "drills[].discarded", "drills[].reads",
              "drills[].lag_at_fault", "drills[].lag_worst"),
    "verify": (),
}


def recorded(name: str) -> list[Any]:
    """Every recording of one output (one file per stack and run: up.json, drill_bank.json ...)."""
    return [json.loads(path.read_text()) for path in sorted(FIXTURES.glob(f"*/{name}*.json"))
            if path.stem == name or path.stem.startswith(f"{name}_")]


def recorded_shape(name: str) -> Shape:
    merged: Shape = {}
    for value in recorded(name):
        for path, kinds in shape(value, FREE[name]).items():
            merged.setdefault(path, set()).update(kinds)
    return merged


def pinned(name: str) -> Shape:
    return from_text(json.loads(PINNED.read_text())[name])


if __name__ == "__main__":
    # Rewrite the pinned shapes from the recordings: only when an output's shape changes on purpose.
    PINNED.write_text(json.dumps({name: as_text(recorded_shape(name)) for name in FREE}, indent=1) + "\n")
    print(f"wrote {PINNED}")
