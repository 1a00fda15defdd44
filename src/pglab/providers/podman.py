"""The podman provider: every node is a systemd container made from pglab's offline image.

Each node is one container running systemd (``--systemd=always``) from the image
``pglab box build --format oci`` makes from the VM box's recipe, at its static address on a podman
network of the lab's own. Ansible reaches the nodes over SSH with a key made for the lab, as it
would reach real servers. What a node's services are and how they are stopped, logged and cut off
is the systemd half every provider of systemd machines shares
(:class:`pglab.providers.systemd.SystemdProvider`); this module adds the containers' lifecycle,
and the faults the container boundary makes most faithful: ``podman kill`` pulls the plug,
``podman pause`` freezes the whole node.

With ``podman.private_network`` (the default) the lab's network lives in a network namespace
pglab makes (``pglab-<lab>``), and pglab's own process joins it (:mod:`pglab.providers.netns`), so
no packet of the lab reaches the real network. Rootful podman only: rootless podman would need
slirp4netns or pasta for its network and delegated cgroups for systemd.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from pglab.prerequisites import Prerequisite
from pglab.providers import crun_cgroups, netns
from pglab.providers.systemd import SystemdError, SystemdProvider
from pglab.topology import Node, Strict, Topology
from pglab.vm import image


class PodmanSettings(Strict):
    """The topology's ``podman:`` section: how the containers are made."""

    image: str = image.IMAGE_NAME
    # The lab's network in a network namespace of its own, which pglab joins: nothing of the lab
    # reaches the real network. Off: podman's bridge in this machine's own namespace.
    private_network: bool = True


# The image's user with passwordless sudo (the VM box's; the lab's own key replaces its keys).
SSH_USER = "vagrant"
SSH_ARGS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"
# Where root cannot raise hard limits (containers in a VM, CI), podman's defaults are refused.
ULIMITS = ("nofile=16384:16384", "nproc=8192:8192")
# nftables (partitions) and a VIP need NET_ADMIN inside the node; keepalived's VRRP and gratuitous
# ARP need raw sockets (NET_RAW).
CAPABILITIES = ("NET_ADMIN", "NET_RAW")
# Services listen on a virtual IP before it arrives; the container's /proc/sys is read-only, so
# the kernel setting that allows it is the container's from the start.
SYSCTLS = ("net.ipv4.ip_nonlocal_bind=1",)
LAB_LABEL = "pglab-lab"
SSH_TIMEOUT = 60.0


class PodmanError(SystemdError):
    """A podman command failed, or a node did not answer."""


def hybrid_cgroup_blocker(controllers_file: Path | None = None) -> str | None:
    """Why crun would refuse to start a container here, or None (see :mod:`crun_cgroups`)."""
    return crun_cgroups.blocker(controllers_file)


