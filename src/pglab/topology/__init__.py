"""The lab's topology (``pglab.yml``), one job per module. A leaf: it imports nothing else of pglab,
so every room may use it; :mod:`pglab.catalog` completes its model with what the registered stacks
and providers bring.

- :mod:`~pglab.topology.model`: the pydantic model every lab shares, its defaults and its own rules;
- :mod:`~pglab.topology.loading`: reading a possibly hostile YAML file into a model;
- :mod:`~pglab.topology.messages`: validation errors as "file, line, field, fix".
"""

from pglab.topology.loading import (
    DEFAULT_FILE,
    MAX_FILE_BYTES,
    MAX_YAML_DEPTH,
    MAX_YAML_VALUES,
    load,
    parse,
    parse_bytes,
)
from pglab.topology.model import (
    BACKUP_ROLE,
    MAX_NODES,
    MAX_SITES,
    NAME_PATTERN,
    BackupSettings,
    Dcs,
    FieldProblem,
    Network,
    Node,
    Ports,
    PostgresSettings,
    Provider,
    Role,
    Stack,
    Strict,
    Topology,
    TopologyError,
    Vip,
)

__all__ = [
    "BACKUP_ROLE", "DEFAULT_FILE", "MAX_FILE_BYTES", "MAX_NODES", "MAX_SITES", "MAX_YAML_DEPTH", "MAX_YAML_VALUES",
    "NAME_PATTERN", "BackupSettings", "Dcs", "FieldProblem", "Network", "Node", "Ports", "PostgresSettings",
    "Provider", "Role", "Stack", "Strict", "Topology", "TopologyError", "Vip", "load", "parse", "parse_bytes",
]
