"""The text `pglab init` writes: the default lab, commented so that it teaches its own schema."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import yaml
from pydantic import BaseModel

from pglab import providers, stacks
from pglab.catalog.schema import dcs_names, schema
from pglab.components import components
from pglab.stacks.base import DefaultNode
from pglab.topology.model import BackupSettings, Network, PostgresSettings, Provider, Stack

# What `pglab init` writes: every value comes from the model's defaults, except the lab's own
# choices (its nodes, from the stack's declaration, and an example parameter); the comments
# teach the schema.
EXAMPLE_PARAMETERS: dict[str, str | int | float | bool] = {"max_connections": 100}
# `pglab init --sites 2`: the sites' names, and how far the second site's addresses sit from the
# first's (the stack's default nodes, moved by this many host numbers).
SITE_NAMES = ("east", "west")
SECOND_SITE_OFFSET = 40
_COMMENTS = {
    "tls": "TLS on every connection, with the lab's own CA (false: plaintext)",
    "postgres.scope": "the cluster name (as `pglab status` and `patronictl list` show it)",
    "postgres.parameters": "any postgresql.conf setting, applied cluster-wide",
    "backup": "pgBackRest; the repository sits on the node with the role backup",
    "backup.enabled": "false: no archiving, no backups",
    "backup.retention_full": "full backups kept",
    "backup.compression": "lz4 | zst | gz | bz2 | none; compression_level: N sets the level",
    "sites": "the first starts as the primary cluster, the second as its standby cluster",
}
_HEADER = [
    "# pglab topology: one file describes the lab on every provider.",
    "# provider local: each node is a set of processes on this machine, bound to",
    "#   network.loopback with the same host number (192.168.11.120 -> 127.0.11.120).",
    "# provider vagrant: each node is a VM with its address in network.subnet.",
    "# provider hosts: each node is an existing Debian 12 server at its address (SSH).",
]


def _default(model: type[BaseModel], field: str) -> Any:
    return model.model_fields[field].get_default(call_default_factory=True)


def default_yaml(
    name: str | None = None, stack: Stack | None = None, provider: Provider | None = None, dcs: str | None = None,
    loopback: str | None = None, sites: int = 1,
) -> str:
    """The text ``pglab init`` writes: the classic HA lab, commented so it teaches its own schema.
    Arguments left out take the model's defaults; ``sites=2`` writes a second site, the stack's
    nodes again (see :data:`SITE_NAMES`).

    The values are written as YAML scalars whatever they hold, so a bad ``name`` is refused by
    :func:`parse` with the usual message instead of changing the file's structure."""
    model = schema()
    name = name if name is not None else _default(model, "name")
    stack = stack or _default(model, "stack")
    provider = provider or _default(model, "provider")
    dcs = dcs or _default(model, "dcs")
    spec = stacks.spec(stack) if stack in stacks.STACKS else stacks.spec(_default(model, "stack"))
    postgres = PostgresSettings().model_dump(mode="json")
    values: dict[str, Any] = {
        "name": name, "provider": provider, "stack": stack,
        **({"dcs": dcs} if spec.uses_dcs else {}),
        "tls": _default(model, "tls"),
        "postgres": {"version": postgres["version"], "scope": name, "parameters": EXAMPLE_PARAMETERS},
        **({spec.name: spec.settings().model_dump(mode="json")} if spec.settings is not None else {}),
        "network": {**Network().model_dump(mode="json"), **({"loopback": loopback} if loopback else {})},
        # The provider's own section, only for the provider that reads it.
        **_provider_section(provider),
        # compression_level unset: pgBackRest's default for the type (the comment of compression says so).
        "backup": BackupSettings(enabled=spec.backups).model_dump(mode="json", exclude_none=True),
        # Each component's own section (the pooler's), with its defaults.
        **{c.name: c.settings().model_dump(mode="json") for c in components() if c.settings is not None},
    }
    provider_comments = providers.provider_class(provider).comments if provider in providers.PROVIDERS else {}
    component_comments = {key: text for c in components() for key, text in c.comments.items()}
    comments = {**_choices_comments(), **_COMMENTS, **spec.comments, **provider_comments, **component_comments}
    lines = list(_HEADER)
    for key, value in values.items():
        if isinstance(value, dict):
            lines.append(_line(key, None, key, comments))
            for inner, inner_value in value.items():
                if isinstance(inner_value, dict) and inner_value:
                    lines.append(_line(f"  {inner}", None, f"{key}.{inner}", comments))
                    lines += [_line(f"    {k}", v, "", comments) for k, v in inner_value.items()]
                else:
                    lines.append(_line(f"  {inner}", inner_value, f"{key}.{inner}", comments))
        else:
            lines.append(_line(key, value, key, comments))
    site_names = SITE_NAMES[:sites] if sites > 1 else ()
    if site_names:
        lines.append(_line("sites", list(site_names), "sites", comments))
    lines.append(_line("nodes", None, "nodes", comments))
    for number, site in enumerate(site_names or (None,)):
        for node in spec.default_nodes:
            lines += _node_lines(node, site, number * SECOND_SITE_OFFSET)
    return "\n".join(lines) + "\n"


def _node_lines(node: DefaultNode, site: str | None, offset: int) -> list[str]:
    """One default node, in ``site`` (its name prefixed, its address moved by ``offset``)."""
    name = f"{site}-{node.name}" if site else node.name
    address = str(ipaddress.IPv4Address(node.address) + offset)
    comment = f"   # {node.comment}" if node.comment and offset == 0 else ""
    lines = [f"  - name: {_scalar(name)}{comment}", f"    address: {_scalar(address)}",
             f"    roles: [{', '.join((node.role, *node.also))}]"]
    return lines + ([f"    site: {_scalar(site)}"] if site else [])


def _provider_section(provider: str) -> dict[str, Any]:
    settings = providers.provider_class(provider).settings if provider in providers.PROVIDERS else None
    return {provider: settings().model_dump(mode="json")} if settings is not None else {}


def _choices_comments() -> dict[str, str]:
    """The comments that list the registered choices: providers, stacks, DCS, roles."""
    limits = []
    for dcs in dcs_names():
        runners = [p for p in providers.PROVIDERS if dcs in providers.provider_class(p).dcs]
        if len(runners) < len(providers.PROVIDERS):
            limits.append(f"{dcs} only with provider: {' or '.join(runners)}")
    return {
        "provider": " | ".join(providers.PROVIDERS),
        "stack": " | ".join(stacks.STACKS),
        "dcs": " | ".join(dcs_names()) + (f" ({'; '.join(limits)})" if limits else ""),
        "nodes": f"roles: {', '.join(stacks.roles())}; a node may hold several",
    }


def _line(key: str, value: Any, path: str, comments: dict[str, str]) -> str:
    text = f"{key}:" + ("" if value is None else f" {_scalar(value)}")
    comment = comments.get(path)
    return f"{text:<27} # {comment}" if comment else text


def _scalar(value: Any) -> str:
    """``value`` as one YAML scalar on one line: plain when that reads back the same, else quoted."""
    if isinstance(value, bool) or not isinstance(value, str):
        return yaml.safe_dump(value, default_flow_style=True).split("\n")[0]
    plain = bool(value) and all(c.isalnum() or c in "-_./" for c in value) and value.isascii()
    return value if plain and yaml.safe_load(value) == value else json.dumps(value)
