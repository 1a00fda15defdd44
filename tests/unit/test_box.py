"""The offline box's bookkeeping: a box from another recipe is rebuilt, and the base volumes of
replaced boxes leave libvirt's pool once no lab's disk needs them."""

from __future__ import annotations

from pathlib import Path

import pytest

from pglab import box


def test_the_recipe_changes_with_the_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    before = box.recipe()
    assert before == box.recipe()
    monkeypatch.setattr(box, "LAB_PACKAGES", [*box.LAB_PACKAGES, "postgresql-15-repack"])
    assert box.recipe() != before


def test_a_box_without_its_recipe_stamp_is_not_current(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(box, "cache_dir", lambda: tmp_path / "boxes")
    monkeypatch.setattr(box, "is_added", lambda box_name=box.BOX_NAME: True)
    boot = box.boot_files()
    boot.kernel.parent.mkdir(parents=True)
    boot.kernel.write_text("kernel")
    boot.initrd.write_text("initrd")
    assert not box.is_current()  # built by a pglab that kept no recipe
    (boot.kernel.parent / "recipe").write_text("0123456789abcdef\n")
    assert not box.is_current()  # another recipe
    (boot.kernel.parent / "recipe").write_text(box.recipe() + "\n")
    assert box.is_current()


def test_stale_base_volumes_go_only_when_no_lab_disk_needs_them(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(box, "POOL_DIR", tmp_path)
    bases = [tmp_path / f"pglab-VAGRANTSLASH-debian12_vagrant_box_image_0_{n}_box.img" for n in (1, 2)]
    other_box = tmp_path / "debian-VAGRANTSLASH-bookworm64_vagrant_box_image_12_box.img"
    for path in (*bases, other_box):
        path.write_text("")
    assert box._stale_base_volumes() == bases
    (tmp_path / "pglab-mylab-pg1.img").write_text("")  # a lab's VM disk, an overlay on one of them
    assert box._stale_base_volumes() == []
