"""Fixtures the unit modules share."""

from __future__ import annotations

import pytest

from pglab.lab import Lab
from tests.conftest import write_topology
from tests.unit.test_tls_roles import ROLES, TEMPLATES, DefaultVmConfigs, _render_configs


@pytest.fixture(scope="session")
def default_vm_configs(tmp_path_factory: pytest.TempPathFactory) -> DefaultVmConfigs:
    """The default VM lab's configuration files as Ansible renders them from its inventory
    (test_tls_roles' render, PgBouncer's template among them), with TLS and without: rendered
    once for the session, since each render is a few seconds of ansible-playbook."""
    rendered: dict[bool, dict[str, dict[str, str]]] = {}

    def configs(tls: bool) -> dict[str, dict[str, str]]:
        if tls not in rendered:
            directory = tmp_path_factory.mktemp("default-vm-tls" if tls else "default-vm-plain")
            path = write_topology(directory, name="vmlab", provider="vagrant")
            if not tls:
                path.write_text(path.read_text().replace("tls: true", "tls: false"))
            out = directory / "out"
            out.mkdir()
            rendered[tls] = _render_configs(Lab.from_file(path), out, (*ROLES, "pgbouncer"),
                                            {**TEMPLATES, "pgbouncer": ("pgbouncer.ini.j2", "pglab_postgres")})
        return rendered[tls]

    return configs
