"""The lab's topology: the pydantic model of ``pglab.yml``, its defaults and its error messages.

This module imports nothing else of pglab, so the schema can be read (and tested) on its own.
Every validation failure becomes one :class:`TopologyError` whose text names the file, the line,
the field and the fix, in one paragraph.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import stat
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Role = Literal["dcs", "postgres", "haproxy", "monitor"]
Stack = Literal["patroni", "pg_auto_failover"]
Provider = Literal["local", "vagrant"]
Dcs = Literal["etcd", "consul"]

NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}$"
DEFAULT_FILE = "pglab.yml"

# Bounds far above any real lab, so that a hostile or broken file is refused before it costs time.
MAX_FILE_BYTES = 64 * 1024
MAX_YAML_DEPTH = 16  # nodes[i].roles[j] is four levels deep
MAX_YAML_VALUES = 2000  # every scalar and collection, counting each alias as what it expands to
MAX_NODES = 64
# libyaml's parser when PyYAML has it (the usual wheels do): twenty times faster than pure Python.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class TopologyError(ValueError):
    """A topology that cannot be used; ``str()`` is the whole user-facing message."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Node(_Strict):
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    address: ipaddress.IPv4Address
    roles: Annotated[list[Role], Field(min_length=1)]

    @field_validator("roles")
    @classmethod
    def _no_repeated_roles(cls, roles: list[Role]) -> list[Role]:
        repeated = sorted(r for r, n in Counter(roles).items() if n > 1)
        if repeated:
            raise ValueError(f"role {repeated[0]!r} is listed twice; list each role once")
        return roles


class Ports(_Strict):
    """TCP ports, the same on every node; the local provider keeps them by giving every node
    its own loopback address."""

    postgres: int = 5432
    patroni: int = 8008
    etcd: int = 2379
    etcd_peer: int = 2380
    consul: int = 8500
    haproxy_primary: int = 5000
    haproxy_replicas: int = 5001
    haproxy_stats: int = 7000
    monitor: int = 5431

    @model_validator(mode="after")
    def _ports_distinct_and_valid(self) -> Ports:
        values = self.model_dump()
        for field, port in values.items():
            if not 1024 <= port <= 65535:
                raise _FieldProblem(
                    ("ports", field),
                    f"ports.{field} is {port}; use a port between 1024 and 65535 so no root "
                    "privilege is needed to bind it"
                )
        clashes = [p for p, n in Counter(values.values()).items() if n > 1]
        if clashes:
            names = [f for f, p in values.items() if p == clashes[0]]
            raise _FieldProblem(("ports", names[-1]),
                                f"ports {', '.join(names)} are all {clashes[0]}; give each its own port")
        return self


