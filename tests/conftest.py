"""Shared test helpers: test labs live on their own loopback ranges (127.0.21.x and 127.0.22.x
unless PGLAB_TEST_NET moves them), so the suite never fights a lab a user runs on 127.0.11.x, and
two test runs on one machine (PGLAB_TEST_NET=41 and 51, say) never fight each other."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pglab import catalog
from pglab.lab import Lab, UpResult

TEST_NET = int(os.environ.get("PGLAB_TEST_NET", "21"))
TEST_LOOPBACK = f"127.0.{TEST_NET}.0/24"
# A second range for tests that bring up their own lab beside the session-wide one.
SECOND_LOOPBACK = f"127.0.{TEST_NET + 1}.0/24"


def loopback_address(host: int, second: bool = False) -> str:
    """The test loopback address of a node at host number ``host`` (192.168.11.<host>)."""
    return f"127.0.{TEST_NET + int(second)}.{host}"


def write_topology(directory: Path, name: str = "itest", loopback: str = TEST_LOOPBACK, **kwargs: str) -> Path:
    """The default lab, renamed and moved to a test loopback range."""
    text = catalog.default_yaml(name=name, loopback=loopback, **kwargs)  # type: ignore[arg-type]
    path = directory / "pglab.yml"
    path.write_text(text)
    return path


def pooler_off(text: str) -> str:
    """A topology's text with its pooler: section turned off (the default lab has PgBouncer)."""
    section = text.index("\npooler:")
    off = text[:section] + text[section:].replace("\n  enabled: true", "\n  enabled: false", 1)
    assert off != text, "the default topology's pooler: section changed shape"
    return off


@contextlib.contextmanager
def lab_up(path: Path, what: str, timeout: float) -> Iterator[tuple[Lab, UpResult]]:
    """The lab of the topology file ``path``, up for the block and destroyed after it even when
    `up` or a test fails; skips ``what`` (the tests' subject), naming what this machine lacks."""
    lab = Lab.from_file(path)
    if lab.missing_prerequisites() and os.geteuid() != 0:
        pytest.skip(f"{what} needs: " + "; ".join(lab.missing_prerequisites()))
    try:
        yield lab, lab.up(timeout=timeout)
    finally:
        lab.destroy()
