#!/bin/sh
# Removes what one run of the Swarm tier made, whatever state it is in: the one
# cleanup of test/swarm/support/topology.ts, run by its stop(), by the watchdog
# below when the test process dies without its teardown (kill -9), and for
# stale runs at the next start. Everything is found by the run's id, under the
# prefix `hcsw` that only this tier uses:
#   processes  the pids cgroup /sys/fs/cgroup/pids/hcsw<id>/: every dockerd,
#              containerd, shim and registry of the run, and every container
#              (the engines' --cgroup-parent), whatever network namespace it is in
#   files      /tmp/hcsw-<id>/ (data roots, exec roots, sockets, registry storage),
#              after unmounting what the engines left mounted there
#   network    namespaces hcsw<id>n1 and hcsw<id>n2 (their veths go with them),
#              the root end hcsw<id>r
#
#   reap.sh run <id>             everything of that run
#   reap.sh kill <id> <part>     only SIGKILL every process of one part (n1, n2, b, registry)
#   reap.sh stale                every run whose test process is gone
#   reap.sh watch <pid> <id>     waits for process <pid> to end, then reaps the run
set -u

CG=/sys/fs/cgroup

# SIGKILL every process in a cgroup subtree until none is left (a process can
# fork while the list is read; killed ones leave the list once reaped).
kill_tree() {
  tree=$1
  [ -d "$tree" ] || return 0
  i=0
  while [ $i -lt 100 ]; do
    pids=$(find "$tree" -name cgroup.procs -exec cat {} + 2>/dev/null)
    [ -n "$pids" ] || return 0
    # shellcheck disable=SC2086
    kill -9 $pids 2>/dev/null
    sleep 0.1
    i=$((i + 1))
  done
  echo "reap: processes still left in $tree" >&2
}

reap_run() {
  id=$1
  kill_tree "$CG/pids/hcsw$id"
  # Mounts the engines left (overlay layers, network namespace files), deepest first.
  dir=/tmp/hcsw-$id
  awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null
  done
  rm -rf "$dir"
  for ns in "hcsw${id}n1" "hcsw${id}n2"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "$ns" 2>/dev/null
  done
  ip link del "hcsw${id}r" 2>/dev/null
  # Cgroups the engines made for their containers, in every controller.
  for c in "$CG"/*/"hcsw$id"; do
    [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  return 0
}

# Every run id that has something left: namespaces, links, folders, cgroups.
run_ids() {
  {
    ip netns list 2>/dev/null | sed -n 's/^hcsw\([0-9a-f]\{4\}\)n[12].*/\1/p'
    ip -o link 2>/dev/null | sed -n 's/^[0-9]*: hcsw\([0-9a-f]\{4\}\)r[:@].*/\1/p'
    for d in /tmp/hcsw-*; do [ -d "$d" ] && echo "${d#/tmp/hcsw-}"; done
    for d in "$CG"/*/hcsw*; do [ -d "$d" ] && basename "$d" | sed 's/^hcsw//'; done
  } | sort -u
}

case "${1:-}" in
  run) reap_run "$2" ;;
  kill) kill_tree "$CG/pids/hcsw$2/$3" ;;
  stale)
    for id in $(run_ids); do
      owner=$(cat "/tmp/hcsw-$id/owner.pid" 2>/dev/null)
      if [ -n "$owner" ] && kill -0 "$owner" 2>/dev/null; then continue; fi
      echo "reap: removing what run $id left"
      reap_run "$id"
    done
    ;;
  watch)
    while kill -0 "$2" 2>/dev/null; do sleep 1; done
    reap_run "$3"
    ;;
  *)
    echo "usage: reap.sh run <id> | kill <id> <part> | stale | watch <pid> <id>" >&2
    exit 2
    ;;
esac