class Network(_Strict):
    subnet: ipaddress.IPv4Network = ipaddress.IPv4Network("192.168.11.0/24")
    # The local provider puts each node at the same host number inside this loopback network.
    loopback: ipaddress.IPv4Network = ipaddress.IPv4Network("127.0.11.0/24")

    @field_validator("loopback")
    @classmethod
    def _inside_loopback(cls, net: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        if not net.subnet_of(ipaddress.IPv4Network("127.0.0.0/8")):
            raise ValueError(f"{net} is not inside 127.0.0.0/8; use a loopback network such as 127.0.11.0/24")
        return net


class PostgresSettings(_Strict):
    version: Literal[15] = 15
    scope: Annotated[str, Field(pattern=NAME_PATTERN)] = "pglab"
    parameters: dict[str, str | int | float | bool] = Field(default_factory=dict)


class PatroniSettings(_Strict):
    """Patroni's dynamic configuration knobs: set at bootstrap, converged by every `pglab up`."""

    ttl: Annotated[int, Field(ge=20)] = 20  # Patroni 4 refuses less
    loop_wait: Annotated[int, Field(ge=1)] = 2
    retry_timeout: Annotated[int, Field(ge=1)] = 5
    maximum_lag_on_failover: Annotated[int, Field(ge=0)] = 1048576
    synchronous_mode: bool = False
    synchronous_mode_strict: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> PatroniSettings:
        if self.loop_wait + 2 * self.retry_timeout > self.ttl:
            raise _FieldProblem(
                ("patroni", "ttl"),
                f"ttl {self.ttl} is shorter than loop_wait + 2 x retry_timeout "
                f"({self.loop_wait} + 2 x {self.retry_timeout}), so a healthy leader could lose its lock; "
                f"raise ttl to at least {self.loop_wait + 2 * self.retry_timeout} or lower the other two",
            )
        if self.synchronous_mode_strict and not self.synchronous_mode:
            raise _FieldProblem(("patroni", "synchronous_mode_strict"),
                                "synchronous_mode_strict only applies with synchronous_mode: true; "
                                "set synchronous_mode: true too, or remove synchronous_mode_strict")
        return self

    def dynamic(self) -> dict[str, Any]:
        """The settings in Patroni's own words (its /config keys)."""
        return self.model_dump()


class VagrantSettings(_Strict):
    # A public Debian 12 box; `pglab box build` makes the offline one, pglab/debian12.
    box: str = "debian/bookworm64"
    hypervisor: Literal["libvirt", "virtualbox"] = "libvirt"
    # libvirt only: kvm (hardware virtualization) or qemu (software emulation, where KVM is missing).
    driver: Literal["kvm", "qemu"] = "kvm"
    memory: Annotated[int, Field(ge=512, le=1024 * 1024)] = 1024
    cpus: Annotated[int, Field(ge=1, le=256)] = 1


class PgAutoFailoverSettings(_Strict):
    """stack pg_auto_failover: the formation the data nodes join and how it replicates."""

    formation: Annotated[str, Field(pattern=NAME_PATTERN)] = "default"
    # Standbys that must acknowledge each commit (pg_auto_failover's number_sync_standbys).
    number_sync_standbys: Annotated[int, Field(ge=0)] = 0
    # Data node name -> candidate priority (0 never promoted .. 100); unlisted nodes keep 50.
    candidate_priorities: dict[str, Annotated[int, Field(ge=0, le=100)]] = Field(default_factory=dict)


class Topology(_Strict):
    name: Annotated[str, Field(pattern=NAME_PATTERN)] = "pglab"
    provider: Provider = "local"
    stack: Stack = "patroni"
    dcs: Dcs = "etcd"
    # TLS on every connection (PostgreSQL, replication, REST API, etcd, monitor), with the lab's
    # own CA; false keeps the plaintext lab.
    tls: bool = True
    postgres: PostgresSettings = PostgresSettings()
    patroni: PatroniSettings = PatroniSettings()
    network: Network = Network()
    ports: Ports = Ports()
    vagrant: VagrantSettings = VagrantSettings()
    pg_auto_failover: PgAutoFailoverSettings = PgAutoFailoverSettings()
    nodes: Annotated[list[Node], Field(min_length=1, max_length=MAX_NODES)]

    @model_validator(mode="after")
    def _check_lab(self) -> Topology:
        _check_unique(self.nodes)
        for i, node in enumerate(self.nodes):
            if node.address not in self.network.subnet or node.address in (
                self.network.subnet.network_address,
                self.network.subnet.broadcast_address,
            ):
                raise _FieldProblem(
                    ("nodes", i, "address"),
                    f"{node.address} is not a host address of network.subnet {self.network.subnet}; "
                    f"pick a free address inside {self.network.subnet} or widen network.subnet",
                )
            offset = int(node.address) - int(self.network.subnet.network_address)
            if offset >= self.network.loopback.num_addresses - 1:
                raise _FieldProblem(
                    ("nodes", i, "address"),
                    f"host number {offset} does not fit in network.loopback {self.network.loopback}; "
                    "use a smaller address or a larger loopback network",
                )
        _check_roles(self)
        if self.stack != "patroni" and "patroni" in self.model_fields_set:
            raise _FieldProblem(("patroni",), f"the patroni section applies to stack patroni, not {self.stack}; "
                                "remove it or set stack: patroni")
        if self.provider == "local" and self.dcs == "consul" and self.stack == "patroni":
            raise _FieldProblem(
                ("dcs",),
                "the local provider runs etcd only (Debian 12 packages no Consul); set dcs: etcd, "
                "or use Consul with provider: vagrant",
            )
        return self

    # Derived views used by rendering and providers -------------------------------------------
    def with_role(self, role: Role) -> list[Node]:
        return [n for n in self.nodes if role in n.roles]

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node named {name!r} in lab {self.name!r}; nodes are: "
                       + ", ".join(n.name for n in self.nodes))

    def loopback_address(self, node: Node) -> ipaddress.IPv4Address:
        """The node's address on the local provider: same host number, loopback network."""
        offset = int(node.address) - int(self.network.subnet.network_address)
        return self.network.loopback.network_address + offset


