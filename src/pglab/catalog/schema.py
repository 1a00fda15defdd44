"""The whole topology model: the leaf model of :mod:`pglab.topology` completed by the registries
(stack and provider names, the stacks' roles, every declared port, each stack's and provider's
own section) and the rules the stacks and providers add."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, create_model, model_validator

from pglab import providers, stacks, topology
from pglab.components import COMPONENTS, components
from pglab.topology.model import (
    MAX_NODES,
    FieldProblem,
    Node,
    Ports,
    Topology,
    check_backup_holder,
    check_data_nodes,
)


class RegisteredTopology(Topology):
    """A topology under the rules the registered stacks and providers add."""

    @model_validator(mode="after")
    def _registered_rules(self) -> RegisteredTopology:
        _check_sites(self)
        check_data_nodes(self)
        _check_roles(self)
        _check_backup(self)
        _check_sections(self)
        _check_provider_runs_dcs(self)
        _check_provider_carries_vip(self)
        providers.provider_class(self.provider).check(self)
        return self


def _check_roles(topo: Topology) -> None:
    spec = stacks.spec(topo.stack)
    for i, node in enumerate(topo.nodes):
        for role in node.roles:
            if role not in spec.roles:
                owner = next(s.name for s in stacks.specs() if role in s.roles)
                raise FieldProblem(("nodes", i, "roles"), spec.role_notes.get(role)
                                   or f"role {role} belongs to stack {owner}; remove it or set stack: {owner}")
    spec.check(topo)


def _check_sites(topo: Topology) -> None:
    """A second site only for a stack that runs a standby cluster, each site with the roles the
    stack needs there."""
    if not topo.sites:
        return
    spec = stacks.spec(topo.stack)
    if spec.cannot_stand_by is not None:
        able = [s.name for s in stacks.specs() if s.cannot_stand_by is None]
        instead = f", or set stack: {' or '.join(able)}" if able else ""
        raise FieldProblem(("sites",), f"{spec.cannot_stand_by}; remove sites: and the nodes' site: for a one-site "
                           f"lab{instead}")
    for site in topo.sites:
        roles = {role for _i, node in topo.site_nodes(site) for role in node.roles}
        for role, why in spec.site_roles.items():
            if role not in roles:
                raise FieldProblem(("sites",), f"site {site} has no node with the role {role} ({why}); "
                                   f"add a node with roles: [{role}] and site: {site}")


def _check_backup(topo: Topology) -> None:
    if topo.backup.enabled and not stacks.spec(topo.stack).backups:
        raise FieldProblem(("backup", "enabled"), f"stack {topo.stack} does not archive to pgBackRest yet; "
                           "set backup: {enabled: false}, or use stack: patroni")
    check_backup_holder(topo)


def _check_sections(topo: Topology) -> None:
    """A stack's own section only in a lab of that stack, where it means something."""
    for spec in stacks.specs():
        if spec.name != topo.stack and spec.settings is not None and spec.name in topo.model_fields_set:
            raise FieldProblem((spec.name,), f"the {spec.name} section applies to stack {spec.name}, not "
                               f"{topo.stack}; remove it or set stack: {spec.name}")


def _check_provider_runs_dcs(topo: Topology) -> None:
    provider = providers.provider_class(topo.provider)
    if not stacks.spec(topo.stack).uses_dcs or topo.dcs in provider.dcs:
        return
    others = [name for name in providers.PROVIDERS if topo.dcs in providers.provider_class(name).dcs]
    instead = f", or use {_dcs_title(topo.dcs)} with provider: {' or '.join(others)}" if others else ""
    note = f" ({provider.dcs_note})" if provider.dcs_note else ""
    raise FieldProblem(("dcs",), f"the {provider.name} provider runs {' and '.join(provider.dcs)} only{note}; "
                       f"set dcs: {provider.dcs[0]}{instead}")


