"""`pglab drill cpu-starve`: every process of one node limited together to a share of one core
for ``--for`` seconds; does the stack fail over, flap, or just get slow?"""

from __future__ import annotations

from dataclasses import dataclass

from pglab.drills.kind import Drill, Option
from pglab.drills.node_limit import NODE_OPTION, NodeLimit, duration_option
from pglab.topology import Node


@dataclass
class CpuStarve(NodeLimit):
    name = "cpu-starve"
    summary = "a node limited to a share of one core for a while"
    options = (NODE_OPTION, duration_option(10.0),
               Option("percent", "The share of one core the node's processes get together.", type=float,
                      default=5.0, metavar="P", low=1, high=100))
    percent: float = 5.0

    def apply(self, drill: Drill, node: Node) -> str:
        return drill.lab.provider.limit_cpu(node, self.percent)
