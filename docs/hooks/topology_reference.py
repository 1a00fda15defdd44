"""MkDocs hook: the reference of ``pglab.yml``, generated from pglab's pydantic model at build time.

The page ``reference/topology.md`` holds a marker; this hook replaces it with one table per section
of the topology (every field, its type, default and description), so the reference cannot drift
from the model. A field's description is, in this order: the model's own ``description``, a note
below (``NOTES``, for fields the model leaves undescribed), or the comment beside or above the
field in its source.
"""

from __future__ import annotations

import enum
import inspect
import ipaddress
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

MARKER = "<!-- topology-fields -->"

# Descriptions of fields the model does not describe itself, by dotted path ("nodes[]" is each node).
NOTES: dict[str, str] = {
    "name": "The lab's name: its directory `.pglab/<name>/`, its supervisord, its VM and network names.",
    "provider": "What makes the machines: `local` runs every node as processes on a loopback address, "
                "`vagrant` makes one VM per node, `podman` one systemd container per node, `hosts` uses existing "
                "Debian 12 servers.",
    "stack": "The HA stack: `patroni` (DCS + Patroni + HAProxy) or `pg_auto_failover` (a monitor and keepers).",
    "dcs": "Where Patroni keeps the cluster's state; `consul` only with `provider: vagrant`.",
    "postgres": "PostgreSQL itself, for every stack.",
    "network": "Addresses: the nodes' subnet, and the loopback network the local provider maps it onto.",
    "ports": "TCP ports, the same on every node.",
    "vagrant": "VM settings of the vagrant provider: only in a lab with `provider: vagrant` (a local lab's is "
               "ignored with a one-line warning).",
    "podman": "Container settings of the podman provider: only in a lab with `provider: podman`.",
    "hosts": "How the hosts provider reaches the existing servers at the nodes' addresses (SSH user, key, "
             "port, sudo): only in a lab with `provider: hosts`.",
    "local": "Settings of the local provider: only in a lab with `provider: local` (a vagrant lab's is ignored "
             "with a one-line warning).",
    "backup": "Backups and point-in-time restore (pgBackRest); a topology without this section has none.",
    "pooler": "PgBouncer on every data node, in the clients' path (labs with `tls: true`); off unless "
              "`enabled: true`.",
    "nodes": "The machines of the lab; roles may share a node (a compact lab).",
    "patroni": "Patroni's dynamic configuration (stack `patroni` only).",
    "pg_auto_failover": "The formation and how it replicates (stack `pg_auto_failover` only).",
    "nodes[].name": "The node's name, used by every command (`pglab stop pg1`).",
    "nodes[].address": "The node's address inside `network.subnet`; the local provider binds the same host "
                       "number inside `network.loopback`.",
    "nodes[].roles": "What runs on the node; each role listed once.",
    "postgres.version": "The PostgreSQL major version.",
    "postgres.scope": "The cluster's name: Patroni's scope, the pgBackRest stanza.",
    "postgres.parameters": "PostgreSQL settings applied cluster-wide by `pglab up` "
                           "(`pglab config set` changes them on a running lab).",
    "network.subnet": "The network the nodes' addresses live in (the VMs' network on the vagrant provider).",
    "ports.postgres": "PostgreSQL.",
    "ports.patroni": "Patroni's REST API.",
    "ports.etcd": "etcd's clients.",
    "ports.etcd_peer": "etcd's peers.",
    "ports.consul": "Consul's HTTPS API (VMs).",
    "ports.haproxy_primary": "HAProxy's writes listener: it routes to the leader.",
    "ports.haproxy_replicas": "HAProxy's reads listener: it routes to the replicas.",
    "ports.haproxy_stats": "HAProxy's stats page.",
    "ports.haproxy_primary_direct": "With the pooler on: HAProxy's writes listener straight to the leader's "
                                    "PostgreSQL.",
    "ports.haproxy_replicas_direct": "With the pooler on: HAProxy's reads listener straight to the replicas' "
                                     "PostgreSQL.",
    "ports.monitor": "The pg_auto_failover monitor's PostgreSQL.",
    "ports.pgbackrest": "pgBackRest's TLS server, on the repository node and on every data node.",
    "ports.pooler": "PgBouncer, on every data node (TLS only).",
    "pooler.default_pool_size": "Server connections PgBouncer keeps per database and user.",
    "pooler.max_client_conn": "Client connections PgBouncer accepts.",
    "vagrant.box": "The Vagrant box every VM is made from; `pglab box build` makes the offline `pglab/debian12`.",
    "vagrant.hypervisor": "The Vagrant provider plugin that runs the VMs.",
    "vagrant.memory": "Memory of each VM, MB.",
    "vagrant.cpus": "CPUs of each VM.",
    "podman.image": "The image every container is made from; `pglab box build --format oci` makes the offline "
                    "`localhost/pglab/debian12` from the VM box's recipe.",
    "backup.enabled": "Whether the lab has backups; the section's default is on, a lab without the section "
                      "has none.",
    "backup.tool": "The backup tool.",
    "backup.compression": "pgBackRest's compress-type for backups and archived WAL.",
    "patroni.ttl": "Seconds a silent leader keeps its lock: roughly the write outage when a leader crashes or "
                   "hangs. At least 20 (Patroni 4 refuses less) and at least `loop_wait + 2 x retry_timeout`.",
    "patroni.loop_wait": "Seconds between two runs of Patroni's HA loop.",
    "patroni.retry_timeout": "How long a leader that cannot reach the DCS keeps writing before it demotes itself.",
    "patroni.maximum_lag_on_failover": "Bytes a replica may lag and still be promoted.",
    "patroni.synchronous_mode": "A commit returns once a synchronous replica has it: no acknowledged write is "
                                "lost on failover.",
    "patroni.synchronous_mode_strict": "With no synchronous replica left, writes stop rather than going "
                                       "asynchronous (needs `synchronous_mode: true`).",
    "pg_auto_failover.formation": "The formation the data nodes join.",
}


