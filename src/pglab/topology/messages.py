"""Validation errors as one paragraph each: the file, the line, the field and the fix."""

from __future__ import annotations

import difflib
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from pglab.topology.model import FieldProblem


def codepoint(character: int | str) -> str:
    return f"U+{character if isinstance(character, int) else ord(character):04X}"


def short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def printable(text: str) -> str:
    """One paragraph a terminal shows as written: control characters escaped, never obeyed."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def explain(exc: ValidationError, data: dict[str, Any], tree: yaml.Node | None, source: str,
            model: type[BaseModel]) -> str:
    err = exc.errors(include_url=False)[0]
    ctx_error = (err.get("ctx") or {}).get("error")
    if isinstance(ctx_error, FieldProblem):
        loc, message = ctx_error.loc, ctx_error.message
    else:
        loc, message = tuple(err["loc"]), _message_for(dict(err), data, model)
        if loc[:2] == ("postgres", "parameters") and loc[-1] == "[key]":
            loc, message = loc[:3], "a setting's name must be text, such as max_connections"
        elif loc[:2] == ("postgres", "parameters") and len(loc) > 3:
            # A setting's value failed every member of its union; pydantic names each member.
            loc, message = loc[:3], "a setting's value must be a number, a string, or true/false"
    line = _line_of(tree, loc) or 1
    where = f"{source}, line {line}" if line else source
    extra = len(exc.errors()) - 1
    more = f" ({extra} more problem(s) may follow once this one is fixed.)" if extra else ""
    if err["type"] == "invalid_key":  # the last part names a key, not a list index
        field = ".".join(([_dotted(loc[:-1], data)] if loc[:-1] else []) + [str(loc[-1])])
    else:
        field = _dotted(loc, data)
    return f"{where}, field {field}: {message}.{more}"


def _message_for(err: dict[str, Any], data: dict[str, Any], model: type[BaseModel]) -> str:
    kind = err["type"]
    loc = tuple(err["loc"])
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown key {loc[-1]!r}; {hint}remove it or use one of: {', '.join(allowed)}"
    if kind == "literal_error":
        expected = err["ctx"]["expected"]
        return f"{short(repr(err['input']))} is not supported; use one of {expected}"
    if kind == "missing":
        return "is required; add it (see `pglab init` for a complete example)"
    if kind == "string_pattern_mismatch":
        return (f"{short(repr(err['input']))} is not a valid name; use lowercase letters, digits and dashes, "
                "starting with a letter (at most 31 characters)")
    if kind in ("ip_v4_address", "ip_v4_network"):
        what = "address such as 192.168.11.120" if kind == "ip_v4_address" else "network such as 192.168.11.0/24"
        return f"{short(repr(err['input']))} is not an IPv4 {what}; write it that way"
    if kind == "invalid_key":  # a key YAML read as a number, a date ...: no field has such a name
        names = ", ".join(_allowed_keys(model, loc[:-1]))
        return f"unknown key {short(str(loc[-1]), 40)!r}; remove it or use one of: {names}"
    if kind == "too_short":
        return "must not be empty; list at least one entry"
    if kind == "too_long":
        return f"lists {err['ctx']['actual_length']} entries; at most {err['ctx']['max_length']} are allowed"
    if kind in ("greater_than_equal", "less_than_equal", "int_parsing", "int_type", "int_from_float",
                "finite_number"):
        ctx = err.get("ctx") or {}
        bounds = [f"at least {ctx['ge']}" if "ge" in ctx else "", f"at most {ctx['le']}" if "le" in ctx else ""]
        bound = " and ".join(b for b in bounds if b)
        return f"{short(repr(err['input']))} is not accepted; write a whole number{' ' + bound if bound else ''}"
    wanted = {"string_type": "a text value", "list_type": "a list, such as [a, b]",
              "model_type": "a mapping of keys (see `pglab init`)", "dict_type": "a mapping of keys",
              "model_attributes_type": "a mapping of keys (see `pglab init`)"}.get(kind)
    if wanted:
        return f"is {_yaml_kind(err['input'])}; write {wanted} here"
    message = str(err["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    return message if ";" in message else f"{message}; fix the value here"


def _yaml_kind(value: Any) -> str:
    if value is None:
        return "empty"
    kinds = {bool: "true/false", int: "a number", float: "a number", str: "text", list: "a list", dict: "a mapping"}
    return next((f"{name} ({short(repr(value), 40)})" if name in ("a number", "text", "true/false") else name
                 for kind, name in kinds.items() if isinstance(value, kind)), f"a {type(value).__name__}")


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    for part in loc:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[part].annotation
        inner = getattr(annotation, "__args__", (annotation,))
        model = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), model)
    return list(model.model_fields)


def _dotted(loc: tuple[Any, ...], data: dict[str, Any]) -> str:
    out = ""
    node: Any = data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and "name" in node:
                out += f" ({node['name']})"
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out or "(top level)"


def _line_of(tree: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the deepest YAML node along ``loc`` (keys point at their key)."""
    node = tree
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if match is None:
                break
            line = match[0].start_mark.line + 1
            node = match[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line