class _FieldProblem(ValueError):
    """Raised inside validators to point the message at a precise field."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


def _check_unique(nodes: list[Node]) -> None:
    seen_names: dict[str, int] = {}
    seen_addresses: dict[ipaddress.IPv4Address, int] = {}
    for i, node in enumerate(nodes):
        if node.name in seen_names:
            raise _FieldProblem(
                ("nodes", i, "name"),
                f"node name {node.name!r} is already used by nodes[{seen_names[node.name]}]; "
                "give every node its own name",
            )
        if node.address in seen_addresses:
            raise _FieldProblem(
                ("nodes", i, "address"),
                f"address {node.address} is already used by nodes[{seen_addresses[node.address]}] "
                f"({nodes[seen_addresses[node.address]].name}); give every node its own address "
                "(roles can share a node: list them under one node's roles instead)",
            )
        seen_names[node.name] = i
        seen_addresses[node.address] = i


def _check_roles(topo: Topology) -> None:
    postgres = topo.with_role("postgres")
    if not postgres:
        raise _FieldProblem(
            ("nodes",),
            "no node has the role postgres; add `postgres` to the roles of at least one node "
            "(three make a proper HA lab)",
        )
    for i, node in enumerate(topo.nodes):
        if topo.stack == "patroni" and "monitor" in node.roles:
            raise _FieldProblem(
                ("nodes", i, "roles"),
                "role monitor belongs to stack pg_auto_failover; remove it or set stack: pg_auto_failover",
            )
        if topo.stack == "pg_auto_failover" and "dcs" in node.roles:
            raise _FieldProblem(
                ("nodes", i, "roles"),
                "pg_auto_failover keeps its state in its monitor, not in a DCS; replace role dcs "
                "with monitor, or set stack: patroni",
            )
        if topo.stack == "pg_auto_failover" and "haproxy" in node.roles:
            raise _FieldProblem(
                ("nodes", i, "roles"),
                "pg_auto_failover clients reach the primary through the formation's multi-host URI "
                "(target_session_attrs=read-write), not HAProxy; remove role haproxy, or set stack: patroni",
            )
        if "monitor" in node.roles and "postgres" in node.roles:
            raise _FieldProblem(
                ("nodes", i, "roles"),
                "the pg_auto_failover monitor must not share a node with a data node it watches; "
                "put monitor on a node of its own",
            )
    if topo.stack == "patroni" and not topo.with_role("dcs"):
        raise _FieldProblem(
            ("nodes",),
            "stack patroni needs a node with the role dcs (it runs etcd or Consul); "
            "add `dcs` to a node's roles",
        )
    if topo.stack == "pg_auto_failover" and len(topo.with_role("monitor")) != 1:
        raise _FieldProblem(
            ("nodes",),
            "stack pg_auto_failover needs exactly one node with the role monitor",
        )
    if topo.stack == "pg_auto_failover":
        _check_pg_auto_failover(topo)


def _check_pg_auto_failover(topo: Topology) -> None:
    data_nodes = [n.name for n in topo.with_role("postgres")]
    settings = topo.pg_auto_failover
    for name in settings.candidate_priorities:
        if name not in data_nodes:
            raise _FieldProblem(
                ("pg_auto_failover", "candidate_priorities", name),
                f"{name!r} is not a data node; list only nodes with the role postgres "
                f"({', '.join(data_nodes)})",
            )
    if settings.number_sync_standbys > max(len(data_nodes) - 2, 0):
        raise _FieldProblem(
            ("pg_auto_failover", "number_sync_standbys"),
            f"{settings.number_sync_standbys} synchronous standbys need at least "
            f"{settings.number_sync_standbys + 2} data nodes (pg_auto_failover keeps one standby spare so "
            f"writes go on when a standby is lost); lower it or add data nodes",
        )
    if len(data_nodes) > 1 and not any(settings.candidate_priorities.get(n, 50) > 0 for n in data_nodes):
        raise _FieldProblem(
            ("pg_auto_failover", "candidate_priorities"),
            "every data node has candidate priority 0, so none could ever be promoted; give at least "
            "one a priority above 0",
        )


# Loading ---------------------------------------------------------------------------------------

def load(path: str | Path) -> Topology:
    """Read and validate a topology file, or raise :class:`TopologyError`."""
    path = Path(path)
    fix = "Pass a topology YAML with --file, or write one with `pglab init`."
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise TopologyError(_printable(f"{path}: is {kind}, not a topology file. {fix}"))
        with path.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise TopologyError(_printable(
            f"{path}: no such file. Run `pglab init` to write the default lab there, "
            "or pass the right file with --file."
        )) from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise TopologyError(_printable(f"{path}: cannot be read as a topology ({reason}). {fix}")) from None
    return parse_bytes(data, str(path))


def parse_bytes(data: bytes, source: str = DEFAULT_FILE) -> Topology:
    """Validate a topology file's raw content: UTF-8 text of a sane size, then :func:`parse`."""
    if len(data) > MAX_FILE_BYTES:
        raise TopologyError(_printable(
            f"{source}: is larger than {MAX_FILE_BYTES // 1024} KiB, far more than any topology needs; "
            "check that --file names the lab's YAML (`pglab init` writes a complete one in 2 KiB)."
        ))
    nul = data.find(b"\0")
    if nul >= 0:
        raise TopologyError(_printable(
            f"{source}: holds binary data (a NUL byte at offset {nul}), not YAML text; "
            "check that --file names the lab's YAML, or write one with `pglab init`."
        ))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TopologyError(_printable(
            f"{source}: is not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start}); "
            "save it as UTF-8, or write one with `pglab init`."
        )) from None
    return parse(text, source)


