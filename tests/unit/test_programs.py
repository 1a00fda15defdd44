"""Supervisor program names: built in one place, split back exactly, even when one node's name
is another's plus a dash (pg and pg-1)."""

from __future__ import annotations

import pytest

from pglab.providers.local import program_name, program_node


@pytest.mark.parametrize(("node", "service"), [("pg", "patroni"), ("pg-1", "patroni"), ("a-b-c", "etcd"),
                                               ("pg", "pg_autoctl")])
def test_a_program_name_splits_back_into_its_node_and_service(node: str, service: str) -> None:
    assert program_node(program_name(node, service)) == (node, service)


def test_a_node_never_claims_the_programs_of_a_longer_namesake() -> None:
    programs = [program_name(node, service) for node in ("pg", "pg-1") for service in ("patroni", "etcd")]
    assert [p for p in programs if program_node(p)[0] == "pg"] == ["pg-patroni", "pg-etcd"]
    assert [p for p in programs if program_node(p)[0] == "pg-1"] == ["pg-1-patroni", "pg-1-etcd"]


@pytest.mark.parametrize("service", ["", "pg-autoctl"])
def test_a_service_name_with_a_dash_is_refused(service: str) -> None:
    with pytest.raises(ValueError, match="without dashes"):
        program_name("pg", service)
