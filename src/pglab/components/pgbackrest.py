"""The backup role, which every stack offers: the node that holds the pgBackRest repository.

What the rest of pglab needs to know of it, in one place: the roles' variables from the
topology's ``backup:`` section, the service it adds to nodes (pgBackRest's TLS server, on the
repository node and on every data node, which the repository reaches the same way), its port and
its package. Certificates come from the lab's CA (:mod:`pglab.tls.certs`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pglab.topology import BACKUP_ROLE, Node, Ports, Topology

SERVICE = "pgbackrest"
# The Debian package (2.45 on Debian 12); the role installs it through pglab's packages tasks.
PACKAGES = ("pgbackrest",)
ROLE = "pgbackrest"
BINARY = "/usr/bin/pgbackrest"
# pgBackRest's TLS server, on the repository node and on every data node (``ports.pgbackrest``).
PORTS = {"pgbackrest": 8432}
# Below a node's root, where the role writes the configuration (its pgbackrest_config_subpath).
CONFIG_SUBPATH = "etc/pgbackrest/pgbackrest.conf"


def enabled(topology: Topology) -> bool:
    return topology.backup.enabled and bool(topology.with_role(BACKUP_ROLE))


def repository_node(topology: Topology) -> Node:
    """The node that holds the repository."""
    return topology.with_role(BACKUP_ROLE)[0]


def config_file(node_root: str) -> str:
    """The configuration file the role wrote on a node whose paths start with ``node_root``."""
    return f"{node_root}/{CONFIG_SUBPATH}"


def command(config: str, stanza: str, *args: str) -> list[str]:
    """A pgBackRest command: its configuration file and stanza, then ``args`` (options, the
    command's name and what it takes)."""
    return [BINARY, f"--config={config}", f"--stanza={stanza}", *args]


def runs_server(topology: Topology, node: Node) -> bool:
    """Whether pgBackRest's TLS server runs on ``node``: the repository and every data node."""
    return enabled(topology) and (BACKUP_ROLE in node.roles or "postgres" in node.roles)


def services(topology: Topology, node: Node) -> list[str]:
    """The services the backup adds to ``node`` beyond its stack's."""
    return [SERVICE] if runs_server(topology, node) and BACKUP_ROLE not in node.roles else []


def role_ports(ports: Ports) -> dict[str, list[int]]:
    return {BACKUP_ROLE: [ports.pgbackrest]}


def inventory_vars(topology: Topology, tls_dir: Path) -> dict[str, Any]:
    """The pgbackrest role's variables, from the topology's ``backup:`` section."""
    settings = topology.backup
    on = enabled(topology)
    return {
        "pgbackrest_enabled": on,
        "pgbackrest_stanza": topology.postgres.scope,
        "pgbackrest_port": topology.ports.pgbackrest,
        "pgbackrest_repo_host": repository_node(topology).name if on else "",
        "pgbackrest_retention_full": settings.retention_full,
        "pgbackrest_compress_type": settings.compression,
        "pgbackrest_compress_level": settings.compression_level,
        "pgbackrest_process_max": settings.processes,
        "pgbackrest_tls_source_dir": str(tls_dir),
    }
