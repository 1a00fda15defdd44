#!/bin/sh
# Written by pglab: runs one service of a node inside the node's cgroup, as the service user, so
# that a fault (freeze, kill, network cut, a resource limit) reaches every process of the node,
# children included.
# usage: pglab-exec CGROUP_DIR[:CGROUP_DIR...] USER COMMAND [ARG...]
# (the node's cgroup, then its groups in the cgroup v1 hierarchies of the limited controllers)
set -e
cgroups=$1
user=$2
shift 2
IFS=:
for cgroup in $cgroups; do
  echo $$ > "$cgroup/cgroup.procs"
done
unset IFS
# No standard input, as systemd gives its services: a PostgreSQL backend that lost its client and
# then its postmaster reads commands from stdin (its single-user loop), and would wait there
# forever on supervisord's pipe, holding the shared memory that keeps a new postmaster from starting.
exec </dev/null
if [ "$(id -u)" = 0 ] && [ "$user" != root ]; then
  exec setpriv --reuid="$user" --regid="$user" --init-groups -- "$@"
fi
exec "$@"
