"""Write unavailability and acknowledged writes lost during a planned switchover.

Brings up one lab (``benchha``, the default topology of ``--stack``) on its own loopback range in
a temporary directory and reuses it for every run; always destroys it. Each run writes one row per
statement through the lab's writes endpoint (HAProxy 5000, or pg_auto_failover's multi-host URI)
for 3 s, asks for a switchover with ``operations.switchover`` (Patroni, or the pg_auto_failover
monitor, picks the target), keeps writing until writes have succeeded for 3 s after it returned,
then reads the table back through the same endpoint. See bench/_ha.py and bench/_writer.py.

    .venv/bin/python bench/switchover.py [--runs 3] [--loopback 127.0.32.0/24] [--stack STACK] [--json]
"""

from __future__ import annotations

import sys
from typing import Any

from _ha import Log, Scenario, main

from pglab import operations
from pglab.lab import Lab
from pglab.operations import OpResult


def perform(lab: Lab, leader: str, on_event: Any, log: Log) -> list[OpResult]:
    result = operations.switchover(lab, on_event=on_event)
    log(result.summary)
    return [result]


SCENARIO = Scenario("switchover", "switchover", perform)

if __name__ == "__main__":
    sys.exit(main(SCENARIO, "Write unavailability and lost writes during a planned switchover."))