@dataclass(frozen=True)
class Row:
    key: str
    type: str
    default: str
    description: str


@dataclass(frozen=True)
class Section:
    path: str  # "" for the top level, "nodes[]" for each node
    doc: str
    rows: tuple[Row, ...]


def topology_model() -> type[BaseModel]:
    """The whole topology model: the leaf model completed by the registered stacks, providers and
    components."""
    from pglab import catalog

    return catalog.schema()


def sections(model: type[BaseModel] | None = None) -> list[Section]:
    """Every section of the topology, the top level first, each followed by its own subsections."""
    return list(_walk(model or topology_model(), ""))


def unused_notes(model: type[BaseModel] | None = None) -> list[str]:
    """Notes that name no field, or a field the model now describes itself: delete them."""
    model = model or topology_model()
    described = {path for path, info in _fields(model, "") if not info.description}
    return sorted(set(NOTES) - described)


def render(model: type[BaseModel] | None = None) -> str:
    out: list[str] = []
    for section in sections(model):
        if section.path:
            out += [f"### `{section.path}`", ""]
        if section.doc:
            out += [section.doc, ""]
        out += ["| key | type | default | description |", "|---|---|---|---|"]
        out += [f"| `{r.key}` | {_cell(r.type)} | {_cell(r.default)} | {_cell(r.description)} |"
                for r in section.rows]
        out.append("")
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return markdown.replace(MARKER, render()) if MARKER in markdown else markdown


# Walking the model -------------------------------------------------------------------------------

def _walk(model: type[BaseModel], path: str) -> Iterator[Section]:
    rows, children = [], []
    for name, info in model.model_fields.items():
        full = f"{path}.{name}" if path else name
        rows.append(Row(name, _type_text(info.annotation, info.metadata, full), _default_text(info),
                        _description(model, name, info, full)))
        child = _section_model(info.annotation)
        if child is not None:
            children.append((child, full + ("[]" if typing.get_origin(info.annotation) is list else "")))
    yield Section(path, _doc(model) if path else "", tuple(rows))
    for child, child_path in children:
        yield from _walk(child, child_path)


