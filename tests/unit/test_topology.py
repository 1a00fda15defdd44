"""Unit tests for pglab.topology: the default lab, the model's derived views and the error messages.

No processes, no network: every case is a YAML text parsed in memory.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pglab.catalog import default_yaml, load, parse
from pglab.topology import Topology, TopologyError

SOURCE = "labs/my-lab.yml"
STACKS = ["patroni", "pg_auto_failover"]


def _default(stack: str = "patroni") -> str:
    return default_yaml(stack=stack)  # type: ignore[arg-type]


def _edit(old: str, new: str, stack: str = "patroni") -> str:
    """The default YAML with one exact, unique piece of text replaced."""
    text = _default(stack)
    assert text.count(old) == 1, f"{old!r} must occur exactly once in the default YAML"
    return text.replace(old, new)


def _mutate(change: Callable[[dict[str, Any]], Any], stack: str = "patroni") -> str:
    """The default YAML loaded as a dict, changed in place, and dumped again (lists of scalars
    in flow style, as the default writes them, so each node's roles sit on one line)."""
    data = yaml.safe_load(_default(stack))
    change(data)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)


def _node(i: int, **fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d["nodes"][i].update(fields)


def _set(section: str, **fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d.setdefault(section, {}).update(fields)


def _line_of(text: str, needle: str) -> int:
    """1-based number of the last line of ``text`` that contains ``needle``."""
    hits = [n for n, line in enumerate(text.splitlines(), 1) if needle in line]
    assert hits, f"{needle!r} is not in the test's YAML"
    return hits[-1]


# The default lab --------------------------------------------------------------------------------

@pytest.mark.parametrize("stack", STACKS)
def test_default_yaml_parses(stack: str) -> None:
    topo = parse(_default(stack), SOURCE)
    assert isinstance(topo, Topology)
    assert topo.stack == stack
    assert topo.provider == "local"
    assert topo.postgres.version == 15
    assert topo.postgres.scope == "pglab"
    assert len(topo.with_role("postgres")) >= 2
    assert len(topo.with_role("haproxy")) == (1 if stack == "patroni" else 0)
    if stack == "patroni":
        assert topo.dcs == "etcd"
        assert len(topo.with_role("dcs")) == 1
        assert not topo.with_role("monitor")
    else:
        assert len(topo.with_role("monitor")) == 1
        assert not topo.with_role("dcs")


def test_default_patroni_lab_is_the_classic_lab() -> None:
    topo = parse(_default("patroni"), SOURCE)
    assert topo.name == "pglab"
    assert [(n.name, str(n.address), n.roles) for n in topo.nodes] == [
        ("dcs", "192.168.11.100", ["dcs", "backup"]),
        ("haproxy", "192.168.11.101", ["haproxy"]),
        ("pg1", "192.168.11.120", ["postgres"]),
        ("pg2", "192.168.11.121", ["postgres"]),
        ("pg3", "192.168.11.122", ["postgres"]),
    ]
    assert topo.network.subnet == ipaddress.IPv4Network("192.168.11.0/24")
    assert topo.network.loopback == ipaddress.IPv4Network("127.0.11.0/24")
    assert topo.postgres.parameters == {"max_connections": 100}
    assert topo.node("pg2").address == ipaddress.IPv4Address("192.168.11.121")


def test_default_yaml_uses_given_name_and_provider() -> None:
    topo = parse(default_yaml(name="lab2", provider="vagrant", dcs="consul"), SOURCE)
    assert (topo.name, topo.provider, topo.dcs) == ("lab2", "vagrant", "consul")


def test_loopback_address_default() -> None:
    topo = parse(_default(), SOURCE)
    assert topo.loopback_address(topo.node("pg1")) == ipaddress.IPv4Address("127.0.11.120")
    assert [str(topo.loopback_address(n)) for n in topo.nodes] == [
        "127.0.11.100",
        "127.0.11.101",
        "127.0.11.120",
        "127.0.11.121",
        "127.0.11.122",
    ]


def test_loopback_address_custom_network() -> None:
    topo = parse(_edit("loopback: 127.0.11.0/24", "loopback: 127.0.21.0/24"), SOURCE)
    assert topo.network.loopback == ipaddress.IPv4Network("127.0.21.0/24")
    assert topo.loopback_address(topo.node("pg1")) == ipaddress.IPv4Address("127.0.21.120")
    assert topo.loopback_address(topo.node("dcs")) == ipaddress.IPv4Address("127.0.21.100")


def test_node_lookup_names_known_nodes() -> None:
    topo = parse(_default(), SOURCE)
    with pytest.raises(KeyError, match="pg1, pg2, pg3"):
        topo.node("pg9")


# Malformed topologies ---------------------------------------------------------------------------
# Each case: (yaml text, field named in the message or None, needle on the line the message must
# name or None, a piece of the explanation/fix the message must contain).

def _no_postgres(d: dict[str, Any]) -> None:
    for node in d["nodes"][2:]:
        node["roles"] = ["haproxy"]


_PAF = "pg_auto_failover"

MALFORMED = [
    pytest.param(
        _default() + "nodez: []\n", "nodez", "nodez:", "did you mean 'nodes'?",
        id="unknown-top-level-key",
    ),
    pytest.param(
        _edit("  loopback: 127.0.11.0/24", "  loopbak: 127.0.11.0/24"),
        "network.loopbak", "loopbak:", "did you mean 'loopback'?",
        id="unknown-network-key",
    ),
    pytest.param(
        _mutate(_node(1, adress="192.168.11.101")),
        "nodes[1] (haproxy).adress", "adress:", "did you mean 'address'?",
        id="unknown-node-key",
    ),
    pytest.param(
        _mutate(_node(3, name="pg1")),
        "nodes[3] (pg1).name", "name: pg1", "already used by nodes[2]",
        id="duplicate-node-name",
    ),
    pytest.param(
        _mutate(_node(4, address="192.168.11.120")),
        "nodes[4] (pg3).address", "192.168.11.120", "already used by nodes[2] (pg1)",
        id="duplicate-address",
    ),
    pytest.param(
        _mutate(_node(4, address="10.0.0.5")),
        "nodes[4] (pg3).address", "10.0.0.5", "inside 192.168.11.0/24",
        id="address-outside-subnet",
    ),
    pytest.param(
        _mutate(_node(4, address="192.168.11.0")),
        "nodes[4] (pg3).address", "address: 192.168.11.0", "not a host address",
        id="address-is-network-address",
    ),
    pytest.param(
        _mutate(_node(4, address="192.168.11.255")),
        "nodes[4] (pg3).address", "192.168.11.255", "not a host address",
        id="address-is-broadcast-address",
    ),
    pytest.param(
        _mutate(_node(4, address="192.168.11.300")),
        "nodes[4] (pg3).address", "192.168.11.300", "not an IPv4 address",
        id="invalid-ip",
    ),
    pytest.param(
        _mutate(_no_postgres), "nodes", "nodes:", "no node has the role postgres",
        id="no-postgres-node",
    ),
    pytest.param(
        _mutate(_node(2, roles=["postgress"])),
        "nodes[2] (pg1).roles[0]", "[postgress]", "'postgres'",
        id="unknown-role",
    ),
    pytest.param(
        _mutate(_node(2, roles=["postgres", "postgres"])),
        "nodes[2] (pg1).roles", "[postgres, postgres]", "listed twice",
        id="repeated-role",
    ),
    pytest.param(
        _mutate(_node(1, roles=["haproxy", "monitor"])),
        "nodes[1] (haproxy).roles", "[haproxy, monitor]", "set stack: pg_auto_failover",
        id="monitor-role-with-patroni",
    ),
    pytest.param(
        _mutate(_node(1, roles=["postgres", "dcs"]), stack=_PAF),
        "nodes[1] (pg1).roles", "[postgres, dcs]", "set stack: patroni",
        id="dcs-role-with-pg-auto-failover",
    ),
    pytest.param(
        _mutate(_node(1, roles=["postgres", "haproxy"]), stack=_PAF),
        "nodes[1] (pg1).roles", "[postgres, haproxy]", "multi-host URI",
        id="haproxy-role-with-pg-auto-failover",
    ),
    pytest.param(
        _mutate(lambda d: d["pg_auto_failover"].update(candidate_priorities={"pg9": 10}), stack=_PAF),
        "pg_auto_failover.candidate_priorities.pg9", "candidate_priorities", "not a data node",
        id="priority-of-an-unknown-node",
    ),
    pytest.param(
        _mutate(lambda d: d["pg_auto_failover"].update(number_sync_standbys=1), stack=_PAF),
        "pg_auto_failover.number_sync_standbys", "number_sync_standbys", "at least 3 data nodes",
        id="too-many-sync-standbys",
    ),
    pytest.param(
        _mutate(_node(2, name="PG1")),
        "nodes[2] (PG1).name", "name: PG1", "lowercase",
        id="uppercase-node-name",
    ),
    pytest.param(
        _mutate(lambda d: d.update(nodes=[])), "nodes", "nodes:", "must not be empty",
        id="empty-nodes-list",
    ),
    pytest.param(
        _edit("stack: patroni", "stack: repmgr"), "stack", "stack: repmgr",
        "'patroni' or 'pg_auto_failover'",
        id="unknown-stack",
    ),
    pytest.param(
        _edit("dcs: etcd", "dcs: zookeeper"), "dcs", "dcs: zookeeper", "'etcd' or 'consul'",
        id="unknown-dcs",
    ),
    pytest.param(
        _edit("provider: local", "provider: docker"), "provider", "provider: docker",
        "'local', 'vagrant', 'podman' or 'hosts'",
        id="unknown-provider",
    ),
    pytest.param(
        _edit("dcs: etcd", "dcs: consul"), "dcs", "dcs: consul", "set dcs: etcd",
        id="consul-with-local-provider",
    ),
    pytest.param(
        _mutate(_set("network", loopback="10.0.0.0/24")),
        "network.loopback", "10.0.0.0/24", "not inside 127.0.0.0/8",
        id="loopback-outside-127",
    ),
    pytest.param(
        _mutate(_set("network", subnet="192.168.11.0/33")),
        "network.subnet", "192.168.11.0/33", "not an IPv4 network",
        id="invalid-subnet",
    ),
    pytest.param(
        _mutate(_set("ports", patroni=5432)), "ports.patroni", "patroni: 5432", "postgres, patroni are all 5432",
        id="clashing-ports",
    ),
    pytest.param(
        _mutate(_set("ports", postgres=80)), "ports.postgres", "postgres: 80", "between 1024 and 65535",
        id="privileged-port",
    ),
    pytest.param(
        _mutate(_set("postgres", version=16)), "postgres.version", "version: 16", "one of 15",
        id="unsupported-postgres-version",
    ),
    pytest.param(
        _mutate(_set("patroni", ttl=10)), "patroni.ttl", "ttl: 10", "at least 20",
        id="patroni-ttl-too-short",
    ),
    pytest.param(
        _mutate(_set("patroni", ttl=20, retry_timeout=10)), "patroni.ttl", "ttl: 20", "raise ttl to at least 22",
        id="patroni-ttl-below-loop-and-retries",
    ),
    pytest.param(
        _mutate(_set("patroni", synchronous_mode_strict=True)), "patroni.synchronous_mode_strict",
        "synchronous_mode_strict: true", "set synchronous_mode: true",
        id="patroni-strict-without-synchronous-mode",
    ),
    pytest.param(
        _mutate(_set("patroni", synchronous_mode="sometimes")), "patroni.synchronous_mode",
        "synchronous_mode: sometimes", "boolean",
        id="patroni-synchronous-mode-not-a-boolean",
    ),
    pytest.param(
        _mutate(_set("patroni", tll=30)), "patroni.tll", "tll: 30", "did you mean 'ttl'?",
        id="patroni-unknown-key",
    ),
    pytest.param(
        _edit("    address: 192.168.11.121", "   address: 192.168.11.121"),
        None, "   address: 192.168.11.121", "not valid YAML",
        id="yaml-syntax-error",
    ),
    pytest.param(
        _edit("scope: pglab ", "scope: 'pglab "), None, None, "not valid YAML",
        id="yaml-unclosed-quote",
    ),
    pytest.param(
        "- name: pg1\n- name: pg2\n", None, "- name: pg1", "must be a YAML mapping",
        id="file-is-a-list",
    ),
    pytest.param(
        "", "nodes", None, "is required",
        id="empty-file",
    ),
    pytest.param(
        _default() + "1: x\n", "1", "1: x", "unknown key",
        id="non-string-key",
    ),
    pytest.param(
        _default() + "name: other\n", "name", "name: other", "twice",
        id="duplicate-top-level-key",
    ),
]


@pytest.mark.parametrize(("text", "field", "needle", "hint"), MALFORMED)
def test_malformed_topology_is_explained(
    text: str, field: str | None, needle: str | None, hint: str
) -> None:
    with pytest.raises(TopologyError) as caught:
        parse(text, SOURCE)
    message = str(caught.value)

    assert message.startswith(SOURCE), message
    assert "\n" not in message, f"message is not one paragraph: {message!r}"
    assert "line " in message, message
    if needle is not None:
        found = re.search(r"\bline (\d+)\b", message)
        assert found, message
        assert int(found.group(1)) == _line_of(text, needle), message
    if field is not None:
        assert f"field {field}:" in message, message
    assert hint in message, message


def test_syntax_error_names_line_and_column() -> None:
    text = _edit("  subnet: 192.168.11.0/24", "  subnet: 192.168.11.0/24: x")
    with pytest.raises(TopologyError) as caught:
        parse(text, SOURCE)
    message = str(caught.value)
    assert f"{SOURCE}, line {_line_of(text, '/24: x')}, column " in message
    assert "indentation" in message


def test_only_first_of_several_problems_is_explained() -> None:
    text = _mutate(lambda d: d.update(stack="repmgr", provider="docker"))
    with pytest.raises(TopologyError) as caught:
        parse(text, SOURCE)
    message = str(caught.value)
    assert "field provider:" in message
    assert "1 more problem(s)" in message
    assert "\n" not in message


# Loading ----------------------------------------------------------------------------------------

def test_load_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "pglab.yml"
    path.write_text(_default())
    assert load(path).name == "pglab"
    assert load(str(path)).nodes[0].name == "dcs"


def test_load_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pglab.yml"
    path.write_text(_edit("stack: patroni", "stack: repmgr"))
    with pytest.raises(TopologyError, match=re.escape(f"{path}, line 8, field stack:")):
        load(path)


def test_load_missing_file_says_run_init(tmp_path: Path) -> None:
    path = tmp_path / "nope.yml"
    with pytest.raises(TopologyError) as caught:
        load(path)
    message = str(caught.value)
    assert str(path) in message
    assert "no such file" in message
    assert "pglab init" in message
    assert "\n" not in message


def test_patroni_section_reaches_the_roles_and_defaults_to_asynchronous() -> None:
    from pglab.providers import get_provider
    from pglab.render import lab_variables

    topo = parse(_mutate(_set("patroni", ttl=30, synchronous_mode=True)))
    assert topo.patroni.ttl == 30 and topo.patroni.synchronous_mode is True
    assert parse(_default()).patroni.synchronous_mode is False
    variables = lab_variables(topo, get_provider(topo, Path("/nonexistent")))
    assert variables["patroni_ttl"] == 30 and variables["patroni_synchronous_mode"] is True


def test_init_writes_a_provider_section_only_for_its_provider() -> None:
    assert "\nvagrant:" not in default_yaml()
    assert "\nvagrant:" in default_yaml(provider="vagrant")


def test_a_local_lab_with_a_vagrant_section_loads_with_a_one_line_warning(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pglab.cli import main

    path = tmp_path / "pglab.yml"
    path.write_text(default_yaml(loopback="127.0.29.0/24") + "vagrant:\n  box: debian/bookworm64\n")
    result = CliRunner().invoke(main, ["render", "-f", str(path)])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if "warning" in line]
    assert warnings == [f"pglab: warning: {path}: the vagrant section applies to provider vagrant and is "
                        "ignored by provider local; remove it"], result.output
