"""Packet loss and delay between one local node and the rest of its lab: nftables and tc netem.

Nodes are told apart the way a partition does (:mod:`pglab.providers.nft`): a connection the
node's cgroup opened carries the node's conntrack mark. A packet is the node's traffic with the
rest of the lab when its connection was opened by the node towards another node's address, or by
anyone else towards the node's address; the node talking to itself is never touched.

- Loss: ``numgen random mod 100 < P drop`` on those packets, both directions.
- Delay: those packets *the node sends* get a packet mark, and a ``prio`` qdisc on ``lo`` sends
  marked packets through a ``netem`` band: the node's egress is delayed, as netem on a machine's
  own interface would, so a round trip through the node gains the delay once.

One nftables table per lab (apart from the partition's, so healing one never lifts the other) and,
for delay, the root qdisc of ``lo``, which pglab only replaces when it is the kernel's default.
"""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
import zlib
from pathlib import Path

from pglab.errors import PglabError

MARK_BASE = 0x71000000  # conntrack marks of connections a node opened while impaired (not the partition's)
PACKET_MARK_BASE = 0x72000000  # packet marks of what a delayed node sends, for tc's fw filter
DEVICE = "lo"
NETEM_BAND = "1:4"  # a prio qdisc with a fourth band, which its priomap never picks
PRIOMAP = ("1", "2", "2", "2", "1", "2", "0", "0", "1", "1", "1", "1", "1", "1", "1", "1")  # prio's default


def netem_missing() -> str | None:
    """Why this kernel cannot delay packets (None: it can), found without changing anything: the
    module loaded or built in, one on disk for this kernel, or the kernel's own configuration."""
    if shutil.which("tc") is None:
        return "tc (iproute2) is not installed"
    if Path("/sys/module/sch_netem").exists():
        return None
    release = Path("/proc/sys/kernel/osrelease").read_text().strip()
    modules = Path("/lib/modules") / release
    for listing in ("modules.builtin", "modules.dep"):
        try:
            if "sch_netem.ko" in (modules / listing).read_text():
                return None
        except OSError:
            continue
    config = _kernel_config()
    if config is not None and re.search(r"^CONFIG_NET_SCH_NETEM=[ym]$", config, re.M):
        return None
    return (f"this kernel ({release}) has no netem (sch_netem), the queueing discipline that delays packets; "
            "run the latency drill where the kernel has it (the VM lab, most distributions' kernels)")


def _kernel_config() -> str | None:
    try:
        return gzip.decompress(Path("/proc/config.gz").read_bytes()).decode(errors="replace")
    except OSError:
        return None


