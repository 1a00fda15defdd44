"""The end-to-end tests' last line (``vm-e2e: ...``, ``containers-e2e: ...``): printed, and written
to ``$PGLAB_E2E_SUMMARY`` for ``./bootstrap``, which prints it last."""

from __future__ import annotations

import os
from pathlib import Path


def report(line: str) -> None:
    print(line, flush=True)
    summary = os.environ.get("PGLAB_E2E_SUMMARY")
    if summary:
        Path(summary).write_text(line + "\n")
