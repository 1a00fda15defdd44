"""Shared test helpers: test labs live on their own loopback ranges (127.0.21.x and up), so the
suite never fights a lab a user runs on 127.0.11.x."""

from __future__ import annotations

from pathlib import Path

from pglab import topology

TEST_LOOPBACK = "127.0.21.0/24"


def write_topology(directory: Path, name: str = "itest", loopback: str = TEST_LOOPBACK, **kwargs: str) -> Path:
    """The default lab, renamed and moved to a test loopback range."""
    text = topology.default_yaml(name=name, loopback=loopback, **kwargs)  # type: ignore[arg-type]
    path = directory / "pglab.yml"
    path.write_text(text)
    return path
