"""The documentation: a short README, a site that builds strictly, a topology reference that covers
every field, a house map that covers every module, and no run journal (commit hashes, issue numbers)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.unit.test_words import FORBIDDEN

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"
PACKAGE = REPO / "src" / "pglab"
HOUSE_MAP = DOCS / "architecture.md"

# An abbreviated or full commit hash: 7 to 40 hex digits with at least one digit and one letter
# (plain numbers such as 1048576 and words such as "defaced" are not hashes).
HASH = re.compile(r"\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b")
HEXLIKE = re.compile(r"\b[0-9a-f]{7,40}\b")
ISSUE = re.compile(r"\bissues?\s*#?\d+", re.IGNORECASE)
# A line of the house map: "- `path` — job".
MAP_LINE = re.compile(r"^- `([^`]+)` — \S", re.MULTILINE)


def _reference() -> ModuleType:
    """The site's build hook that generates the topology reference (it lives beside the pages)."""
    name = "pglab_docs_topology_reference"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, DOCS / "hooks" / "topology_reference.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # its dataclasses look their module up while it loads
        spec.loader.exec_module(module)
    return sys.modules[name]


def _texts() -> dict[str, str]:
    """README.md, mkdocs.yml and every text file of docs/, plus the generated topology reference."""
    files = [README, REPO / "mkdocs.yml", *(p for p in DOCS.rglob("*") if p.is_file() and "__pycache__" not in p.parts)]
    texts = {}
    for file in files:
        try:
            texts[str(file.relative_to(REPO))] = file.read_text()
        except UnicodeDecodeError:
            continue  # the PNG figures
    texts["docs/reference/topology.md (generated)"] = _reference().render()
    return texts


def _is_commit(candidate: str) -> bool:
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        return False
    found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{candidate}^{{commit}}"], cwd=REPO,
                           capture_output=True, text=True, check=False)
    return found.returncode == 0


def test_readme_is_short_and_starts_with_the_setup() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move reference material to docs/"
    head = "\n".join(lines[:40])
    assert "./bootstrap up" in head and "./bootstrap test" in head


def test_readme_links_resolve() -> None:
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text())
    missing = [link for link in links if "://" not in link and not (REPO / link).exists()]
    assert links and not missing, missing


def test_no_commit_hash_or_issue_number() -> None:
    offenders = []
    for name, text in _texts().items():
        for i, line in enumerate(text.splitlines(), 1):
            hashes = HASH.findall(line) + [m for m in HEXLIKE.findall(line) if not HASH.fullmatch(m) and _is_commit(m)]
            offenders += [f"{name}:{i}: {found}" for found in hashes + ISSUE.findall(line)]
    assert not offenders, "history belongs in git, not in the docs:\n" + "\n".join(offenders)


def test_docs_speak_of_the_lab() -> None:
    offenders = [f"{name}:{i}" for name, text in _texts().items()
                 for i, line in enumerate(text.splitlines(), 1) if FORBIDDEN.search(line)]
    assert not offenders, offenders


def test_topology_reference_describes_every_field() -> None:
    reference = _reference()
    sections = reference.sections()
    undescribed = [f"{s.path or '(top)'}.{row.key}" for s in sections for row in s.rows if not row.description]
    assert not undescribed, f"give these fields a description (in the model, or in NOTES): {undescribed}"
    assert not reference.unused_notes(), "NOTES names fields that are gone or described by the model now"
    top = {row.key for row in sections[0].rows}
    assert {"name", "provider", "stack", "nodes", "backup", "patroni", "pg_auto_failover"} <= top


def _modules() -> set[str]:
    """Every module and package under src/pglab, as the house map names them."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if "__pycache__" in relative.parts:
            continue
        if path.name == "__init__.py":
            if relative.parent != Path("."):
                found.add(f"{relative.parent.as_posix()}/")
        else:
            found.add(relative.as_posix())
    return found


def test_house_map_lists_every_module_and_nothing_else() -> None:
    text = HOUSE_MAP.read_text()
    section = text.split("\n## Every module\n", 1)[1].split("\n## ", 1)[0]
    listed = MAP_LINE.findall(section)
    modules = _modules()
    missing = sorted(modules - set(listed))
    stale = sorted(set(listed) - modules)
    assert not missing, f"add a line `- \\`path\\` — its one job` to docs/architecture.md for: {missing}"
    assert not stale, f"docs/architecture.md lists modules that are gone: {stale}"
    assert len(listed) == len(set(listed)), "a module is listed twice in docs/architecture.md"


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs is not installed (the dev extra)")
def test_site_builds_strictly(tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-f",
                             str(REPO / "mkdocs.yml"), "-d", str(site)],
                            cwd=REPO, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    page = (site / "reference" / "topology" / "index.html").read_text()
    assert "retention_full" in page and "synchronous_mode" in page, "the generated reference is missing"


def test_example_labs_are_valid_topologies() -> None:
    """Every whole lab shown in README.md or docs/ (a YAML block starting with `name:`) loads."""
    from pglab import catalog

    examples = [(name, block) for name, text in _texts().items()
                for block in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL) if block.startswith("name:")]
    assert len(examples) >= 2
    for name, block in examples:
        assert catalog.parse(block).nodes, name
