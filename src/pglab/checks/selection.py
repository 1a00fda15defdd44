"""Which of the verify suite's check files serve a lab: the decision alone, from the topology and
the registries (what each stack and component declares as its own checks), so it can be tested
without a lab."""

from __future__ import annotations

from pglab import stacks
from pglab.components import components
from pglab.topology import Topology


def serves(topology: Topology, stem: str, tls_only: bool = False, sites_only: bool = False) -> bool:
    """Whether the check file ``stem`` (``test_08_backups``) runs for the lab: a check a stack
    declares as its own (``StackSpec.checks``) serves only that stack, one a component declares
    (``Component.checks``) only labs that run the component, the others every lab; a module that
    says ``TLS = True`` (``tls_only``) only labs with ``tls: true``, one that says ``SITES = True``
    (``sites_only``) only two-site labs."""
    if (tls_only and not topology.tls) or (sites_only and not topology.sites):
        return False
    claimed = {check for spec in stacks.specs() for check in spec.checks}
    if stem in claimed and stem not in stacks.spec(topology.stack).checks:
        return False
    return all(component.enabled(topology) for component in components() if stem in component.checks)
