"""The verify suite's option (``--pglab-file``), session fixtures and per-node parametrization.

Tests that take ``dcs_node``, ``postgres_node``, ``haproxy_node`` or ``monitor_node`` run once per node of that
role, with the node's name as the test id (the runner reports it in the "node" column).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from pglab import stacks
from pglab.checks.selection import serves
from pglab.lab import Lab

# One fixture per node role of the registered stacks: ``dcs_node``, ``postgres_node`` ...
_ROLE_FIXTURES = {f"{role}_node": role for role in stacks.roles()}
_ANY_NODE = "any_node"  # every node of the lab, whatever its roles
_saved_path: list[str | None] = []
_primary_site: list[str] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--pglab-file", metavar="PATH", help="The topology YAML of the lab to verify (required).")


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("--pglab-file"):
        raise pytest.UsageError("the verify suite needs --pglab-file PATH (the lab's topology YAML)")
    # testinfra's ansible backend runs `ansible-inventory` by name: use this environment's.
    _saved_path.append(os.environ.get("PATH"))
    if shutil.which("ansible-inventory") is None:
        os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")


def pytest_unconfigure(config: pytest.Config) -> None:
    _primary_site.clear()
    if _saved_path:
        saved = _saved_path.pop()
        if saved is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = saved


def _lab_from_config(config: pytest.Config) -> Lab:
    """The lab the checks run on: in a two-site lab, its primary site (the standby site has the
    sites' own checks, which take ``whole_lab``)."""
    whole = _whole_lab(config)
    if not whole.topology.sites:
        return whole
    if not _primary_site:
        _primary_site.append(whole.primary_site())  # asked once: every check sees the same site
    return whole.site(_primary_site[0])


def _whole_lab(config: pytest.Config) -> Lab:
    return Lab.from_file(Path(config.getoption("--pglab-file")))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for fixture, role in _ROLE_FIXTURES.items():
        if fixture in metafunc.fixturenames:
            nodes = [n.name for n in _lab_from_config(metafunc.config).topology.with_role(role)]
            if nodes:
                metafunc.parametrize(fixture, nodes, ids=nodes, scope="function")
            else:  # a sentence in the report, not pytest's "got empty parameter set"
                absent = pytest.param(None, marks=pytest.mark.skip(reason=f"the lab has no node with role {role}"))
                metafunc.parametrize(fixture, [absent], ids=[f"no-{role}"], scope="function")
    if _ANY_NODE in metafunc.fixturenames:
        nodes = [n.name for n in _lab_from_config(metafunc.config).topology.nodes]
        metafunc.parametrize(_ANY_NODE, nodes, ids=nodes, scope="function")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the checks that serve the lab (:func:`pglab.checks.selection.serves`): its stack's own,
    its components', and those that serve every lab; a module with ``TLS = True`` serves only labs
    with ``tls: true``, one with ``SITES = True`` only two-site labs."""
    topology = _whole_lab(config).topology
    keep = [i for i in items
            if serves(topology, i.path.stem, tls_only=getattr(i.module, "TLS", False),  # type: ignore[attr-defined]
                      sites_only=getattr(i.module, "SITES", False))]  # type: ignore[attr-defined]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in keep])
        items[:] = keep


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest) -> Lab:
    return _lab_from_config(request.config)


@pytest.fixture(scope="session")
def whole_lab(request: pytest.FixtureRequest) -> Lab:
    """The whole lab, every site of it (the sites' checks)."""
    return _whole_lab(request.config)


@pytest.fixture(scope="session")
def password(lab: Lab) -> str:
    """The PostgreSQL superuser's password, from the lab's secrets."""
    return lab.superuser_password()
