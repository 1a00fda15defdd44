"""Check 3, the virtual IP: it sits on the leader's node (the nodes' own interfaces say so), and
PostgreSQL and, with the pooler on, PgBouncer answer there over TLS as the leader (the
certificate names the address: verify-full)."""

from __future__ import annotations

from pglab import waiting
from pglab.checks import VIP_GRACE, leader, vip_serves
from pglab.components import pooler
from pglab.lab import Lab


def test_the_vip_sits_on_the_leader_s_node_alone(lab: Lab) -> None:
    now = leader(lab)

    def on_the_leader() -> tuple[bool, str]:
        holder = lab.vip_node()
        return holder == now, f"held by {holder or 'no node'}"

    done, detail, _ = waiting.poll(on_the_leader, VIP_GRACE, 0.5)
    assert done, f"the virtual IP {lab.vip_endpoint(False)[0]} is {detail}, not by the leader {now}"
    holders = [n.name for n in lab.topology.with_role("postgres")
               if lab.provider.holds_address(n, lab.vip_endpoint(False)[0])]
    assert holders == [now], f"the virtual IP is held by {', '.join(holders)}: only the leader {now} should hold it"


def test_postgresql_answers_at_the_vip_as_the_leader(lab: Lab, password: str) -> None:
    now = leader(lab)
    done, detail, _ = waiting.poll(lambda: vip_serves(lab, password, pooled=False), VIP_GRACE, 0.5)
    assert done and detail == now, f"PostgreSQL at the virtual IP: {detail}; the leader is {now}"


def test_pgbouncer_answers_at_the_vip_as_the_leader(lab: Lab, password: str) -> None:
    if not pooler.enabled(lab.topology):
        return  # no pooler, no pooled port at the address
    now = leader(lab)
    done, detail, _ = waiting.poll(lambda: vip_serves(lab, password, pooled=True), VIP_GRACE, 0.5)
    assert done and detail == now, f"PgBouncer at the virtual IP: {detail}; the leader is {now}"
