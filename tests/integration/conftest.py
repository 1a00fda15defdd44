"""A real lab for the whole session on the first test range (127.0.21.x), destroyed at the end
even when `up` or a test fails: the default topology (Patroni, etcd, HAProxy, PgBouncer, pgBackRest,
as root each data node's data on a disk of its own). Every test that needs a cluster of that shape
uses it and leaves it healthy; a module brings up a lab of its own (on the second range) only for
another shape, since each `up` and `destroy` costs a minute or more."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pglab.lab import Lab, UpResult
from tests.conftest import lab_up, write_topology


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A conftest hook sees every collected item: mark only the tests of this directory.
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def lab_and_result(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, UpResult]]:
    with lab_up(write_topology(tmp_path_factory.mktemp("lab")), "integration tests", timeout=120) as up:
        yield up


@pytest.fixture(scope="session")
def lab(lab_and_result: tuple[Lab, UpResult]) -> Lab:
    return lab_and_result[0]
