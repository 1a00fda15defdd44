"""Write unavailability and acknowledged writes lost during a planned switchover.

Brings up one lab (``benchha``, the default topology of ``--stack``) on its own loopback range in a temporary
directory, runs `pglab drill switchover` on it ``--runs`` times and always destroys it.
See bench/_ha.py and src/pglab/drills/kinds/switchover.py.

    .venv/bin/python bench/switchover.py [--runs 3] [--loopback 127.0.32.0/24] [--stack STACK] [--json]
"""

from __future__ import annotations

import sys

from _ha import main

if __name__ == "__main__":
    sys.exit(main("switchover", "Write unavailability and lost writes during a planned switchover."))
