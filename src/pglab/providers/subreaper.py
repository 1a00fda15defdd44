"""supervisord, made the child subreaper of its lab once it has daemonized.

Patroni starts PostgreSQL detached (its starter process exits), so every postmaster is an orphan.
Orphans go to PID 1, and where PID 1 is not an init that reaps at once (a container's shell, a
CI runner) a stopped postmaster stays a zombie for a second or two while Patroni waits for its PID
to go away: every switchover paid for it. As the subreaper, the lab's own supervisord adopts its
programs' orphans and reaps them as soon as they exit (``reaped unknown pid`` in its log).

Run as ``python -m pglab.providers.subreaper -c supervisord.conf`` in place of supervisord.
"""

from __future__ import annotations

import ctypes
import sys

from supervisor import options, supervisord

# From <linux/prctl.h>.
PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make this process the reaper of its descendants' orphans; False where the kernel refuses."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)


def main() -> None:
    # The flag is not inherited across fork: set it in the daemon, after supervisord's own fork.
    daemonize = options.ServerOptions._daemonize

    def daemonize_and_adopt_orphans(self: options.ServerOptions) -> None:
        daemonize(self)
        become_subreaper()

    options.ServerOptions._daemonize = daemonize_and_adopt_orphans
    supervisord.main()


if __name__ == "__main__":
    main()
