"""The text `pglab init` writes: the default lab, commented so that it teaches its own schema."""

from __future__ import annotations

import json
from typing import Any

import yaml
from pydantic import BaseModel

from pglab.topology.model import (
    Dcs,
    Network,
    PatroniSettings,
    PgAutoFailoverSettings,
    PostgresSettings,
    Provider,
    Role,
    Stack,
    Topology,
    VagrantSettings,
)

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
