"""The vagrant provider: every node is a VM made from the lab's rendered Vagrantfile.

Vagrant only makes, stops and removes the machines; pglab runs Ansible on them itself over the
SSH settings ``vagrant ssh-config`` reports. Every call goes through python-vagrant, whose output
is appended to ``vagrant.log`` in the lab directory so a failure can be explained. What a VM's
services are and how they are stopped, logged and cut off is the systemd half every provider of
systemd machines shares (:class:`pglab.providers.systemd.SystemdProvider`); this module adds the
VM lifecycle, and crashes and hangs of the whole VM.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import Field

from pglab import stacks
from pglab.prerequisites import Prerequisite
from pglab.providers.systemd import SystemdError, SystemdProvider
from pglab.topology import Node, Strict
from pglab.vm import libvirt, vagrantfile

# python-vagrant warns on import when vagrant is missing; `pglab` reports that itself, in its words.
logging.getLogger("vagrant").addHandler(logging.NullHandler())
import vagrant  # noqa: E402

T = TypeVar("T")


class VagrantSettings(Strict):
    """The topology's ``vagrant:`` section: how the VMs are made."""

    # A public Debian 12 box; `pglab box build` makes the offline one, pglab/debian12.
    box: str = "debian/bookworm64"
    hypervisor: Literal["libvirt", "virtualbox"] = "libvirt"
    # libvirt only: kvm (hardware virtualization) or qemu (software emulation, where KVM is missing).
    driver: Literal["kvm", "qemu"] = "kvm"
    memory: Annotated[int, Field(ge=512, le=1024 * 1024)] = 1024
    cpus: Annotated[int, Field(ge=1, le=256)] = 1


LOG_FILE = "vagrant.log"
SSH_ARGS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
# VM states (after python-vagrant's normalisation) in which the VM is frozen, not stopped.
SUSPENDED = frozenset({vagrant.Vagrant.SAVED, "paused", "suspended"})
# Lines of `vagrant up` worth a progress line: each VM's way from nothing to SSH.
MILESTONES = ("Creating image", "Creating domain", "Starting domain", "Waiting for domain to get an IP",
              "Waiting for machine to boot", "Machine booted and ready", "Setting hostname",
              "Configuring and enabling network", "Domain is already running", "Machine already provisioned",
              "Resuming domain")
# Under software emulation (no KVM) every VM boots on the host's CPUs: a few at a time.
BOOT_BATCH_WITHOUT_KVM = 3


class VagrantError(SystemdError):
    """A vagrant command failed; the message ends with the tail of ``vagrant.log``."""


