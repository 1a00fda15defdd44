"""The lab's Vagrantfile, rendered from its topology and the ``vagrant:`` section's settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2

from pglab import paths
from pglab.topology import Topology
from pglab.vm import box


def render(topology: Topology, vagrant: Mapping[str, Any]) -> str:
    """The Vagrantfile's text; ``vagrant`` holds the section's values (box, hypervisor, driver ...)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(paths.vagrantfile_template().parent)),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
    # The offline box has no bootloader: libvirt boots the kernel kept beside it.
    boot = box.boot_files(vagrant["box"]) if box.is_local(vagrant["box"]) else None
    return env.get_template(paths.vagrantfile_template().name).render(topology=topology, vagrant=vagrant, boot=boot)
