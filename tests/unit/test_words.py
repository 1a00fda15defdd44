"""What a user reads speaks of PostgreSQL HA, never of where the project came from."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from pglab.cli import main

REPO = Path(__file__).resolve().parents[2]
# Assembled so that this file passes its own grep.
FORBIDDEN = re.compile(r"\b(" + "|".join(["se" + "eds?", "home" + "work", "ot" + "us"]) + r")\b", re.IGNORECASE)


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


@pytest.mark.parametrize("command", _commands(main), ids=lambda c: " ".join(c) or "pglab")
def test_help_speaks_of_the_lab(command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert not FORBIDDEN.search(result.output), FORBIDDEN.search(result.output)


@pytest.mark.parametrize("args", [[], ["--stack", "pg_auto_failover"], ["--provider", "vagrant", "--dcs", "consul"]])
def test_init_writes_a_lab_a_user_would_name(tmp_path: Path, args: list[str]) -> None:
    path = tmp_path / "pglab.yml"
    result = CliRunner().invoke(main, ["init", "-f", str(path), *args])
    assert result.exit_code == 0, result.output
    assert not FORBIDDEN.search(result.output + path.read_text())
    assert "name: pglab" in path.read_text()


def test_shipped_files_speak_of_the_lab() -> None:
    roots = ["README.md", "src", "roles", "playbooks", "templates", "inventories", "tests", "bench",
             "Vagrantfile.j2", "bootstrap"]
    offenders = []
    for root in roots:
        path = REPO / root
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        for file in files:
            if "__pycache__" in file.parts:
                continue
            try:
                text = file.read_text()
            except UnicodeDecodeError:
                continue
            offenders += [f"{file.relative_to(REPO)}:{i}" for i, line in enumerate(text.splitlines(), 1)
                          if FORBIDDEN.search(line)]
    assert offenders == []
