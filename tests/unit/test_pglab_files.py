"""pglab_files (roles/pglab/library): the module that writes a service's directories and files in
one run. Its parents get the owner too, as the file module gives them, so a service user can
write where pglab created a directory for it."""

from __future__ import annotations

import importlib.util
import os
import pwd
from pathlib import Path
from types import ModuleType

from pglab import paths


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "pglab_files", paths.roles_dir() / "pglab" / "library" / "pglab_files.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_directories_gives_every_created_parent_the_owner(tmp_path: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    owner = (nobody.pw_uid, nobody.pw_gid)
    existing = tmp_path / "node"
    existing.mkdir()
    target = existing / "run" / "postgresql"
    _module().make_directories(str(target), owner if os.geteuid() == 0 else None)
    assert target.is_dir()
    if os.geteuid() == 0:
        assert (target.stat().st_uid, target.parent.stat().st_uid) == (owner[0], owner[0])
        assert existing.stat().st_uid == 0  # what existed is left as it was


def test_make_directories_without_owner_leaves_ownership_alone(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    _module().make_directories(str(target) + "/", None)
    assert target.is_dir() and target.stat().st_uid == os.geteuid()
