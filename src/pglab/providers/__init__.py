"""Providers by name: the topology's ``provider:`` picks one."""

from __future__ import annotations

from pathlib import Path

from pglab.providers.base import Prerequisite, Provider
from pglab.topology import Topology

__all__ = ["Prerequisite", "Provider", "get_provider"]


def get_provider(topology: Topology, lab_dir: Path) -> Provider:
    if topology.provider == "local":
        from pglab.providers.local import LocalProvider

        return LocalProvider(topology, lab_dir)
    from pglab.providers.vagrant import VagrantProvider

    return VagrantProvider(topology, lab_dir)