class NetFaults:
    """Loss and delay of one lab's nodes; :meth:`lift` and :meth:`remove` undo them."""

    def __init__(self, lab_key: str) -> None:
        self.table = "pglab_net_" + re.sub(r"[^A-Za-z0-9_]", "_", lab_key)

    def mark(self, node: str) -> int:
        return MARK_BASE | (zlib.crc32(f"{self.table}/{node}".encode()) & 0xFFFFFF)

    def packet_mark(self, node: str) -> int:
        return PACKET_MARK_BASE | (zlib.crc32(f"{self.table}/{node}".encode()) & 0xFFFFFF)

    def lose(self, node: str, address: str, others: list[str], socket_match: str, percent: float) -> None:
        """Drop ``percent`` % of the packets between the node and ``others`` (the lab's other
        addresses), both ways."""
        self._chain(node, socket_match, [
            f"{self._from_node(node, others)} numgen random mod 100 < {round(percent)} counter drop",
            f"{self._to_node(node, address)} numgen random mod 100 < {round(percent)} counter drop",
        ])

    def dropped(self, node: str) -> int:
        """Packets of the node dropped so far (the loss rules' counters)."""
        chain = _listing_of(self.table, _chain_name(node))
        return sum(int(n) for n in re.findall(r"counter packets (\d+) bytes \d+ drop", chain))

    def delay(self, node: str, address: str, others: list[str], socket_match: str, delay_ms: float,
              jitter_ms: float) -> None:
        """Delay every packet the node sends to ``others`` by ``delay_ms`` (+- ``jitter_ms``)."""
        missing = netem_missing()
        if missing:
            raise PglabError(missing)
        mark = self.packet_mark(node)
        self._chain(node, socket_match, [
            f"ct direction original {self._from_node(node, others)} meta mark set {mark:#x}",
            f"ct direction reply {self._to_node(node, address)} meta mark set {mark:#x}",
        ])
        if not self._qdisc_is_ours():
            root = _tc("qdisc", "show", "dev", DEVICE)
            if root.split()[1:2] not in (["noqueue"], ["pfifo_fast"], ["fq_codel"]):
                raise PglabError(f"{DEVICE} already has a queueing discipline pglab did not add ({root.strip()}); "
                                 "remove it first")
            _tc("qdisc", "replace", "dev", DEVICE, "root", "handle", "1:", "prio", "bands", "4",
                "priomap", *PRIOMAP)
        jitter = ["delay", f"{delay_ms:g}ms"] + ([f"{jitter_ms:g}ms"] if jitter_ms else [])
        _tc("qdisc", "replace", "dev", DEVICE, "parent", NETEM_BAND, "handle", "40:", "netem", *jitter)
        _tc("filter", "replace", "dev", DEVICE, "parent", "1:", "protocol", "ip", "prio", "1", "handle",
            f"{mark:#x}", "fw", "flowid", NETEM_BAND)

    def impaired(self, node: str) -> bool:
        return f"chain {_chain_name(node)} {{" in self._listing()

    def lift(self, node: str) -> bool:
        """Undo the node's loss or delay; whether there was any."""
        found = self.impaired(node)
        if found:
            _nft(f"delete chain inet {self.table} {_chain_name(node)}")
        if "chain " not in self._listing():
            self.remove()
        return found

    def remove(self) -> list[str]:
        """Remove every fault of the lab (the table, the qdisc), what was removed."""
        removed = []
        if self._listing():
            _nft(f"delete table inet {self.table}")
            removed.append(f"nftables table {self.table}")
        if self._qdisc_is_ours() and not _other_tables_mark():
            _tc("qdisc", "del", "dev", DEVICE, "root")
            removed.append(f"the netem qdisc on {DEVICE}")
        return removed

    def _chain(self, node: str, socket_match: str, rules: list[str]) -> None:
        if shutil.which("nft") is None:
            raise PglabError("impairing a node's network needs nftables: as root, run `pglab prepare` "
                             "(or apt-get install nftables)")
        chain, mark = _chain_name(node), self.mark(node)
        _nft("\n".join([
            f"add table inet {self.table}",
            f"add chain inet {self.table} {chain} {{ type filter hook output priority 0; policy accept; }}",
            f"flush chain inet {self.table} {chain}",
            f"add rule inet {self.table} {chain} ct direction original {socket_match} ct mark set {mark:#x}",
            *(f"add rule inet {self.table} {chain} {rule}" for rule in rules),
        ]) + "\n")

    def _from_node(self, node: str, others: list[str]) -> str:
        """Packets of connections the node opened towards another node."""
        return f"ct mark {self.mark(node):#x} ct original ip daddr {{ {', '.join(others)} }}"

    def _to_node(self, node: str, address: str) -> str:
        """Packets of connections someone else opened towards the node."""
        return f"ct mark != {self.mark(node):#x} ct original ip daddr {address}"

    def _listing(self) -> str:
        if shutil.which("nft") is None:
            return ""
        done = subprocess.run(["nft", "list", "table", "inet", self.table], capture_output=True, text=True)
        return done.stdout if done.returncode == 0 else ""

    def _qdisc_is_ours(self) -> bool:
        if shutil.which("tc") is None:
            return False
        return "netem" in _tc("qdisc", "show", "dev", DEVICE) and " 1: " in _tc("qdisc", "show", "dev", DEVICE)


def _listing_of(table: str, chain: str) -> str:
    done = subprocess.run(["nft", "list", "chain", "inet", table, chain], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else ""


def _other_tables_mark() -> bool:
    """Whether another lab still delays a node through the shared qdisc on lo."""
    done = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True)
    return "meta mark set 0x72" in done.stdout


def _chain_name(node: str) -> str:
    return "impair_" + re.sub(r"[^A-Za-z0-9_]", "_", node)


def _nft(script: str) -> None:
    done = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)
    if done.returncode != 0:
        raise PglabError(f"nft failed: {done.stderr.strip()}")


def _tc(*args: str) -> str:
    done = subprocess.run(["tc", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise PglabError(f"tc {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout
