"""What the hosts provider asks a server before it changes anything, and its verdict.

One shell script (:func:`probe_script`) runs on the server over SSH and prints one fact a line:
its OS, whether systemd runs it, whether sudo works without a password, the lab that claimed it
(``/etc/pglab/lab``), PostgreSQL clusters at the paths the lab would use, and what listens on
which TCP port (``ss``, with the systemd unit of each listener). :func:`judge` turns those facts
into refusals, one paragraph each, naming the server and the fix. Both are pure, so the
decisions are tested on recorded answers.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

# Where a server says which pglab lab claimed it (written by `up`, removed by `destroy`).
MARKER = "/etc/pglab/lab"
SUPPORTED_OS = ("debian", "12")
_LISTENER = re.compile(r"^\S+\s+\d+\s+\d+\s+(?P<local>\S+)\s+\S+(?:\s+(?P<process>.*))?$")
_PROCESS = re.compile(r'\("(?P<name>[^"]+)",pid=(?P<pid>\d+)')
_UID = re.compile(r"\buid:(?P<uid>\d+)")
# What holds a port when ss cannot name the process: root in a container may not read the
# descriptors of other users' processes (no CAP_SYS_PTRACE); ss still says the socket's uid.
UNSEEN = "an unseen process"


@dataclass(frozen=True)
class Server:
    """The node a server stands for, as the refusals name it, and how pglab reaches it."""

    name: str
    address: str
    user: str
    become: bool


@dataclass
class Facts:
    """What the probe found on one server."""

    os_id: str = "unknown"
    os_version: str = "unknown"
    os_name: str = ""
    systemd: bool = False
    python: bool = False
    sudo: bool | None = None  # None: not asked (connected as root)
    marker: str | None = None
    clusters: list[str] = field(default_factory=list)
    has_ss: bool = True
    # Port -> what holds it: the systemd unit of the listening process, else its name, else
    # UNSEEN with the socket's uid.
    listeners: dict[int, str] = field(default_factory=dict)


def probe_script(data_dirs: Collection[str], cluster_dirs: Collection[str]) -> str:
    """The script that prints a server's facts (see :func:`parse`); as root through ``sudo -n``
    where it needs root (the owners of listening sockets, PostgreSQL's data directories)."""
    dirs = " ".join(shlex.quote(d) for d in data_dirs)
    clusters = " ".join(shlex.quote(d) for d in cluster_dirs)
    return "; ".join([
        'S=""; [ "$(id -u)" = 0 ] || S="sudo -n"',
        '. /etc/os-release 2>/dev/null; echo "os ${ID:-unknown} ${VERSION_ID:-unknown} ${PRETTY_NAME:-}"',
        '[ -d /run/systemd/system ] && echo "systemd yes" || echo "systemd no"',
        'command -v python3 >/dev/null && echo "python yes" || echo "python no"',
        'if [ -n "$S" ]; then if $S true 2>/dev/null; then echo "sudo yes"; else echo "sudo no"; S=""; fi; fi',
        f'm=$($S cat {MARKER} 2>/dev/null) && [ -n "$m" ] && echo "marker $m"',
        f'for d in {dirs}; do $S test -e "$d/PG_VERSION" && echo "cluster $d"; done',
        f'for d in {clusters}; do [ -e "$d/postgresql.conf" ] && echo "cluster $d"; done',
        'command -v ss >/dev/null || echo "ss missing"',
        'L=$($S ss -Htlnpe 2>/dev/null); printf "%s\\n" "$L" | sed -n "s/^/ss /p"',
        'for p in $(printf "%s\\n" "$L" | grep -o "pid=[0-9]*" | cut -d= -f2 | sort -u); do '
        'u=$(sed -n "s#.*/\\([^/]*\\.service\\)\\$#\\1#p" /proc/$p/cgroup 2>/dev/null | head -n1); '
        'echo "unit $p ${u:--}"; done',
        "true",
    ])


def parse(answer: str) -> Facts:
    """The facts from the probe's output."""
    facts = Facts()
    listeners: list[tuple[int, str, str | None]] = []
    units: dict[str, str] = {}
    for line in answer.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word == "os":
            parts = rest.split(" ", 2)
            facts.os_id, facts.os_version = [*parts, "unknown", "unknown"][:2]
            facts.os_name = parts[2].strip() if len(parts) > 2 else ""
        elif word in ("systemd", "python", "sudo"):
            setattr(facts, word, rest == "yes")
        elif word == "marker":
            facts.marker = rest.strip() or None
        elif word == "cluster":
            facts.clusters.append(rest.strip())
        elif word == "ss" and rest == "missing":
            facts.has_ss = False
        elif word == "ss":
            found = _LISTENER.match(rest.strip())
            if found is None:
                continue
            port = found["local"].rpartition(":")[2]
            process = _PROCESS.search(found["process"] or "")
            uid = _UID.search(found["process"] or "")
            if not port.isdigit():
                continue
            if process:
                listeners.append((int(port), process["name"], process["pid"]))
            else:
                listeners.append((int(port), f"{UNSEEN} of uid {uid['uid']}" if uid else UNSEEN, None))
        elif word == "unit":
            pid, _, unit = rest.partition(" ")
            if unit and unit != "-":
                units[pid] = unit
    for port, process_name, owner_pid in listeners:
        facts.listeners.setdefault(port, units.get(owner_pid or "", process_name))
    return facts


def judge(server: Server, facts: Facts, lab: str, needed_ports: Mapping[int, str],
          lab_units: Collection[str]) -> list[str]:
    """Why pglab must not deploy the lab ``lab`` on this server, one paragraph each (empty: go)."""
    where = f"{server.name} ({server.address})"
    problems = []
    if (facts.os_id, facts.os_version) != SUPPORTED_OS:
        problems.append(f"{where} runs {facts.os_name or f'{facts.os_id} {facts.os_version}'}, not Debian 12: "
                        "pglab's roles install Debian 12's packages and units. Give this node a Debian 12 "
                        "(bookworm) server.")
    if not facts.systemd:
        problems.append(f"{where} does not run systemd, which runs the lab's services there. Give this node a "
                        "server booted with systemd.")
    if not facts.python:
        problems.append(f"{where} has no python3, which Ansible needs there. Install it (apt-get install "
                        "python3) and run `pglab up` again.")
    if facts.sudo is False:
        problems.append(f"sudo on {where} refuses {server.user} or asks for a password: pglab needs root "
                        "there, through sudo without a password. Add the line "
                        f"`{server.user} ALL=(ALL) NOPASSWD:ALL` to /etc/sudoers.d/pglab on it, or connect "
                        "as root with hosts.become: false.")
        return problems  # what follows needs root to be seen
    if facts.marker and facts.marker != lab:
        problems.append(f"{where} belongs to the pglab lab {facts.marker!r} ({MARKER}): run `pglab destroy` "
                        "for that lab first, or give this node another server.")
        return problems
    ours = facts.marker == lab
    if not ours and facts.clusters:
        problems.append(f"{where} holds a PostgreSQL cluster that this lab did not make at "
                        f"{', '.join(facts.clusters)}, where the lab would keep its data: pglab will not "
                        "touch it. Move or remove it (`pg_dropcluster --stop VERSION main` if it holds "
                        "nothing you need), or give this node another server.")
    if not facts.has_ss:
        problems.append(f"pglab cannot see which ports are in use on {where}: `ss` is missing. Install it "
                        "(apt-get install iproute2) and run `pglab up` again.")
    # On a server of this lab, a listener ss cannot name is taken for the lab's own (where it
    # can, it names every process root may see: on a server, all of them).
    held = [(port, owner, facts.listeners[port]) for port, owner in sorted(needed_ports.items())
            if port in facts.listeners
            and not (ours and (facts.listeners[port] in lab_units or facts.listeners[port].startswith(UNSEEN)))]
    if held:
        ports = ", ".join(f"{port} ({owner}) by {holder}" for port, owner, holder in held)
        problems.append(f"on {where} ports the lab needs are held: {ports}. Stop what holds them there, or "
                        "give the lab other ports in the topology's ports: section.")
    return problems
