"""Opt-in VM tests (``PGLAB_E2E=1``, run by ``./bootstrap test-vms``): real VMs under libvirt, in a
private network namespace; never part of the default test run."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    skip = pytest.mark.skip(reason="VM tests are opt-in: PGLAB_E2E=1 (./bootstrap test-vms)")
    for item in items:
        item.add_marker(pytest.mark.e2e)
        if os.environ.get("PGLAB_E2E") != "1":
            item.add_marker(skip)
