"""The backup role, which every stack offers: the node that holds the pgBackRest repository.

What the rest of pglab needs to know of it, in one place: the roles' variables from the
topology's ``backup:`` section, the service it adds to nodes (pgBackRest's TLS server, on the
repository node and on every data node, which the repository reaches the same way), its port and
its package, its certificates' rotation, its checks. Certificates come from the lab's CA
(:mod:`pglab.tls.certs`). :data:`COMPONENT` declares it to the component registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pglab.components.base import Component, ComponentSite, Rotation, TlsService
from pglab.prerequisites import Prerequisite, has_binary
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


class PgbackrestComponent(Component):
    name = "pgbackrest"
    role = ROLE
    checks = ("test_08_backups",)
    ports: ClassVar[Mapping[str, int]] = PORTS
    packages = PACKAGES
    # Guests 10x slower than the host: the asynchronous push (a process started, a TLS connection
    # to the repository) may not answer PostgreSQL's archiver within the 5 s a loopback lab allows
    # it; and `pgbackrest check` at the first `up` waits for the backlog the archiver built up
    # before the stanza existed (pushes of 12-25 s each there), which outlasted the loopback lab's 30 s.
    slow_machine_variables: ClassVar[Mapping[str, Any]] = {
        "pgbackrest_archive_get_io_timeout": 15, "pgbackrest_archive_push_timeout": 20,
        "pgbackrest_archive_timeout": 120,
    }

    def enabled(self, topology: Topology) -> bool:
        return enabled(topology)

    def needs_certificates(self, topology: Topology) -> bool:
        return enabled(topology)  # its TLS server, whatever the lab's tls: says

    def prerequisites(self, topology: Topology) -> list[Prerequisite]:
        return [Prerequisite("pgbackrest", "pgbackrest", has_binary("pgbackrest", BINARY))] if enabled(topology) else []

    def package_roles(self, topology: Topology) -> list[str]:
        return [ROLE] if enabled(topology) else []

    def services(self, topology: Topology, node: Node) -> list[str]:
        return services(topology, node)

    def node_ports(self, topology: Topology, node: Node) -> list[int]:
        return [topology.ports.pgbackrest] if services(topology, node) else []

    def tls_services(self, topology: Topology) -> list[TlsService]:
        """Its TLS servers (the repository's and every data node's), which require a client
        certificate of the lab's CA."""
        return [TlsService(node, SERVICE, topology.ports.pgbackrest, client_certificate=True)
                for node in topology.nodes if runs_server(topology, node)]

    def tls_rotation(self, topology: Topology) -> list[Rotation]:
        """Its servers keep their own copy of the certificates (on VMs the repository runs as
        another user than the DCS beside it) and read it only when they start: a server whose
        copy changed restarts, which costs no cluster anything (archive-push is async and retries)."""
        return [Rotation(node, "Give pgBackRest its copy of the certificates", ROLE, "certificates", SERVICE,
                         own_copy=True)
                for node in topology.nodes if runs_server(topology, node)]

    def inventory_vars(self, topology: Topology, site: ComponentSite) -> dict[str, Any]:
        return inventory_vars(topology, site.tls_dir)


COMPONENT = PgbackrestComponent()
