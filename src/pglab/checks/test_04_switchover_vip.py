"""Check 4, the virtual IP after a switchover: it leaves the old leader's node and lands on the
new leader's, where PostgreSQL (and PgBouncer) answer as the primary. The seconds it took after
the switchover was acknowledged (pglab's switchover returned: the new leader serves, writes follow
it) and after it was asked for are printed, not judged (they depend on the machine)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from pglab import operations, waiting
from pglab.checks import VIP_GRACE, a_streaming_replica, leader, vip_serves
from pglab.components import pooler
from pglab.lab import Lab


@pytest.fixture(scope="module")
def moved(lab: Lab, password: str, pytestconfig: pytest.Config) -> dict[str, Any]:
    old, target = leader(lab), a_streaming_replica(lab)
    begun = time.monotonic()
    operations.switchover(lab, to=target)  # returns once the new leader serves and writes follow it
    acknowledged = time.monotonic()
    done, detail, _ = waiting.poll(lambda: vip_serves(lab, password, pooled=False), VIP_GRACE, 0.1)
    seconds, since_begun = time.monotonic() - acknowledged, time.monotonic() - begun
    # Printed past pytest's capture, on the suite's own output (`pglab verify` shows it).
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"vip: {'answered as the primary on ' + detail if done else 'did not move: ' + detail}"
                                f" {seconds:.1f} s after the switchover from {old} to {target} was acknowledged"
                                f" ({since_begun:.1f} s after it was asked for)")
    return {"old": old, "target": target, "done": done, "detail": detail, "seconds": seconds}


def test_the_vip_moves_to_the_new_leader(lab: Lab, moved: dict[str, Any]) -> None:
    assert moved["done"] and moved["detail"] == moved["target"], (
        f"after the switchover to {moved['target']}, PostgreSQL at the virtual IP: {moved['detail']}")
    holder = lab.vip_node()
    assert holder == moved["target"], f"the virtual IP is held by {holder or 'no node'}, not by {moved['target']}"
    assert not lab.provider.holds_address(lab.topology.node(moved["old"]), lab.vip_endpoint(False)[0]), (
        f"the old leader {moved['old']} still holds the virtual IP")


def test_pgbouncer_at_the_vip_reaches_the_new_leader(lab: Lab, password: str, moved: dict[str, Any]) -> None:
    if not pooler.enabled(lab.topology):
        return
    done, detail, _ = waiting.poll(lambda: vip_serves(lab, password, pooled=True), VIP_GRACE, 0.5)
    assert done and detail == moved["target"], f"PgBouncer at the virtual IP: {detail}; the leader is {moved['target']}"