class VagrantProvider(SystemdProvider):
    name = "vagrant"
    settings = VagrantSettings
    comments: ClassVar[Mapping[str, str]] = {"vagrant.hypervisor": "libvirt | virtualbox"}
    error = VagrantError

    # Facts -----------------------------------------------------------------------------------
    def address(self, node: Node) -> str:
        return str(node.address)

    def connection_vars(self, node: Node) -> dict[str, Any]:
        common: dict[str, Any] = {
            "ansible_become": True,
            "ansible_python_interpreter": "/usr/bin/python3",
        }
        if not (self.lab_dir / ".vagrant").is_dir():
            # `vagrant up` never ran here: no VM to ask (each vagrant call costs seconds).
            return {"ansible_user": "vagrant", **common}
        v = self._vagrant()
        try:
            # One `vagrant ssh-config NAME`: python-vagrant caches it for the four look-ups.
            user, host = v.user(node.name), v.hostname(node.name)
            port, key = v.port(node.name), v.keyfile(node.name)
        except (subprocess.CalledProcessError, RuntimeError, OSError):
            # No VM yet (or no vagrant): the inventory is written before `vagrant up`.
            return {"ansible_user": "vagrant", **common}
        return {
            "ansible_host": host,
            "ansible_port": int(port) if port else 22,
            "ansible_user": user or "vagrant",
            "ansible_ssh_private_key_file": key,
            # Vagrant reuses addresses and ports across labs: host keys would only get in the way.
            "ansible_ssh_common_args": SSH_ARGS,
            # A busy VM (software emulation) can take longer than Ansible's 10 s to answer sudo.
            "ansible_ssh_timeout": 60,
            "ansible_ssh_retries": 3,
            **common,
        }

    def inventory_vars(self) -> dict[str, Any]:
        variables = super().inventory_vars()
        if self._emulated():
            # Guests 10x slower than the host, sharing its CPUs: every stack and component says
            # which of its settings calm down there (their ``slow_machine_variables``).
            variables |= stacks.slow_machine_variables()
        return variables

    def _emulated(self) -> bool:
        return self.settings_of_lab.hypervisor == "libvirt" and self.settings_of_lab.driver == "qemu"

    @property
    def settings_of_lab(self) -> VagrantSettings:
        """The lab's ``vagrant:`` section."""
        return self.topology.section(self.name, VagrantSettings)

    def rendered_files(self) -> dict[Path, str]:
        return {self.lab_dir / "Vagrantfile": vagrantfile.render(self.topology, self.settings_of_lab.model_dump())}

    def prerequisites(self) -> list[Prerequisite]:
        has_vagrant = shutil.which("vagrant") is not None
        needs = [Prerequisite("vagrant", "vagrant", has_vagrant)]
        if self.settings_of_lab.hypervisor == "libvirt":
            needs.append(
                Prerequisite("the vagrant-libvirt plugin", "vagrant-libvirt", self._has_libvirt())
            )
        else:
            has_vbox = shutil.which("VBoxManage") is not None
            needs.append(Prerequisite("VBoxManage", "virtualbox", has_vbox))
        return needs

    # Lifecycle -------------------------------------------------------------------------------
    def create(self) -> None:
        names = [n.name for n in self.topology.nodes]
        batch = BOOT_BATCH_WITHOUT_KVM if self._emulated() else len(names)
        for i in range(0, len(names), batch):
            self._up(names[i:i + batch])

    def destroy(self) -> None:
        dot_vagrant = self.lab_dir / ".vagrant"
        # Without both there is no VM to remove, and vagrant need not even be installed.
        if (self.lab_dir / "Vagrantfile").is_file() and dot_vagrant.is_dir():
            self._run("destroy -f", lambda v: v.destroy())
        # What vagrant lost track of (a run killed before .vagrant was written): found by its names.
        if self.settings_of_lab.hypervisor == "libvirt" and libvirt.available():
            libvirt.purge(self.topology.name)
        shutil.rmtree(dot_vagrant, ignore_errors=True)
        (self.lab_dir / LOG_FILE).unlink(missing_ok=True)

    def is_created(self) -> bool:
        # No .vagrant directory means `vagrant up` never ran here: skip the slow vagrant call.
        if not (self.lab_dir / ".vagrant").is_dir() or not shutil.which("vagrant"):
            return False
        statuses = self._run("status", lambda v: v.status())
        return any(s.state != vagrant.Vagrant.NOT_CREATED for s in statuses)

    def stop(self, node: Node) -> None:
        self._run(f"halt {node.name}", lambda v: v.halt(vm_name=node.name))

    def start(self, node: Node) -> None:
        if self._state(node) == vagrant.Vagrant.RUNNING:
            self.heal(node)
            return
        if self._state(node) in SUSPENDED:
            self._run(f"resume {node.name}", lambda v: v.resume(vm_name=node.name))
        else:
            provider = self.settings_of_lab.hypervisor
            self._run(f"up {node.name}", lambda v: v.up(vm_name=node.name, provider=provider))

    def crash(self, node: Node) -> None:
        # --force pulls the plug (virsh destroy / VBoxManage poweroff): no clean shutdown.
        self._run(f"halt --force {node.name}", lambda v: v.halt(vm_name=node.name, force=True))

    def hang(self, node: Node) -> None:
        # A suspended VM keeps its TCP peers waiting, as SIGSTOP does to a process.
        self._run(f"suspend {node.name}", lambda v: v.suspend(vm_name=node.name))

    def machine_state(self, node: Node) -> str | None:
        state = self._state(node)
        if state in SUSPENDED:
            return "FROZEN"
        return None if state == vagrant.Vagrant.RUNNING else "STOPPED"

    # Helpers ---------------------------------------------------------------------------------
    def _up(self, names: list[str]) -> None:
        """`vagrant up NAMES`, its output appended to vagrant.log, its milestones reported."""
        command = ["vagrant", "up", f"--provider={self.settings_of_lab.hypervisor}", *names]
        if not shutil.which("vagrant"):
            raise VagrantError("`vagrant up` cannot run: the vagrant executable cannot be found. Install vagrant.")
        self.lab_dir.mkdir(parents=True, exist_ok=True)
        self.report(f"vagrant up {' '.join(names)}")
        with (self.lab_dir / LOG_FILE).open("a") as log, subprocess.Popen(
            command, cwd=self.lab_dir, env=self._env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True, errors="replace",
        ) as process:
            assert process.stdout is not None
            for line in process.stdout:
                log.write(line)
                log.flush()
                if line.startswith("==> ") and any(m in line for m in MILESTONES):
                    self.report(line[4:].strip())
        if process.returncode != 0:
            raise VagrantError(
                f"`{' '.join(command[:2])} {' '.join(names)}` failed in {self.lab_dir} (exit {process.returncode}). "
                f"Last lines of {self.lab_dir / LOG_FILE}:\n{self._log_tail()}"
            )

    def _vagrant(self) -> vagrant.Vagrant:
        log = vagrant.make_file_cm(str(self.lab_dir / LOG_FILE))
        return vagrant.Vagrant(root=str(self.lab_dir), out_cm=log, err_cm=log, env=self._env())

    def _env(self) -> dict[str, str]:
        # Commands on one VM (ssh, status) then use the lab's hypervisor, as `up` did.
        return {**os.environ, "VAGRANT_DEFAULT_PROVIDER": self.settings_of_lab.hypervisor}

    def _run(self, what: str, call: Callable[[vagrant.Vagrant], T]) -> T:
        """Run one python-vagrant call; turn its failure into an error that says what and why."""
        self.lab_dir.mkdir(parents=True, exist_ok=True)
        try:
            return call(self._vagrant())
        except RuntimeError as exc:  # python-vagrant's "executable cannot be found"
            raise VagrantError(f"`vagrant {what}` cannot run: {exc} Install vagrant.") from None
        except subprocess.CalledProcessError as exc:
            raise VagrantError(
                f"`vagrant {what}` failed in {self.lab_dir} (exit {exc.returncode}). "
                f"Last lines of {self.lab_dir / LOG_FILE}:\n{self._log_tail()}"
            ) from None

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = (self.lab_dir / LOG_FILE).read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _state(self, node: Node) -> str:
        statuses = self._run(f"status {node.name}", lambda v: v.status(vm_name=node.name))
        return str(statuses[0].state) if statuses else vagrant.Vagrant.NOT_CREATED

    def run_command(self, node: Node, command: str) -> str:
        return str(self._run(f"ssh {node.name}", lambda v: v.ssh(vm_name=node.name, command=command)))

    def _has_libvirt(self) -> bool:
        if not shutil.which("vagrant"):
            return False
        # Before `pglab up` the lab directory may not exist yet; vagrant needs some directory.
        root = str(self.lab_dir) if self.lab_dir.is_dir() else "/"
        try:
            plugins = vagrant.Vagrant(root=root, env=self._env()).plugin_list()
        except (subprocess.CalledProcessError, OSError):
            return False
        return any(p.name == "vagrant-libvirt" for p in plugins)
