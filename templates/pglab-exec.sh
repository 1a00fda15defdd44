#!/bin/sh
# Written by pglab: runs one service of a node inside the node's cgroup, as the service user, so
# that a fault (freeze, kill, network cut) reaches every process of the node, children included.
# usage: pglab-exec CGROUP_DIR USER COMMAND [ARG...]
set -e
cgroup=$1
user=$2
shift 2
echo $$ > "$cgroup/cgroup.procs"
if [ "$(id -u)" = 0 ] && [ "$user" != root ]; then
  exec setpriv --reuid="$user" --regid="$user" --init-groups -- "$@"
fi
exec "$@"
