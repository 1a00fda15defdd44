"""Write unavailability and acknowledged writes lost when the leader's node fails.

Brings up one lab (``benchha``, the default topology of ``--stack``) on its own loopback range in a temporary
directory, runs `pglab drill crash` (or ``--kind hang|partition|failover|restart``) on it
``--runs`` times and always destroys it. See bench/_ha.py and src/pglab/drills/kinds/.

    .venv/bin/python bench/failover.py [--kind crash] [--runs 3] [--loopback 127.0.32.0/24] [--stack STACK] [--json]
"""

from __future__ import annotations

import sys

from _ha import main

from pglab.drills.kinds import KINDS

if __name__ == "__main__":
    kind = "crash"
    if "--kind" in sys.argv:
        at = sys.argv.index("--kind")
        kind = sys.argv[at + 1] if at + 1 < len(sys.argv) else ""
        del sys.argv[at:at + 2]
    if kind not in KINDS:
        sys.exit(f"--kind must be one of {', '.join(KINDS)}")
    sys.exit(main(kind, f"Write unavailability and lost writes in a `pglab drill {kind}`."))
