"""No file makes the topology loader fail with anything but one TopologyError naming the file.

Hypothesis generates the inputs (derandomized, so CI sees the same examples every run); the hand-
picked cases below are the shapes that broke YAML loaders elsewhere (alias bombs, deep nesting,
binary and control characters, huge files and lists).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pglab.catalog import default_yaml, load, parse, parse_bytes
from pglab.topology import MAX_FILE_BYTES, Topology, TopologyError

SOURCE = "fuzz.yml"
FUZZ = settings(derandomize=True, max_examples=100, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
DEFAULT = yaml.safe_load(default_yaml())


def _refused_cleanly(call: Any, source: str = SOURCE) -> str:
    """Run ``call``; it may succeed, or fail with one printable paragraph naming the source."""
    try:
        call()
    except TopologyError as exc:
        message = str(exc)
        assert message.startswith(source.replace("\x00", "\\x00")), message
        assert "\n" not in message and message.isprintable(), message
        assert "Traceback" not in message
        return message
    return ""


# Generated input -------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=40),
    st.sampled_from(["", "~", "null", "1e400", "0x1F", "-", "127.0.0.1", "192.168.11.0/24", "pg1", "[", "*a"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12,
)


def _paths(tree: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(tree, dict):
        for key, value in tree.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            found += _paths(value, (*prefix, i))
    return found


PATHS = _paths(DEFAULT)[1:]


@FUZZ
@given(text=st.text(max_size=300))
def test_any_text_is_parsed_or_refused_cleanly(text: str) -> None:
    _refused_cleanly(lambda: parse(text, SOURCE))


@FUZZ
@given(data=st.binary(max_size=300))
def test_any_bytes_are_parsed_or_refused_cleanly(data: bytes) -> None:
    _refused_cleanly(lambda: parse_bytes(data, SOURCE))


@FUZZ
@given(path=st.sampled_from(PATHS), value=values)
def test_any_value_anywhere_is_accepted_or_refused_cleanly(path: tuple[Any, ...], value: Any) -> None:
    tree = copy.deepcopy(DEFAULT)
    target = tree
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    text = yaml.safe_dump(tree, allow_unicode=True)
    message = _refused_cleanly(lambda: parse(text, SOURCE))
    if message:
        assert "field" in message or "line" in message, message


keys = st.one_of(st.text(min_size=1, max_size=20), st.integers(), st.booleans(), st.none(),
                 st.floats(allow_nan=False), st.dates())


@FUZZ
@given(key=keys, value=values, where=st.sampled_from([(), ("postgres",), ("postgres", "parameters"), ("nodes", 0)]))
def test_any_extra_key_is_refused_cleanly(key: Any, value: Any, where: tuple[Any, ...]) -> None:
    tree = copy.deepcopy(DEFAULT)
    target = tree
    for part in where:
        target = target[part]
    target[key] = value
    _refused_cleanly(lambda: parse(yaml.safe_dump(tree, allow_unicode=True), SOURCE))


@FUZZ
@given(cut=st.integers(min_value=0, max_value=len(default_yaml())), junk=st.text(max_size=8))
def test_a_damaged_default_file_is_refused_cleanly(cut: int, junk: str) -> None:
    text = default_yaml()
    _refused_cleanly(lambda: parse(text[:cut] + junk + text[cut:], SOURCE))


# Hand-picked hostile files ---------------------------------------------------------------------

BILLION_LAUGHS = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)]
    + ["nodes: *i"]
)

HOSTILE = {
    "alias-bomb": BILLION_LAUGHS,
    "recursive-alias": "nodes: &n [*n]\n",
    "undefined-alias": "nodes: *n\n",
    "deep-lists": "nodes: " + "[" * 5000 + "]" * 5000 + "\n",
    "deep-mappings": "nodes:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 200)),
    "deep-flow-mappings": "name: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",
    "many-nodes": "nodes:\n" + "".join(f"  - {{name: n{i}, address: 192.168.11.{i % 250 + 1}, roles: [postgres]}}\n"
                                       for i in range(2000)),
    "many-small-nodes": "nodes:\n" + "".join(f"  - {{name: n{i}, address: 192.168.11.{i + 1}, roles: [postgres]}}\n"
                                             for i in range(200)),
    "thousands-of-values": "x: [" + ",".join(["1"] * 4900) + "]\n",
    "thousands-of-aliases": "a: &a 1\nb: [" + ",".join(["*a"] * 4000) + "]\n",
    "thousands-of-anchors": "a: [" + ",".join(f"&a{i} 1" for i in range(3000)) + "]\n",
    "long-integer": "name: pglab\nvagrant: {memory: " + "9" * 5000 + "}\n",
    "control-character": default_yaml().replace("name: pglab", "name: pg\x07lab"),
    "escape-sequence-in-name": default_yaml().replace("name: pglab", 'name: "\\e[31mred\\e[0m"'),
    "rich-markup-in-name": default_yaml().replace("name: pglab", "name: '[/bold][red]x'"),
    "python-tag": "name: !!python/object/apply:os.system ['true']\n",
    "binary-tag": "name: !!binary aGVsbG8=\n",
    "set-tag": "nodes: !!set {a, b}\n",
    "timestamp-key": "2001-12-14: x\n",
    "complex-key": "? [a, b]\n: c\n",
    "tabs": "name:\tpglab\n\tnodes: []\n",
    "document-stream": default_yaml() + "---\n" + default_yaml(),
    "only-a-comment": "# nothing\n",
    "lone-surrogate": "name: \"\\uD800\"\n",
    "byte-order-mark": "\ufeff" + default_yaml(),
}


@pytest.mark.parametrize("text", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_text_is_refused_with_one_message(text: str) -> None:
    try:
        topology = parse(text, SOURCE)
    except TopologyError as exc:
        message = str(exc)
        assert message.startswith(SOURCE) and "\n" not in message and message.isprintable(), message
        assert "\x1b" not in message
        return
    assert isinstance(topology, Topology)  # a harmless file (the BOM) is simply read


@pytest.mark.parametrize("data", [
    b"\x00\x01\x02binary",
    b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)),
    "name: caf\u00e9".encode("latin-1"),
    b"\xff\xfe" + "name: pglab".encode("utf-16-le"),
    b"a: 1\n" * (MAX_FILE_BYTES // 5 + 10),
], ids=["nul-bytes", "elf-binary", "latin-1", "utf-16", "too-large"])
def test_hostile_bytes_in_a_file_are_refused(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "pglab.yml"
    path.write_bytes(data)
    message = _refused_cleanly(lambda: load(path), str(path))
    assert message


def test_a_huge_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "pglab.yml"
    with path.open("wb") as out:
        out.truncate(2 * 1024**3)  # sparse: 2 GiB of zeros that take no disk
    assert "larger than" in _refused_cleanly(lambda: load(path), str(path))


@pytest.mark.parametrize("kind", ["directory", "fifo", "device", "nul-in-path"])
def test_something_that_is_not_a_file_is_refused(tmp_path: Path, kind: str) -> None:
    if kind == "directory":
        path = tmp_path
    elif kind == "fifo":
        path = tmp_path / "pipe.yml"
        os.mkfifo(path)  # reading it would block for ever
    elif kind == "device":
        path = Path("/dev/zero")
    else:
        path = tmp_path / "bad\x00name.yml"
    assert _refused_cleanly(lambda: load(path), str(path))
