"""The end-to-end tests' last line (``vm-e2e: ...``, ``containers-e2e: ...``): printed, and written
to ``$PGLAB_E2E_SUMMARY`` for ``./bootstrap``, which prints it last."""

from __future__ import annotations

import os
import re
from pathlib import Path

# The line `pglab verify` prints after its VIP switchover check: the node, the seconds after the
# switchover was acknowledged, and after it was asked for.
VIP_MOVED = re.compile(r"vip: answered as the primary on (\S+) ([\d.]+) s after the switchover .* "
                       r"\(([\d.]+) s after it")


def report(line: str) -> None:
    print(line, flush=True)
    summary = os.environ.get("PGLAB_E2E_SUMMARY")
    if summary:
        Path(summary).write_text(line + "\n")