def _fields(model: type[BaseModel], path: str) -> Iterator[tuple[str, FieldInfo]]:
    for name, info in model.model_fields.items():
        full = f"{path}.{name}" if path else name
        yield full, info
        child = _section_model(info.annotation)
        if child is not None:
            yield from _fields(child, full + ("[]" if typing.get_origin(info.annotation) is list else ""))


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The model of a section field: a model, a list of models, or an optional model."""
    if _is_model(annotation):
        return typing.cast(type[BaseModel], annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list and _is_model(args[0]):
        return typing.cast(type[BaseModel], args[0])
    if origin in (typing.Union, types.UnionType):
        models = [a for a in args if _is_model(a)]
        return typing.cast(type[BaseModel], models[0]) if len(models) == 1 else None
    return None


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _doc(model: type[BaseModel]) -> str:
    """The section's own docstring (a model built at run time takes its namesake base's), not one it
    inherits from a general base class."""
    for klass in model.__mro__:
        if klass.__name__ == model.__name__ and klass.__dict__.get("__doc__"):
            doc = " ".join(inspect.cleandoc(klass.__doc__ or "").split())
            # reStructuredText roles and literals read as code on the page.
            return re.sub(r":\w+:`~?([^`]+)`", r"`\1`", doc).replace("``", "`")
    return ""


# Types -------------------------------------------------------------------------------------------

def _type_text(annotation: Any, metadata: list[Any], path: str) -> str:
    text = _type_name(annotation, path)
    limits = _limits(metadata)
    return f"{text} ({limits})" if limits else text


def _type_name(annotation: Any, path: str) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        inner = _type_name(args[0], path)
        limits = _limits([m for a in args[1:] for m in (a.metadata if isinstance(a, FieldInfo) else [a])])
        return f"{inner} ({limits})" if limits else inner
    if origin is typing.Literal:
        return "one of " + ", ".join(f"`{_value(a)}`" for a in args) if len(args) > 1 else f"`{_value(args[0])}`"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a, path) for a in args)
    if origin is list and typing.get_origin(args[0]) is typing.Literal:
        return "list of " + ", ".join(f"`{_value(a)}`" for a in typing.get_args(args[0]))
    if origin is list:
        return f"list of {_type_name(args[0], path)}"
    if origin is dict:
        return f"mapping of {_type_name(args[0], path)} to {_type_name(args[1], path)}"
    if _is_model(annotation):
        anchor = re.sub(r"[^\w-]", "", path.lower())  # the slug of the section's heading
        return f"[section](#{anchor})"
    simple = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null",
              ipaddress.IPv4Address: "IPv4 address", ipaddress.IPv4Network: "IPv4 network"}
    if annotation in simple:
        return simple[annotation]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of " + ", ".join(f"`{m.value}`" for m in annotation)
    return f"`{getattr(annotation, '__name__', annotation)}`"


def _limits(metadata: list[Any]) -> str:
    bounds: dict[str, Any] = {}
    for item in metadata:
        for attr in ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern"):
            if getattr(item, attr, None) is not None:
                bounds[attr] = getattr(item, attr)
    found: list[str] = []
    if "ge" in bounds and "le" in bounds:
        found.append(f"{bounds['ge']} to {bounds['le']}")
    else:
        found += [f"at least {bounds['ge']}"] if "ge" in bounds else []
        found += [f"at most {bounds['le']}"] if "le" in bounds else []
    found += [f"more than {bounds['gt']}"] if "gt" in bounds else []
    found += [f"less than {bounds['lt']}"] if "lt" in bounds else []
    if "min_length" in bounds and "max_length" in bounds:
        found.append(f"{bounds['min_length']} to {bounds['max_length']} items")
    else:
        if "min_length" in bounds:
            found.append(f"at least {bounds['min_length']} item" + ("s" if bounds["min_length"] != 1 else ""))
        found += [f"at most {bounds['max_length']} items"] if "max_length" in bounds else []
    found += [f"matching `{bounds['pattern']}`"] if "pattern" in bounds else []
    return ", ".join(found)


# Defaults and descriptions -----------------------------------------------------------------------

def _default_text(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    value = info.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        defaults = {k: f.get_default(call_default_factory=True) for k, f in type(value).model_fields.items()}
        changed = {k: v for k, v in value.model_dump().items() if v != defaults[k]}
        return f"`{_value(changed)}`" if changed else "the section's defaults"
    return f"`{_value(value)}`"


def _value(value: Any) -> str:
    """A value as it would be written in pglab.yml (YAML flow style)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, enum.Enum):
        return _value(value.value)
    return str(value)


def _description(model: type[BaseModel], name: str, info: FieldInfo, path: str) -> str:
    if info.description:
        return " ".join(info.description.split())
    return NOTES.get(path) or _source_comment(model, name)


def _source_comment(model: type[BaseModel], name: str) -> str:
    """The comment above a field (contiguous lines) and beside it, in the class that declares it."""
    for klass in model.__mro__:
        if name not in inspect.get_annotations(klass):
            continue
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue  # a model built at run time: its bases hold the source
        for i, line in enumerate(lines):
            if re.match(rf"\s+{re.escape(name)}\s*:", line):
                above: list[str] = []
                j = i - 1
                while j >= 0 and lines[j].strip().startswith("#"):
                    above.insert(0, lines[j].strip().lstrip("#").strip())
                    j -= 1
                beside = line.split("  # ", 1)[1].strip() if "  # " in line else ""
                return " ".join(part for part in (" ".join(above), beside) if part)
    return ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
