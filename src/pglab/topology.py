"""The lab's topology: the pydantic model of ``pglab.yml``, its defaults and its error messages.

This module imports nothing else of pglab, so the schema can be read (and tested) on its own.
Every validation failure becomes one :class:`TopologyError` whose text names the file, the line,
the field and the fix, in one paragraph.
"""

from __future__ import annotations

import difflib
import ipaddress
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
    scope: Annotated[str, Field(pattern=NAME_PATTERN)] = "otus"
    parameters: dict[str, str | int | float | bool] = Field(default_factory=dict)


class VagrantSettings(_Strict):
    # A public Debian 12 box; `pglab box build` makes the offline one, pglab/debian12.
    box: str = "debian/bookworm64"
    hypervisor: Literal["libvirt", "virtualbox"] = "libvirt"
    # libvirt only: kvm (hardware virtualization) or qemu (software emulation, where KVM is missing).
    driver: Literal["kvm", "qemu"] = "kvm"
    memory: Annotated[int, Field(ge=512)] = 1024
    cpus: Annotated[int, Field(ge=1)] = 1


class Topology(_Strict):
    name: Annotated[str, Field(pattern=NAME_PATTERN)] = "otus"
    provider: Provider = "local"
    stack: Stack = "patroni"
    dcs: Dcs = "etcd"
    postgres: PostgresSettings = PostgresSettings()
    network: Network = Network()
    ports: Ports = Ports()
    vagrant: VagrantSettings = VagrantSettings()
    nodes: Annotated[list[Node], Field(min_length=1)]

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
        if self.provider == "local" and self.dcs == "consul" and self.stack == "patroni":
            raise _FieldProblem(
                ("dcs",),
                "Consul has no package in the registries this machine reaches, so the local provider "
                "runs etcd; set dcs: etcd (Consul is supported with provider: vagrant)",
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


# Loading ---------------------------------------------------------------------------------------

def load(path: str | Path) -> Topology:
    """Read and validate a topology file, or raise :class:`TopologyError`."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise TopologyError(
            f"{path}: no such file. Run `pglab init` to write the default lab there, "
            "or pass the right file with --file."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise TopologyError(
            f"{path}: cannot be read as a topology ({reason}). Pass a readable UTF-8 YAML file with --file, "
            "or write one with `pglab init`."
        ) from None
    return parse(text, str(path))


def parse(text: str, source: str = DEFAULT_FILE) -> Topology:
    try:
        data = yaml.safe_load(text)
        tree = yaml.compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise TopologyError(
            f"{source}{where}: the file is not valid YAML ({exc.problem or exc}). "
            "Fix the syntax there: check indentation, a missing colon, or an unclosed quote or bracket."
        ) from None
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
    line = _line_of(tree, loc) or 1
    where = f"{source}, line {line}" if line else source
    extra = len(exc.errors()) - 1
    more = f" ({extra} more problem(s) may follow once this one is fixed.)" if extra else ""
    return f"{where}, field {_dotted(loc, data)}: {message}.{more}"


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
        return f"{err['input']!r} is not supported; use one of {expected}"
    if kind == "missing":
        return "is required; add it (see `pglab init` for a complete example)"
    if kind == "string_pattern_mismatch":
        return (f"{err['input']!r} is not a valid name; use lowercase letters, digits and dashes, "
                "starting with a letter (at most 31 characters)")
    if kind in ("ip_v4_address", "ip_v4_network"):
        what = "address such as 192.168.11.120" if kind == "ip_v4_address" else "network such as 192.168.11.0/24"
        return f"{err['input']!r} is not an IPv4 {what}; write it that way"
    if kind == "too_short":
        return "must not be empty; list at least one entry"
    if kind in ("greater_than_equal", "less_than_equal", "int_parsing", "int_type"):
        bound = (err.get("ctx") or {}).get("ge")
        minimum = f" of at least {bound}" if bound is not None else ""
        return f"{err['input']!r} is not accepted; write a whole number{minimum}"
    message = str(err["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    return message if ";" in message else f"{message}; fix the value here"


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
            match = next(((k, v) for k, v in node.value if k.value == part), None)
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

def default_yaml(
    name: str = "otus", stack: Stack = "patroni", provider: Provider = "local", dcs: Dcs = "etcd",
    loopback: str = "127.0.11.0/24",
) -> str:
    """The text ``pglab init`` writes: the seed's lab, commented so it teaches its own schema."""
    if stack == "patroni":
        nodes = [
            ("consul", "192.168.11.100", "dcs", "the DCS (etcd, or Consul on VMs); the seed's name is kept"),
            ("haproxy", "192.168.11.101", "haproxy", "5000 -> leader, 5001 -> replicas, 7000 -> stats"),
            ("pg1", "192.168.11.120", "postgres", "PostgreSQL + Patroni"),
            ("pg2", "192.168.11.121", "postgres", None),
            ("pg3", "192.168.11.122", "postgres", None),
        ]
    else:
        nodes = [
            ("monitor", "192.168.11.151", "monitor", "pg_auto_failover monitor"),
            ("haproxy", "192.168.11.101", "haproxy", "5000 -> primary, 7000 -> stats"),
            ("pg1", "192.168.11.152", "postgres", "PostgreSQL + pg_autoctl keeper"),
            ("pg2", "192.168.11.153", "postgres", None),
        ]
    lines = [
        "# pglab topology: one file describes the lab on every provider.",
        "# provider local: each node is a set of processes on this machine, bound to",
        "#   network.loopback with the same host number (192.168.11.120 -> 127.0.11.120).",
        "# provider vagrant: each node is a VM with its address in network.subnet.",
        f"name: {name}",
        f"provider: {provider}           # local | vagrant",
        f"stack: {stack}            # patroni | pg_auto_failover",
    ]
    if stack == "patroni":
        lines.append(f"dcs: {dcs}                 # etcd | consul (consul only with provider: vagrant)")
    lines += [
        "postgres:",
        "  version: 15",
        "  scope: otus               # the Patroni cluster name",
        "  parameters:               # any postgresql.conf setting, applied cluster-wide",
        "    max_connections: 100",
        "network:",
        "  subnet: 192.168.11.0/24",
        f"  loopback: {loopback}",
        "vagrant:",
        "  box: debian/bookworm64",
        "  hypervisor: libvirt       # libvirt | virtualbox",
        "  memory: 1024",
        "  cpus: 1",
        "nodes:                      # roles: dcs, postgres, haproxy, monitor; a node may hold several",
    ]
    for node_name, address, role, comment in nodes:
        suffix = f"   # {comment}" if comment else ""
        lines += [f"  - name: {node_name}{suffix}", f"    address: {address}", f"    roles: [{role}]"]
    return "\n".join(lines) + "\n"
