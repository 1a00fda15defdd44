"""One way to wait for a condition, used by the lab, the providers, operations and checks."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from pglab.errors import WaitTimeout

Check = Callable[[], tuple[bool, str]]
# Slow machines (VMs under software emulation) need longer waits: every timeout is multiplied by
# this environment variable's value (1 when unset).
TIMEOUT_SCALE_VARIABLE = "PGLAB_TIMEOUT_SCALE"


def timeout_scale() -> float:
    try:
        return max(float(os.environ.get(TIMEOUT_SCALE_VARIABLE, "1")), 1.0)
    except ValueError:
        return 1.0


def poll(check: Check, timeout: float, interval: float = 0.25,
         on_wait: Callable[[str, float], Any] | None = None,
         transient: tuple[type[BaseException], ...] = (OSError,)) -> tuple[bool, str, float]:
    """Call ``check`` (returning done, detail) until done or ``timeout``; errors listed in
    ``transient`` count as "not yet". Returns (done, last detail, seconds waited)."""
    timeout *= timeout_scale()
    started = time.monotonic()
    while True:
        try:
            done, detail = check()
        except transient as exc:
            done, detail = False, str(exc).strip() or type(exc).__name__
        elapsed = time.monotonic() - started
        if done or elapsed > timeout:
            return done, detail, elapsed
        if on_wait is not None:
            on_wait(detail, elapsed)
        time.sleep(interval)


def wait_until(check: Check, timeout: float, what: str, interval: float = 0.25,
               on_wait: Callable[[str, float], Any] | None = None,
               transient: tuple[type[BaseException], ...] = (OSError,)) -> float:
    """Like :func:`poll`, raising :class:`WaitTimeout` naming ``what`` when time runs out."""
    done, detail, elapsed = poll(check, timeout, interval, on_wait, transient)
    if not done:
        raise WaitTimeout(f"timed out after {elapsed:.0f} s waiting for {what}: {detail}")
    return elapsed
