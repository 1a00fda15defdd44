"""Network partitions of local nodes with nftables: one table per lab, one chain per cut node.

On loopback every client connects from 127.0.0.1, whatever node it runs on, so addresses alone
cannot say which node a packet belongs to. The node's cgroup can: a packet sent by one of its
sockets in a connection's original direction marks that connection as the node's own (conntrack
mark). Then a connection is dropped when the node opened it towards another address, or when
someone else opened it towards the node's address: the node keeps talking to itself and loses
everyone else, connections already open included, while its processes keep running.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import zlib

from pglab.errors import PglabError

# Who opened a connection: MARK_BASE | 24 bits of (lab, node). Conntrack marks are global to the
# machine, so two labs (two test runs at once) cutting off nodes of the same name must not share
# one: the other lab's rules would drop this node's connections to itself.
MARK_BASE = 0x70000000


class LabFirewall:
    def __init__(self, lab_key: str) -> None:
        self.table = "pglab_" + re.sub(r"[^A-Za-z0-9_]", "_", lab_key)

    def partition(self, node: str, address: str, socket_match: str) -> None:
        _need_nft()
        chain = _chain(node)
        mark = self.mark(node)
        self._nft(f"""
add table inet {self.table}
add chain inet {self.table} {chain} {{ type filter hook output priority 0; policy accept; }}
flush chain inet {self.table} {chain}
add rule inet {self.table} {chain} ct direction original {socket_match} ct mark set {mark:#x}
add rule inet {self.table} {chain} ct mark {mark:#x} ct original ip daddr != {address} drop
add rule inet {self.table} {chain} ct mark != {mark:#x} ct original ip daddr {address} drop
""")

    def mark(self, node: str) -> int:
        """The conntrack mark of connections the node opens while it is cut off."""
        return MARK_BASE | (zlib.crc32(f"{self.table}/{node}".encode()) & 0xFFFFFF)

    def heal(self, node: str) -> None:
        if self.is_partitioned(node):
            self._nft(f"delete chain inet {self.table} {_chain(node)}")
        if "chain " not in self._listing():
            self.remove()

    def is_partitioned(self, node: str) -> bool:
        return f"chain {_chain(node)} {{" in self._listing()

    def remove(self) -> None:
        if self._listing():
            self._nft(f"delete table inet {self.table}")

    def _listing(self) -> str:
        if shutil.which("nft") is None:
            return ""
        done = subprocess.run(["nft", "list", "table", "inet", self.table], capture_output=True, text=True)
        return done.stdout if done.returncode == 0 else ""

    def _nft(self, script: str) -> None:
        done = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)
        if done.returncode != 0:
            raise PglabError(f"nft failed: {done.stderr.strip()}")


def _chain(node: str) -> str:
    return "cut_" + re.sub(r"[^A-Za-z0-9_]", "_", node)


def _need_nft() -> None:
    if shutil.which("nft") is None:
        raise PglabError("cutting a node off the network needs nftables: as root, run `pglab prepare` "
                         "(or apt-get install nftables)")