def _check_provider_carries_vip(topo: Topology) -> None:
    if topo.vip is None:
        return
    note = providers.provider_class(topo.provider).vip_note
    if note:
        raise FieldProblem(("vip",), note)
    if not stacks.spec(topo.stack).primary_check(topo):
        others = [s.name for s in stacks.specs() if s.primary_check(topo)]
        raise FieldProblem(("vip",), f"stack {topo.stack} cannot carry a virtual IP yet (pglab does not know how "
                           f"its nodes tell keepalived which one is the primary); remove the vip section, or "
                           f"use stack: {' or '.join(others)}")


def _dcs_title(dcs: str) -> str:
    return {"etcd": "etcd", "consul": "Consul"}.get(dcs, dcs)


def unused_sections(topo: Topology) -> list[str]:
    """Sections of other providers that the lab's file still holds (a local lab written when
    every lab had a ``vagrant:`` section): accepted, ignored, and worth a one-line warning."""
    return [name for name in providers.PROVIDERS
            if name != topo.provider and providers.provider_class(name).settings is not None
            and name in topo.model_fields_set]


def declared_ports() -> dict[str, int]:
    """Every port a registered stack or component listens on, by name, with its default."""
    found: dict[str, int] = {}
    for declared in (*(spec.ports for spec in stacks.specs()), *(c.ports for c in components())):
        for name, port in declared.items():
            found.setdefault(name, port)
    return found


# The schema --------------------------------------------------------------------------------------
_SCHEMAS: dict[tuple[Any, ...], type[Topology]] = {}


def schema() -> type[Topology]:
    """The topology model of the registered stacks and providers: their names, the roles the
    stacks use, the ports they declare and each stack's, component's and provider's section, built once per
    registry content (a test may register a stack of its own)."""
    key = (*stacks.STACKS.items(), *providers.PROVIDERS.items(), *COMPONENTS.items())
    if key not in _SCHEMAS:
        roles = tuple(stacks.roles())
        stack_names, provider_names = tuple(stacks.STACKS), tuple(providers.PROVIDERS)
        node = create_model(
            "Node", __base__=Node,
            # Literal of a tuple built at run time: mypy cannot see its values.
            roles=(Annotated[list[Literal[roles]], Field(min_length=1)], ...),  # type: ignore[valid-type,arg-type]
        )
        ports: type[Ports] = create_model(  # type: ignore[call-overload]
            "Ports", __base__=Ports, **{name: (int, port) for name, port in declared_ports().items()})
        fields: dict[str, Any] = {
            "provider": (Literal[provider_names], provider_names[0]),
            "stack": (Literal[stack_names], stack_names[0]),
            "ports": (ports, ports()),
            "nodes": (Annotated[list[node], Field(min_length=1, max_length=MAX_NODES)], ...),
        }
        for spec in stacks.specs():
            if spec.settings is not None:
                fields[spec.name] = (spec.settings, spec.settings())
        for component in components():
            if component.settings is not None:
                fields[component.name] = (component.settings, component.settings())
        for name in providers.PROVIDERS:
            settings: type[BaseModel] | None = providers.provider_class(name).settings
            if settings is not None:
                fields[name] = (settings, settings())
        _SCHEMAS[key] = create_model("Topology", __base__=RegisteredTopology, **fields)
    return _SCHEMAS[key]


def parse(text: str, source: str = topology.DEFAULT_FILE) -> Topology:
    """Validate topology text against the registered schema (see :func:`pglab.topology.parse`)."""
    return topology.parse(text, source, model=schema())


def parse_bytes(data: bytes, source: str = topology.DEFAULT_FILE) -> Topology:
    return topology.parse_bytes(data, source, model=schema())


def load(path: str | Path) -> Topology:
    """Read and validate a topology file against the registered schema."""
    return topology.load(path, model=schema())


def dcs_names() -> tuple[str, ...]:
    return typing.get_args(topology.Dcs)