def parse(text: str, source: str = DEFAULT_FILE) -> Topology:
    """Validate topology text, or raise :class:`TopologyError` with one printable paragraph.

    The text is measured first (size, nesting, alias expansion) on PyYAML's event stream, which
    needs no recursion, so no input can make pglab spend more than a moment on it.
    """
    try:
        return _parse(text, source)
    except TopologyError as exc:
        raise TopologyError(_printable(str(exc))) from None
    except (ValueError, TypeError, RecursionError, MemoryError) as exc:  # a last guard: never a traceback
        raise TopologyError(_printable(
            f"{source}: cannot be used as a topology ({type(exc).__name__}: {_short(str(exc))}); "
            "compare it with what `pglab init` writes."
        )) from None


def _parse(text: str, source: str) -> Topology:
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
            f"{source}, line {line}: the character {_codepoint(exc.character)} is not allowed in YAML; "
            "remove it (control characters cannot appear in a topology file)."
        ) from None
    except yaml.YAMLError as exc:
        raise TopologyError(f"{source}: the file is not valid YAML ({_short(str(exc))}); "
                            "compare it with what `pglab init` writes.") from None
    except ValueError as exc:  # e.g. an integer longer than Python converts
        raise TopologyError(f"{source}: a value cannot be read ({_short(str(exc))}); "
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
        return Topology.model_validate(data)
    except ValidationError as exc:
        raise TopologyError(_explain(exc, data, tree, source)) from None


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


def _codepoint(character: int | str) -> str:
    return f"U+{character if isinstance(character, int) else ord(character):04X}"


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _printable(text: str) -> str:
    """One paragraph a terminal shows as written: control characters escaped, never obeyed."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


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


def _explain(exc: ValidationError, data: dict[str, Any], tree: yaml.Node | None, source: str) -> str:
    err = exc.errors(include_url=False)[0]
    ctx_error = (err.get("ctx") or {}).get("error")
    if isinstance(ctx_error, _FieldProblem):
        loc, message = ctx_error.loc, ctx_error.message
    else:
        loc, message = tuple(err["loc"]), _message_for(err, data)
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


def _message_for(err: dict[str, Any], data: dict[str, Any]) -> str:
    kind = err["type"]
    loc = tuple(err["loc"])
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown key {loc[-1]!r}; {hint}remove it or use one of: {', '.join(allowed)}"
    if kind == "literal_error":
        expected = err["ctx"]["expected"]
        return f"{_short(repr(err['input']))} is not supported; use one of {expected}"
    if kind == "missing":
        return "is required; add it (see `pglab init` for a complete example)"
    if kind == "string_pattern_mismatch":
        return (f"{_short(repr(err['input']))} is not a valid name; use lowercase letters, digits and dashes, "
                "starting with a letter (at most 31 characters)")
    if kind in ("ip_v4_address", "ip_v4_network"):
        what = "address such as 192.168.11.120" if kind == "ip_v4_address" else "network such as 192.168.11.0/24"
        return f"{_short(repr(err['input']))} is not an IPv4 {what}; write it that way"
    if kind == "invalid_key":  # a key YAML read as a number, a date ...: no field has such a name
        allowed = ", ".join(_allowed_keys(loc[:-1]))
        return f"unknown key {_short(str(loc[-1]), 40)!r}; remove it or use one of: {allowed}"
    if kind == "too_short":
        return "must not be empty; list at least one entry"
    if kind == "too_long":
        return f"lists {err['ctx']['actual_length']} entries; at most {err['ctx']['max_length']} are allowed"
    if kind in ("greater_than_equal", "less_than_equal", "int_parsing", "int_type", "int_from_float",
                "finite_number"):
        ctx = err.get("ctx") or {}
        bounds = [f"at least {ctx['ge']}" if "ge" in ctx else "", f"at most {ctx['le']}" if "le" in ctx else ""]
        bound = " and ".join(b for b in bounds if b)
        return f"{_short(repr(err['input']))} is not accepted; write a whole number{' ' + bound if bound else ''}"
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
    return next((f"{name} ({_short(repr(value), 40)})" if name in ("a number", "text", "true/false") else name
                 for kind, name in kinds.items() if isinstance(value, kind)), f"a {type(value).__name__}")


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = Topology
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


# The default lab -----------------------------------------------------------------------------
# What `pglab init` writes: every value comes from the model's defaults above, except the lab's
# own choices below (its nodes, an example parameter); the comments teach the schema.

DEFAULT_NODES: dict[str, list[tuple[str, str, Role, str | None]]] = {
    "patroni": [
        ("dcs", "192.168.11.100", "dcs", "the DCS: etcd, or Consul on VMs"),
        ("haproxy", "192.168.11.101", "haproxy", "5000 -> leader, 5001 -> replicas, 7000 -> stats"),
        ("pg1", "192.168.11.120", "postgres", "PostgreSQL + Patroni"),
        ("pg2", "192.168.11.121", "postgres", None),
        ("pg3", "192.168.11.122", "postgres", None),
    ],
    "pg_auto_failover": [
        ("monitor", "192.168.11.151", "monitor", "the pg_auto_failover monitor (port ports.monitor, 5431)"),
        ("pg1", "192.168.11.152", "postgres", "PostgreSQL + its pg_autoctl keeper"),
        ("pg2", "192.168.11.153", "postgres", "add pg3 (192.168.11.154) for a third data node"),
    ],
}
EXAMPLE_PARAMETERS: dict[str, str | int | float | bool] = {"max_connections": 100}
_COMMENTS = {
    "provider": "local | vagrant",
    "stack": "patroni | pg_auto_failover",
    "dcs": "etcd | consul (consul only with provider: vagrant)",
    "tls": "TLS on every connection, with the lab's own CA (false: plaintext)",
    "postgres.scope": "the cluster name (as `pglab status` and `patronictl list` show it)",
    "postgres.parameters": "any postgresql.conf setting, applied cluster-wide",
    "patroni": "Patroni's dynamic configuration; `pglab up` applies changes",
    "patroni.ttl": "seconds before a silent leader loses its lock (>= 20)",
    "patroni.maximum_lag_on_failover": "bytes a replica may lag and still be promoted",
    "patroni.synchronous_mode": "true: a commit waits for a replica; no acknowledged write lost",
    "vagrant.hypervisor": "libvirt | virtualbox",
    "pg_auto_failover.number_sync_standbys": "standbys that must confirm each commit (<= data nodes - 2)",
    "pg_auto_failover.candidate_priorities": "e.g. {pg1: 50, pg2: 50}; 0 = never promoted, default 50",
    "nodes": "roles: dcs, postgres, haproxy, monitor; a node may hold several",
}
_HEADER = [
    "# pglab topology: one file describes the lab on every provider.",
    "# provider local: each node is a set of processes on this machine, bound to",
    "#   network.loopback with the same host number (192.168.11.120 -> 127.0.11.120).",
    "# provider vagrant: each node is a VM with its address in network.subnet.",
]


def _default(model: type[BaseModel], field: str) -> Any:
    return model.model_fields[field].get_default(call_default_factory=True)


def default_yaml(
    name: str | None = None, stack: Stack | None = None, provider: Provider | None = None, dcs: Dcs | None = None,
    loopback: str | None = None,
) -> str:
    """The text ``pglab init`` writes: the classic HA lab, commented so it teaches its own schema.
    Arguments left out take the model's defaults.

    The values are written as YAML scalars whatever they hold, so a bad ``name`` is refused by
    :func:`parse` with the usual message instead of changing the file's structure."""
    name = name if name is not None else _default(Topology, "name")
    stack = stack or _default(Topology, "stack")
    provider = provider or _default(Topology, "provider")
    dcs = dcs or _default(Topology, "dcs")
    postgres = PostgresSettings().model_dump(mode="json")
    values: dict[str, Any] = {
        "name": name, "provider": provider, "stack": stack,
        **({"dcs": dcs} if stack == "patroni" else {}),
        "tls": _default(Topology, "tls"),
        "postgres": {"version": postgres["version"], "scope": name, "parameters": EXAMPLE_PARAMETERS},
        **({"patroni": PatroniSettings().model_dump(mode="json")} if stack == "patroni" else {}),
        "network": {**Network().model_dump(mode="json"), **({"loopback": loopback} if loopback else {})},
        "vagrant": VagrantSettings().model_dump(mode="json"),
        **({"pg_auto_failover": PgAutoFailoverSettings().model_dump(mode="json")}
           if stack == "pg_auto_failover" else {}),
    }
    lines = list(_HEADER)
    for key, value in values.items():
        if isinstance(value, dict):
            lines.append(_line(key, None, key))
            for inner, inner_value in value.items():
                if isinstance(inner_value, dict) and inner_value:
                    lines.append(_line(f"  {inner}", None, f"{key}.{inner}"))
                    lines += [_line(f"    {k}", v, "") for k, v in inner_value.items()]
                else:
                    lines.append(_line(f"  {inner}", inner_value, f"{key}.{inner}"))
        else:
            lines.append(_line(key, value, key))
    lines.append(_line("nodes", None, "nodes"))
    for node_name, address, role, comment in DEFAULT_NODES[stack]:
        lines.append(f"  - name: {_scalar(node_name)}" + (f"   # {comment}" if comment else ""))
        lines += [f"    address: {_scalar(address)}", f"    roles: [{role}]"]
    return "\n".join(lines) + "\n"


def _line(key: str, value: Any, path: str) -> str:
    text = f"{key}:" + ("" if value is None else f" {_scalar(value)}")
    comment = _COMMENTS.get(path)
    return f"{text:<27} # {comment}" if comment else text


def _scalar(value: Any) -> str:
    """``value`` as one YAML scalar on one line: plain when that reads back the same, else quoted."""
    if isinstance(value, bool) or not isinstance(value, str):
        return yaml.safe_dump(value, default_flow_style=True).split("\n")[0]
    plain = bool(value) and all(c.isalnum() or c in "-_./" for c in value) and value.isascii()
    return value if plain and yaml.safe_load(value) == value else json.dumps(value)
