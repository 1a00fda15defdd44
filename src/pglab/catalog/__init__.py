"""The catalog: what the registered stacks, providers and components bring together, one floor
above them and the topology.

- :mod:`~pglab.catalog.schema`: the whole topology model (names, roles, ports, sections) and the
  rules the registries add; parsing and loading a lab's file with it;
- :mod:`~pglab.catalog.example`: the commented lab `pglab init` writes;
- :mod:`~pglab.catalog.needs`: the accounts a lab generates passwords for, and what this machine
  needs to run the local provider's nodes.
"""

from pglab.catalog.example import EXAMPLE_PARAMETERS, SITE_NAMES, default_yaml
from pglab.catalog.needs import (
    accounts,
    machine_variables,
    on_this_machine,
    prepare_roles,
    secret_variables,
    user_variables,
)
from pglab.catalog.schema import declared_ports, load, parse, parse_bytes, schema, unused_sections

__all__ = [
    "EXAMPLE_PARAMETERS", "SITE_NAMES", "accounts", "declared_ports", "default_yaml", "load", "machine_variables",
    "on_this_machine", "parse", "parse_bytes", "prepare_roles", "schema", "secret_variables", "unused_sections",
    "user_variables",
]
