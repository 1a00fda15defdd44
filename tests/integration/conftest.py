"""A real lab (PostgreSQL, Patroni, etcd, HAProxy) on 127.0.21.x for the whole session,
destroyed at the end even when `up` or a test fails."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pglab.lab import Lab, UpResult
from tests.conftest import write_topology


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A conftest hook sees every collected item: mark only the tests of this directory.
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def lab_and_result(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, UpResult]]:
    lab = Lab.from_file(write_topology(tmp_path_factory.mktemp("lab")))
    if lab.missing_prerequisites() and os.geteuid() != 0:
        pytest.skip("integration tests need: " + "; ".join(lab.missing_prerequisites()))
    try:
        result = lab.up(timeout=120)
        yield lab, result
    finally:
        lab.destroy()


@pytest.fixture(scope="session")
def lab(lab_and_result: tuple[Lab, UpResult]) -> Lab:
    return lab_and_result[0]
