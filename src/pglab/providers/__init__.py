"""Providers by name: the topology's ``provider:`` picks one.

Registering a provider is one line below; each declares what it can run (``Provider.dcs``).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from pglab.providers.base import Provider
from pglab.topology import Topology

__all__ = ["PROVIDERS", "Provider", "default_name", "get_provider", "provider_class"]

# The topology's provider name -> "module:class" (imported only when used). The first one is the default.
PROVIDERS = {
    "local": "pglab.providers.local:LocalProvider",
    "vagrant": "pglab.providers.vagrant:VagrantProvider",
    "podman": "pglab.providers.podman:PodmanProvider",
    "hosts": "pglab.providers.hosts:HostsProvider",
}


def provider_class(name: str) -> type[Provider]:
    module, _, cls = PROVIDERS[name].partition(":")
    found = getattr(importlib.import_module(module), cls)
    if not (isinstance(found, type) and issubclass(found, Provider)):
        raise TypeError(f"{PROVIDERS[name]} must be a Provider class")
    return found


def default_name() -> str:
    return next(iter(PROVIDERS))


def get_provider(topology: Topology, lab_dir: Path) -> Provider:
    return provider_class(topology.provider)(topology, lab_dir)