class PodmanProvider(SystemdProvider):
    name = "podman"
    settings = PodmanSettings
    error = PodmanError
    # Consul comes from HashiCorp's repository: the offline image holds only what Debian packages.
    dcs = ("etcd",)
    dcs_note = "the offline image holds no Consul (it is not a Debian 12 package)"
    # Only the slower faults tried on containers so far; the others (resource limits through the
    # container's systemd, loss and latency inside its namespace, one process killed through its
    # units' cgroups) wait for a container run that proves them.
    faults = frozenset({"dcs-loss"})

    def __init__(self, topology: Topology, lab_dir: Path) -> None:
        super().__init__(topology, lab_dir)
        # Every command on a made lab (status, verify, drills) talks to its nodes: from inside.
        self._enter_network(make=False)

    # Facts -----------------------------------------------------------------------------------
    @property
    def settings_of_lab(self) -> PodmanSettings:
        return self.topology.section(self.name, PodmanSettings)

    @property
    def namespace(self) -> str | None:
        return f"pglab-{self.topology.name}" if self.settings_of_lab.private_network else None

    @property
    def network(self) -> str:
        return f"pglab-{self.topology.name}"

    @property
    def key_file(self) -> Path:
        return self.lab_dir / "ssh" / "id_ed25519"

    def container(self, node: Node) -> str:
        return f"pglab-{self.topology.name}-{node.name}"

    def address(self, node: Node) -> str:
        return str(node.address)

    def gateway(self) -> str:
        """The bridge's own address: the subnet's first (podman's choice too)."""
        return str(next(self.topology.network.subnet.hosts()))

    def connection_vars(self, node: Node) -> dict[str, Any]:
        return {
            "ansible_host": str(node.address),
            "ansible_user": SSH_USER,
            "ansible_ssh_private_key_file": str(self.key_file),
            # Every lab's containers get fresh host keys at the same addresses.
            "ansible_ssh_common_args": SSH_ARGS,
            "ansible_become": True,
            "ansible_python_interpreter": "/usr/bin/python3",
        }

    def prerequisites(self) -> list[Prerequisite]:
        return [Prerequisite("podman", "podman", shutil.which("podman") is not None)]

    def host_changes(self) -> list[str]:
        blocker = hybrid_cgroup_blocker()
        return [blocker] if blocker else []

    def preflight(self) -> list[str]:
        problems = []
        blocker = hybrid_cgroup_blocker()
        if blocker:
            problems.append(blocker)
        if self._builds_image() and not image.can_build():
            problems.append(f"the image {image.IMAGE_NAME} is missing or from another pglab, and building it "
                            "needs root and debootstrap; build it as root: `pglab box build --format oci`.")
        gateway = ipaddress.IPv4Address(self.gateway())
        problems += [f"node {n.name} has the address {gateway}, which is the lab network's bridge; "
                     "give it another one." for n in self.topology.nodes if n.address == gateway]
        return problems

    # Lifecycle -------------------------------------------------------------------------------
    def create(self) -> None:
        if self._builds_image():
            # First use: pglab's own image, built here from the VM box's recipe (minutes).
            image.build(self.report)
        self._enter_network(make=True)
        if self._podman("network", "exists", self.network, check=False).returncode != 0:
            subnet = str(self.topology.network.subnet)
            self._podman("network", "create", "--disable-dns", "--subnet", subnet, "--gateway", self.gateway(),
                         "--label", f"{LAB_LABEL}={self.topology.name}", self.network)
        self._make_key()
        states = self._states()
        for node in self.topology.nodes:
            name = self.container(node)
            state = states.get(name)
            if state is None:
                self.report(f"podman run {name} ({node.address})")
                self._podman("run", "--detach", "--name", name, "--hostname", node.name,
                             "--label", f"{LAB_LABEL}={self.topology.name}",
                             "--network", self.network, "--ip", str(node.address), "--systemd=always",
                             *(arg for limit in ULIMITS for arg in ("--ulimit", limit)),
                             *(arg for cap in CAPABILITIES for arg in ("--cap-add", cap)),
                             *(arg for sysctl in SYSCTLS for arg in ("--sysctl", sysctl)),
                             self.settings_of_lab.image)
            elif state == "paused":
                self._podman("unpause", name)
            elif state != "running":
                self._podman("start", name)
        public_key = self.key_file.with_suffix(".pub").read_text()
        for node in self.topology.nodes:
            self._authorize(node, public_key)
        for node in self.topology.nodes:
            self._wait_for_ssh(node)

    def destroy(self) -> None:
        self._enter_network(make=False)
        if shutil.which("podman"):
            names = list(self._states())
            if names:
                self._podman("rm", "--force", "--time", "0", *names, check=False)
            self._podman("network", "rm", "--force", self.network, check=False)
        if self.namespace:
            netns.delete(self.namespace)
        shutil.rmtree(self.key_file.parent, ignore_errors=True)

    def is_created(self) -> bool:
        return bool(shutil.which("podman")) and bool(self._states())

    def stop(self, node: Node) -> None:
        self._podman("stop", "--time", "30", self.container(node))

    def start(self, node: Node) -> None:
        state = self._states().get(self.container(node))
        if state == "paused":
            self._podman("unpause", self.container(node))
        elif state != "running":
            self._podman("start", self.container(node))
            self._wait_for_ssh(node)
        super().start(node)  # heal a partition, start what a stop or crash of services left down

    def crash(self, node: Node) -> None:
        # SIGKILL to the container's init: every process of the node dies at once, no shutdown.
        self._podman("kill", "--signal", "KILL", self.container(node))

    def hang(self, node: Node) -> None:
        # The whole node frozen (its cgroup), sshd and systemd included: its peers' TCP waits.
        self._podman("pause", self.container(node))

    def machine_state(self, node: Node) -> str | None:
        state = self._states().get(self.container(node))
        if state == "paused":
            return "FROZEN"
        return None if state == "running" else "STOPPED"

    def run_command(self, node: Node, command: str) -> str:
        # podman exec, not SSH: it answers while sshd is down, and costs no handshake.
        done = self._podman("exec", self.container(node), "sh", "-c", command, check=False)
        if done.returncode != 0:
            raise PodmanError(f"`{command}` on {node.name} failed (exit {done.returncode}): "
                              f"{(done.stderr or done.stdout).strip()[-1000:]}")
        return done.stdout

    # Helpers ---------------------------------------------------------------------------------
    def _builds_image(self) -> bool:
        """Whether `up` must build the image first: pglab's own, and missing or of another recipe."""
        return self.settings_of_lab.image == image.IMAGE_NAME and not image.is_current()

    def _enter_network(self, make: bool) -> None:
        if not self.namespace:
            return
        if make:
            netns.create(self.namespace)
        if netns.exists(self.namespace):
            netns.enter(self.namespace)

    def _podman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = ["podman", *args]
        done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise PodmanError(f"`{shlex.join(command[:4])} ...` failed (exit {done.returncode}): "
                              f"{done.stderr.strip()[-1000:]}")
        return done

    def _states(self) -> dict[str, str]:
        """The lab's containers by name, with podman's word for their state (running, paused,
        exited ...). JSON: podman 4.3's ``{{.State}}`` in a format is the human status ("Up 2 minutes")."""
        done = self._podman("ps", "--all", "--filter", f"label={LAB_LABEL}={self.topology.name}",
                            "--format", "json", check=False)
        if done.returncode != 0:
            return {}
        return {str(c["Names"][0]): str(c["State"]) for c in json.loads(done.stdout or "[]")}

    def _make_key(self) -> None:
        if self.key_file.exists():
            return
        self.key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        done = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"pglab-{self.topology.name}",
                               "-f", str(self.key_file)], capture_output=True, text=True)
        if done.returncode != 0:
            raise PodmanError(f"ssh-keygen failed (exit {done.returncode}): {done.stderr.strip()}")
        self.key_file.chmod(0o600)

    def _authorize(self, node: Node, public_key: str) -> None:
        target = f"/home/{SSH_USER}/.ssh/authorized_keys"
        done = subprocess.run(["podman", "exec", "-i", self.container(node), "sh", "-c",
                               f"cat > {target} && chown {SSH_USER}: {target} && chmod 600 {target}"],
                              input=public_key, capture_output=True, text=True)
        if done.returncode != 0:
            raise PodmanError(f"could not give {node.name} the lab's SSH key: {done.stderr.strip()}")

    def _wait_for_ssh(self, node: Node) -> None:
        command = ["ssh", *SSH_ARGS.split(), "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
                   "-i", str(self.key_file), f"{SSH_USER}@{node.address}", "true"]
        deadline = time.monotonic() + SSH_TIMEOUT
        while True:
            done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise PodmanError(f"{node.name} ({node.address}) did not answer SSH within {SSH_TIMEOUT:.0f} s: "
                                  f"{done.stderr.strip()[-500:]}")
            time.sleep(0.5)
