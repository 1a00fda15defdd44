"""The podman provider's decisions that need no container: names, connection, the cgroup
obstacle crun meets on a hybrid layout, addresses that clash with the bridge."""

from __future__ import annotations

from pathlib import Path

import pytest

from pglab import providers
from pglab.catalog.schema import parse
from pglab.providers import crun_cgroups, podman
from pglab.topology import Topology

LAB = """\
name: ctr
provider: podman
network: {subnet: 10.100.0.0/24}
nodes:
  - {name: dcs, address: 10.100.0.11, roles: [dcs, haproxy]}
  - {name: pg1, address: 10.100.0.12, roles: [postgres]}
"""


@pytest.fixture
def topology() -> Topology:
    return parse(LAB)


def test_podman_is_a_registered_provider_running_etcd_only() -> None:
    assert providers.provider_class("podman") is podman.PodmanProvider
    assert podman.PodmanProvider.dcs == ("etcd",)


@pytest.fixture
def provider(topology: Topology, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> podman.PodmanProvider:
    # No namespace is joined by a unit test: the lab's namespace does not exist here.
    monkeypatch.setattr(podman.netns, "exists", lambda name: False)
    return podman.PodmanProvider(topology, tmp_path / ".pglab" / "ctr")


def test_names_and_the_private_network(provider: podman.PodmanProvider) -> None:
    node = provider.topology.nodes[1]
    assert provider.container(node) == "pglab-ctr-pg1"
    assert provider.network == "pglab-ctr" and provider.namespace == "pglab-ctr"
    assert provider.gateway() == "10.100.0.1"


def test_ansible_connects_over_ssh_with_the_labs_own_key(provider: podman.PodmanProvider) -> None:
    variables = provider.connection_vars(provider.topology.nodes[0])
    assert variables["ansible_host"] == "10.100.0.11"
    assert variables["ansible_ssh_private_key_file"] == str(provider.lab_dir / "ssh" / "id_ed25519")
    assert variables["ansible_user"] == podman.SSH_USER and variables["ansible_become"] is True
    assert "ansible_connection" not in variables  # ssh, Ansible's default


def test_a_hybrid_cgroup_layout_with_a_v2_controller_is_explained(tmp_path: Path) -> None:
    controllers = tmp_path / "cgroup.controllers"
    controllers.write_text("hugetlb\n")
    blocker = podman.hybrid_cgroup_blocker(controllers)
    assert blocker and "hugetlb" in blocker and "mount -t cgroup -o hugetlb" in blocker
    controllers.write_text("\n")
    assert podman.hybrid_cgroup_blocker(controllers) is None
    assert podman.hybrid_cgroup_blocker(tmp_path / "absent") is None  # pure v2, or pure v1


def test_a_node_on_the_bridge_address_is_refused(topology: Topology, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    clash = parse(LAB.replace("10.100.0.11", "10.100.0.1"))
    monkeypatch.setattr(podman.netns, "exists", lambda name: False)
    monkeypatch.setattr(podman, "hybrid_cgroup_blocker", lambda: None)
    monkeypatch.setattr(podman.image, "is_current", lambda name=podman.image.IMAGE_NAME: True)
    problems = podman.PodmanProvider(clash, tmp_path).preflight()
    assert len(problems) == 1 and "dcs" in problems[0] and "10.100.0.1" in problems[0]
    assert podman.PodmanProvider(topology, tmp_path).preflight() == []


def test_container_states_come_from_podmans_json(provider: podman.PodmanProvider,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    answer = ('[{"Names": ["pglab-ctr-dcs"], "State": "running", "Status": "Up 2 minutes"},'
              ' {"Names": ["pglab-ctr-pg1"], "State": "paused", "Status": "Paused"}]')
    done = podman.subprocess.CompletedProcess([], 0, answer, "")
    monkeypatch.setattr(provider, "_podman", lambda *args, check=True: done)
    dcs, pg1 = provider.topology.nodes
    assert provider.machine_state(dcs) is None and provider.machine_state(pg1) == "FROZEN"
    assert provider.is_created()


def test_a_missing_image_is_built_on_first_use_or_its_absence_explained(
        provider: podman.PodmanProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(podman, "hybrid_cgroup_blocker", lambda: None)
    monkeypatch.setattr(podman.image, "is_current", lambda name=podman.image.IMAGE_NAME: False)
    monkeypatch.setattr(podman.image, "can_build", lambda: True)
    assert provider.preflight() == []  # `up` builds it, with progress
    monkeypatch.setattr(podman.image, "can_build", lambda: False)
    assert "pglab box build --format oci" in " ".join(provider.preflight())


def test_the_crun_cgroup_change_is_made_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`pglab prepare --cgroups-for-crun` mounts a v1 hierarchy for what v2 holds; with nothing
    held it changes nothing; `--give-back-cgroups` with nothing mounted says so."""
    controllers = tmp_path / "cgroup.controllers"
    monkeypatch.setattr(crun_cgroups, "UNIFIED_CGROUP", controllers)
    mounted: list[list[str]] = []
    monkeypatch.setattr(crun_cgroups, "give_v1_hierarchies", mounted.append)
    controllers.write_text("\n")
    assert crun_cgroups.change(give=True).startswith("nothing to change") and not mounted
    controllers.write_text("hugetlb\n")
    assert "hugetlb" in crun_cgroups.change(give=True) and mounted == [["hugetlb"]]
    monkeypatch.setattr(crun_cgroups, "CGROUP_ROOT", tmp_path)
    assert crun_cgroups.change(give=False).startswith("nothing to give back")
