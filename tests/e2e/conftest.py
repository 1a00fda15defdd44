"""Opt-in VM tests (``PGLAB_E2E=1``, run by ``./bootstrap test-vms``): real VMs under libvirt, in a
private network namespace; never part of the default test run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A conftest hook sees every collected item: mark and skip only the tests of this directory.
    skip = pytest.mark.skip(reason="VM tests are opt-in: PGLAB_E2E=1 (./bootstrap test-vms)")
    for item in items:
        if not item.path.is_relative_to(HERE):
            continue
        item.add_marker(pytest.mark.e2e)
        if item.path.name.startswith(("test_containers", "test_hosts_on_containers")):
            continue  # opt-in on its own: PGLAB_E2E_CONTAINERS=1 (./bootstrap test-containers)
        if os.environ.get("PGLAB_E2E") != "1":
            item.add_marker(skip)
