"""The slower faults on a systemd node, as shell commands run on the node itself (as root, through
sudo): what :class:`~pglab.providers.systemd.SystemdProvider` sends over its connection.

- Loss: one nftables table on the node, ``numgen random mod 100 < P`` drops of the packets it
  exchanges with the lab's other nodes, counted, so healing says how many were dropped.
- Delay: a ``prio`` qdisc on the node's lab interface whose fourth band is ``netem``; u32 filters
  send only what the node sends to the other nodes through it (its clients and its SSH are not
  delayed), as the local provider does on loopback.
- CPU, disk and memory limits: systemd's own resource control on the node's units
  (``systemctl set-property --runtime``: ``CPUQuota``, ``IO*Max`` on the data directory's device,
  ``MemoryMax``), lifted by setting them empty; ``--runtime`` keeps them out of a reboot.

Nothing here names a stack: the units and addresses are the caller's.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable

NET_TABLE = "pglab_net"  # apart from the partition's table, so healing one never lifts the other
NETEM_HANDLE = "30:"
# The node's interface on the lab network: the one holding its address.
_DEVICE = "$(ip -o -4 addr show to {address} | awk '{{print $2; exit}}')"
# Every resource property a drill sets, with the value that lifts it.
LIMIT_PROPERTIES = ("CPUQuota", "IOReadIOPSMax", "IOWriteIOPSMax", "IOReadBandwidthMax", "IOWriteBandwidthMax",
                    "MemoryMax", "MemorySwapMax")


def _sudo(script: str) -> str:
    return "sudo sh -c " + shlex.quote(script)


def lose(others: Iterable[str], percent: float) -> str:
    """Drop ``percent`` % of what the node exchanges with ``others`` (addresses), both ways."""
    addresses = ", ".join(others)
    share = max(1, round(percent))
    return _sudo(
        "command -v nft >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables; "
        f"nft delete table inet {NET_TABLE} 2>/dev/null; nft add table inet {NET_TABLE}; "
        f"nft 'add chain inet {NET_TABLE} in {{ type filter hook input priority 0; policy accept; }}'; "
        f"nft 'add chain inet {NET_TABLE} out {{ type filter hook output priority 0; policy accept; }}'; "
        f"nft 'add rule inet {NET_TABLE} in ip saddr {{ {addresses} }} numgen random mod 100 < {share} counter drop'; "
        f"nft 'add rule inet {NET_TABLE} out ip daddr {{ {addresses} }} numgen random mod 100 < {share} counter drop'")


def delay(address: str, others: Iterable[str], delay_ms: float, jitter_ms: float = 0.0) -> str:
    """Delay what the node (at ``address``) sends to ``others`` by ``delay_ms`` (+- ``jitter_ms``)."""
    device = _DEVICE.format(address=address)
    jitter = f" {jitter_ms:g}ms" if jitter_ms else ""
    filters = "; ".join(f"tc filter add dev $dev parent 1:0 protocol ip prio 1 u32 match ip dst {other}/32 "
                        "flowid 1:4" for other in others)
    return _sudo(
        f"dev={device}; [ -n \"$dev\" ] || {{ echo 'no interface holds {address}' >&2; exit 1; }}; "
        "modprobe sch_netem 2>/dev/null; "
        "tc qdisc replace dev $dev root handle 1: prio bands 4 priomap 1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1; "
        f"tc qdisc add dev $dev parent 1:4 handle {NETEM_HANDLE} netem delay {delay_ms:g}ms{jitter}; "
        f"{filters}")


def heal(address: str) -> str:
    """Undo :func:`lose` and :func:`delay`; prints the loss table (for :func:`dropped`) first, and
    ``delayed`` when a delay was lifted."""
    device = _DEVICE.format(address=address)
    return _sudo(
        f"nft list table inet {NET_TABLE} 2>/dev/null && nft delete table inet {NET_TABLE}; "
        f"dev={device}; [ -n \"$dev\" ] && tc qdisc show dev $dev | grep -q netem && "
        "tc qdisc del dev $dev root && echo delayed; true")


def dropped(heal_output: str) -> int | None:
    """The packets the loss table dropped, from :func:`heal`'s output (0 when only a delay was
    lifted); None when there was nothing to heal."""
    counts = [int(n) for n in re.findall(r"counter packets (\d+)", heal_output)]
    if counts:
        return sum(counts)
    return 0 if "delayed" in heal_output.split() else None


def set_properties(units: Iterable[str], properties: dict[str, str]) -> str:
    """Set resource properties on each unit for as long as the node runs."""
    assignments = " ".join(shlex.quote(f"{name}={value}") for name, value in properties.items())
    return "; ".join(f"sudo systemctl set-property --runtime {shlex.quote(unit)} {assignments}" for unit in units)


def lift_properties(units: Iterable[str]) -> str:
    """Lift every limit :func:`set_properties` may have set (an empty value is systemd's default)."""
    empty = " ".join(f"{name}=" for name in LIMIT_PROPERTIES)
    return "; ".join(f"sudo systemctl set-property --runtime {shlex.quote(unit)} {empty}" for unit in units)


def oom_kills(unit: str) -> str:
    """Print how many processes of ``unit`` the OOM killer ended (its cgroup's ``memory.events``)."""
    return (f"cat /sys/fs/cgroup/system.slice/{shlex.quote(unit + '.service')}/memory.events 2>/dev/null "
            "| awk '$1 == \"oom_kill\" {print $2}'")
