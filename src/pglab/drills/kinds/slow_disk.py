"""`pglab drill slow-disk`: every process of one node throttled on its data's device (reads and
writes, in operations or bytes a second) for ``--for`` seconds; what does a commit feel, and does
the stack fail over or flap?"""

from __future__ import annotations

from dataclasses import dataclass

from pglab.drills.kind import Drill, Option
from pglab.drills.node_limit import NODE_OPTION, NodeLimit, duration_option
from pglab.errors import InputError
from pglab.lab import Lab
from pglab.topology import Node


@dataclass
class SlowDisk(NodeLimit):
    name = "slow-disk"
    summary = "a node's disk throttled (IOPS or bytes/s) for a while"
    options = (NODE_OPTION, duration_option(10.0),
               Option("iops", "Reads and writes a second the node's disk takes.", type=int, metavar="N", low=1),
               Option("bps", "Bytes a second the node's disk reads and writes.", type=int, metavar="N", low=4096))
    iops: int | None = None
    bps: int | None = None

    def check(self, lab: Lab) -> None:
        if self.iops is None and self.bps is None:
            raise InputError("slow-disk needs --iops N or --bps N (or both)")
        super().check(lab)

    def apply(self, drill: Drill, node: Node) -> str:
        return drill.lab.provider.throttle_disk(node, self.iops, self.bps)
