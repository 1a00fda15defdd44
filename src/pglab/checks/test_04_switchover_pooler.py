"""Check 4, the pooler after the switchover: the pooled and the direct writes ports reach the same
server (``inet_server_addr()``), the new leader; no pooled client is left on the old one."""

from __future__ import annotations

from pglab import sql
from pglab.checks import leader, node_at
from pglab.lab import Lab


def test_pooled_and_direct_writes_agree_after_the_switchover(lab: Lab, haproxy_node: str, password: str) -> None:
    address, ports = lab.address(haproxy_node), lab.topology.ports
    pooled = sql.server_state(address, ports.haproxy_primary, password, lab.libpq_tls())
    direct = sql.server_state(address, ports.haproxy_primary_direct, password, lab.libpq_tls())
    assert pooled == direct == (False, lab.address(leader(lab))), (
        f"{haproxy_node}: pooled writes reach {node_at(lab, pooled[1])}, direct writes {node_at(lab, direct[1])}, "
        f"the leader is {leader(lab)}")
