"""The offline box's bookkeeping: a box from another recipe is rebuilt, and the base volumes of
replaced boxes leave libvirt's pool once no lab's disk needs them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pglab.vm import box

ROLES = Path(__file__).resolve().parents[2] / "roles"


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


def test_the_box_holds_every_package_the_roles_install() -> None:
    """VMs from the box reach no mirror: what a role's defaults name must be in the box."""
    named = set()
    for defaults in ROLES.glob("*/defaults/main.yml"):
        for key, value in (yaml.safe_load(defaults.read_text()) or {}).items():
            if key.endswith("_packages") and key != "patroni_pip_packages" and isinstance(value, list):
                named |= {str(v).replace("{{ postgresql_version }}", "15") for v in value}
    assert named, "no role names its packages any more: this test reads roles/*/defaults/main.yml"
    assert named <= {*box.BASE_PACKAGES, *box.LAB_PACKAGES}, named - {*box.BASE_PACKAGES, *box.LAB_PACKAGES}


def test_roles_ask_dpkg_before_apt() -> None:
    """Only pglab's packages tasks (dpkg first, apt for what is missing) and Consul's vendor
    repository call apt: an apt task with update_cache fails on an offline VM."""
    callers = sorted(str(path.relative_to(ROLES.parent)) for path in ROLES.glob("*/tasks/*.yml")
                     if "ansible.builtin.apt:" in path.read_text())
    assert callers == ["roles/consul/tasks/packages.yml", "roles/consul/tasks/repository.yml",
                       "roles/pglab/tasks/packages.yml"]


def test_the_container_image_and_the_vm_box_share_one_recipe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both outputs are made by make_rootfs, and the image is labelled with the box's recipe."""
    from pglab.vm import image

    made: list[Path] = []
    monkeypatch.setattr(box, "cache_dir", lambda: tmp_path)
    monkeypatch.setattr(box, "check_tools", lambda *tools: None)
    monkeypatch.setattr(image, "recipe_of_image", lambda name=image.IMAGE_NAME: None)
    monkeypatch.setattr(box, "make_rootfs", lambda root, work, report: (made.append(root), root.mkdir()))
    admins: list[Path] = []
    monkeypatch.setattr(image, "add_admin", lambda root, work: admins.append(root))
    imported: list[tuple[Path, str, list[str]]] = []
    monkeypatch.setattr(image, "podman_import", lambda root, name, changes: imported.append((root, name, changes)))
    monkeypatch.setattr(image, "image_id", lambda name: None)
    result = image.build(report=lambda _text: None)
    assert result.built and made == [tmp_path / "build" / "rootfs"]
    assert imported == [(made[0], image.IMAGE_NAME, image.import_changes(image.recipe()))]
    assert admins == made  # the image's own administrator, beside the box's vagrant user
    assert not (tmp_path / "build").exists()  # the work directory goes once the image is in podman


def test_a_rebuild_drops_the_image_it_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The old image, untagged by the import, goes (hundreds of MB), unless a container uses it."""
    from pglab.vm import image

    ids = iter(["old-id", "new-id"])
    monkeypatch.setattr(box, "cache_dir", lambda: tmp_path)
    monkeypatch.setattr(box, "check_tools", lambda *tools: None)
    monkeypatch.setattr(image, "recipe_of_image", lambda name=image.IMAGE_NAME: "0123456789abcdef")
    monkeypatch.setattr(box, "make_rootfs", lambda root, work, report: root.mkdir())
    monkeypatch.setattr(image, "add_admin", lambda root, work: None)
    monkeypatch.setattr(image, "podman_import", lambda root, name, changes: None)
    monkeypatch.setattr(image, "image_id", lambda name: next(ids))
    dropped: list[str] = []
    monkeypatch.setattr(image, "drop_replaced", lambda old_id, report: dropped.append(old_id))
    assert image.build(report=lambda _text: None).built
    assert dropped == ["old-id"]


def test_an_image_of_this_recipe_is_reused_and_another_rebuilt(monkeypatch: pytest.MonkeyPatch) -> None:
    from pglab.vm import image

    monkeypatch.setattr(image, "recipe_of_image", lambda name=image.IMAGE_NAME: image.recipe())
    assert image.is_current()
    assert not image.build(report=lambda _text: None).built
    monkeypatch.setattr(image, "recipe_of_image", lambda name=image.IMAGE_NAME: "0123456789abcdef")
    assert not image.is_current()


def test_the_image_starts_systemd() -> None:
    from pglab.vm import image

    changes = image.import_changes("abc")
    assert f'CMD ["{image.INIT}"]' in changes and "LABEL pglab.recipe=abc" in changes


def test_the_box_keeps_debian_s_own_pgbouncer_off() -> None:
    """Debian's package enables its own PgBouncer (localhost:6432): the box, and so the image, disables
    it, and the recipe changes with it (an image that starts it is rebuilt)."""
    assert "pgbouncer.service" in box.DISABLED_UNITS
    assert "postgresql.service" in box.DISABLED_UNITS


def test_the_pgbouncer_role_stops_the_package_s_instance_only_where_it_installed_it() -> None:
    """On a machine or server where the package was there before, its instance is its owner's."""
    tasks = yaml.safe_load((ROLES / "pgbouncer" / "tasks" / "packages.yml").read_text())
    stop = next(t for t in tasks if "disable --now" in " ".join(t.get("ansible.builtin.command", {}).get("argv", [])))
    assert "pglab_packages_just_installed" in stop["when"]
    shared = yaml.safe_load((ROLES / "pglab" / "tasks" / "packages.yml").read_text())
    names = [t["name"] for t in shared]
    assert names.index("Remember which of them this run installs") < names.index("Install the missing packages")


def test_the_image_s_recipe_follows_the_box_s_and_adds_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    from pglab.vm import image

    before = image.recipe()
    assert before != box.recipe()  # the image adds an administrator the box has not
    monkeypatch.setattr(box, "LAB_PACKAGES", [*box.LAB_PACKAGES, "postgresql-15-repack"])
    assert image.recipe() != before
