"""Write unavailability and acknowledged writes lost when the leader crashes.

Brings up one lab (``benchha``, the default topology of ``--stack``) on its own loopback range in
a temporary directory and reuses it for every run; always destroys it. Each run writes one row per
statement through the lab's writes endpoint (HAProxy 5000, or pg_auto_failover's multi-host URI)
for 3 s, kills every process of the leader's node with SIGKILL (``operations.stop_node(mode="crash")``,
which returns once a replica is promoted and writes resume), starts the old leader again
(``operations.start_node``: it rejoins as a replica, rewound when needed), keeps writing until
writes have succeeded for 3 s after that, then reads the table back through the same endpoint.
See bench/_ha.py and bench/_writer.py.

    .venv/bin/python bench/failover.py [--runs 3] [--loopback 127.0.32.0/24] [--stack STACK] [--json]
"""

from __future__ import annotations

import sys
from typing import Any

from _ha import Log, Scenario, main

from pglab import operations
from pglab.lab import Lab
from pglab.operations import OpResult


def perform(lab: Lab, leader: str, on_event: Any, log: Log) -> list[OpResult]:
    crashed = operations.stop_node(lab, leader, mode="crash", on_event=on_event)
    log(crashed.summary)
    started = operations.start_node(lab, leader, on_event=on_event)
    log(started.summary)
    return [crashed, started]


SCENARIO = Scenario("failover", "crash of the leader", perform)

if __name__ == "__main__":
    sys.exit(main(SCENARIO, "Write unavailability and lost writes when the leader node is killed (SIGKILL)."))
