"""Reading a topology file that may be hostile: bounded size, depth and alias expansion, plain
UTF-8 text, no duplicate keys; then the model validates it.

The model is the caller's: :mod:`pglab.catalog` passes the one its registries complete, so this
module knows no stack or provider."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pglab.topology.messages import codepoint, explain, printable, short
from pglab.topology.model import Topology, TopologyError

DEFAULT_FILE = "pglab.yml"
# Bounds far above any real lab, so that a hostile or broken file is refused before it costs time.
MAX_FILE_BYTES = 64 * 1024
MAX_YAML_DEPTH = 16  # nodes[i].roles[j] is four levels deep
MAX_YAML_VALUES = 2000  # every scalar and collection, counting each alias as what it expands to
# libyaml's parser when PyYAML has it (the usual wheels do): twenty times faster than pure Python.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(path: str | Path, *, model: type[Topology]) -> Topology:
    """Read and validate a topology file, or raise :class:`TopologyError`."""
    path = Path(path)
    fix = "Pass a topology YAML with --file, or write one with `pglab init`."
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise TopologyError(printable(f"{path}: is {kind}, not a topology file. {fix}"))
        with path.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise TopologyError(printable(
            f"{path}: no such file. Run `pglab init` to write the default lab there, "
            "or pass the right file with --file."
        )) from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise TopologyError(printable(f"{path}: cannot be read as a topology ({reason}). {fix}")) from None
    return parse_bytes(data, str(path), model=model)


def parse_bytes(data: bytes, source: str = DEFAULT_FILE, *, model: type[Topology]) -> Topology:
    """Validate a topology file's raw content: UTF-8 text of a sane size, then :func:`parse`."""
    if len(data) > MAX_FILE_BYTES:
        raise TopologyError(printable(
            f"{source}: is larger than {MAX_FILE_BYTES // 1024} KiB, far more than any topology needs; "
            "check that --file names the lab's YAML (`pglab init` writes a complete one in 2 KiB)."
        ))
    nul = data.find(b"\0")
    if nul >= 0:
        raise TopologyError(printable(
            f"{source}: holds binary data (a NUL byte at offset {nul}), not YAML text; "
            "check that --file names the lab's YAML, or write one with `pglab init`."
        ))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TopologyError(printable(
            f"{source}: is not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start}); "
            "save it as UTF-8, or write one with `pglab init`."
        )) from None
    return parse(text, source, model=model)


def parse(text: str, source: str = DEFAULT_FILE, *, model: type[Topology]) -> Topology:
    """Validate topology text, or raise :class:`TopologyError` with one printable paragraph.

    The text is measured first (size, nesting, alias expansion) on PyYAML's event stream, which
    needs no recursion, so no input can make pglab spend more than a moment on it.
    """
    try:
        return _parse(text, source, model)
    except TopologyError as exc:
        raise TopologyError(printable(str(exc))) from None
    except (ValueError, TypeError, RecursionError, MemoryError) as exc:  # a last guard: never a traceback
        raise TopologyError(printable(
            f"{source}: cannot be used as a topology ({type(exc).__name__}: {short(str(exc))}); "
            "compare it with what `pglab init` writes."
        )) from None


def _parse(text: str, source: str, model: type[Topology]) -> Topology:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise TopologyError(f"{source}: is larger than {MAX_FILE_BYTES // 1024} KiB, far more than any "
                            "topology needs; `pglab init` writes a complete one in 2 KiB.")
    try:
        _measure(text, source)
        tree = yaml.compose(text, Loader=_LOADER)
        data = yaml.SafeLoader("").construct_document(tree) if tree is not None else None
    except TopologyError:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise TopologyError(
            f"{source}{where}: the file is not valid YAML ({exc.problem or exc}). "
            "Fix the syntax there: check indentation, a missing colon, or an unclosed quote or bracket."
        ) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (control characters ...)
        line = text.count("\n", 0, exc.position) + 1
        raise TopologyError(
            f"{source}, line {line}: the character {codepoint(exc.character)} is not allowed in YAML; "
            "remove it (control characters cannot appear in a topology file)."
        ) from None
    except yaml.YAMLError as exc:
        raise TopologyError(f"{source}: the file is not valid YAML ({short(str(exc))}); "
                            "compare it with what `pglab init` writes.") from None
    except ValueError as exc:  # e.g. an integer longer than Python converts
        raise TopologyError(f"{source}: a value cannot be read ({short(str(exc))}); "
                            "write plain numbers and strings as `pglab init` does.") from None
    duplicate = _first_duplicate_key(tree)
    if duplicate is not None:
        key, line = duplicate
        raise TopologyError(
            f"{source}, line {line}, field {key}: the key {key!r} appears twice in the same mapping, "
            "and YAML would silently keep only the last one; remove one of them."
        )
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise TopologyError(
            f"{source}, line 1: the file must be a YAML mapping (keys such as name, nodes); "
            f"it holds a {type(data).__name__}. Start from `pglab init`."
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise TopologyError(explain(exc, data, tree, source, model)) from None


def _measure(text: str, source: str) -> None:
    """Refuse deep nesting and big documents (aliases counted as what they expand to, so an
    alias bomb is refused before anything expands it), reading only PyYAML's event stream."""
    sizes: dict[str, int] = {}  # anchor -> how many values it expands to
    open_collections: list[list[Any]] = []  # [anchor, size so far, line]
    total = 0
    for event in yaml.parse(text, Loader=_LOADER):
        line = event.start_mark.line + 1 if event.start_mark else 1
        if isinstance(event, yaml.CollectionStartEvent):
            if len(open_collections) >= MAX_YAML_DEPTH:
                raise TopologyError(f"{source}, line {line}: values are nested more than {MAX_YAML_DEPTH} "
                                    "levels deep; a topology needs four (nodes, a node, its roles).")
            open_collections.append([event.anchor, 1])
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            anchor, size = open_collections.pop()
        elif isinstance(event, yaml.ScalarEvent):
            anchor, size = event.anchor, 1
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in sizes:
                inside = any(anchor == event.anchor for anchor, _size in open_collections)
                problem = "a value that contains it" if inside else f"no anchor &{event.anchor} defined before it"
                raise TopologyError(f"{source}, line {line}: the alias *{event.anchor} refers to {problem}; "
                                    "write the value out instead.")
            anchor, size = None, sizes[event.anchor]
        else:
            continue
        if anchor is not None:
            sizes[anchor] = size
        if open_collections:
            open_collections[-1][1] += size
        total += size if isinstance(event, yaml.AliasEvent) else 1
        if total > MAX_YAML_VALUES or (open_collections and open_collections[-1][1] > MAX_YAML_VALUES):
            raise TopologyError(f"{source}, line {line}: the file holds more than {MAX_YAML_VALUES} values "
                                "(aliases counted as what they expand to); a topology needs a few dozen.")


def _first_duplicate_key(node: yaml.Node | None) -> tuple[str, int] | None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if key.value in seen:
                return str(key.value), key.start_mark.line + 1
            seen.add(key.value)
            found = _first_duplicate_key(value)
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found = _first_duplicate_key(item)
            if found:
                return found
    return None
