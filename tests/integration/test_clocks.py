"""Every time pglab prints is what a client measures: the "writes resumed after" an operation
reports agrees, within a second, with the drill's own write probe on the same fault."""

from __future__ import annotations

from typing import Any

import pytest

from pglab import operations
from pglab.drills import frame
from pglab.drills.kinds.node_faults import Hang
from pglab.lab import Lab


def test_a_hang_reports_writes_resumed_when_the_drills_probe_saw_them(lab: Lab,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    reported: list[operations.OpResult] = []
    stop_node = operations.stop_node

    def recorded(*args: Any, **kwargs: Any) -> operations.OpResult:
        reported.append(stop_node(*args, **kwargs))
        return reported[-1]

    monkeypatch.setattr(operations, "stop_node", recorded)
    result = frame.run(lab, Hang(), timeout=90)
    assert result.recovered, result.problem
    assert reported and reported[0].details["was_leader"]
    probe_saw = next(m.at for m in result.markers if m.what == "writes resumed")
    operation_said = reported[0].details["writes_after"]
    assert abs(operation_said - probe_saw) <= 1.0, (operation_said, probe_saw, reported[0].summary)
    assert f"writes resumed after {operation_said:.1f} s" in reported[0].summary
