"""The lab's topology (``pglab.yml``), one job per module:

- :mod:`~pglab.topology.model`: the pydantic model, its defaults and the rules a lab follows; the
  registered stacks and providers complete it (:func:`schema`);
- :mod:`~pglab.topology.loading`: reading a possibly hostile YAML file into the model;
- :mod:`~pglab.topology.messages`: validation errors as "file, line, field, fix";
- :mod:`~pglab.topology.example`: the commented default lab that `pglab init` writes.

Callers keep ``from pglab import topology`` and the names below.
"""

from pglab.topology.example import EXAMPLE_PARAMETERS, default_yaml
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
    VagrantSettings,
    schema,
)

__all__ = [
    "BACKUP_ROLE", "DEFAULT_FILE", "EXAMPLE_PARAMETERS", "MAX_FILE_BYTES", "MAX_NODES", "MAX_YAML_DEPTH",
    "MAX_YAML_VALUES", "NAME_PATTERN", "BackupSettings", "Dcs", "FieldProblem", "Network", "Node", "Ports",
    "PostgresSettings", "Provider", "Role", "Stack", "Strict", "Topology", "TopologyError", "VagrantSettings",
    "default_yaml", "load", "parse", "parse_bytes", "schema",
]
