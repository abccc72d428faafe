#!/bin/bash
# Stops what kubelet-up.sh started in $KUBELET_LAB_DIR, by the PIDs in run/*.pid (never by name):
# the kubelet first, then every task and container in the private containerd's k8s.io namespace
# (so their shims exit and runc removes their cgroups), then that containerd. Its private mount
# namespace goes away with its last process. API objects (the Node, pods) stay: the test's API
# server is thrown away with them. Safe to run twice, or when nothing was started.
set -uo pipefail
LAB_DIR=$(cd "$(dirname "$0")" && pwd -P)
. "$LAB_DIR/lib/common.sh"

stop() { # stop NAME EXPECTED_CMDLINE_SUBSTRING
  local name=$1 want=$2 f="$KRUN/$1.pid" pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if ! alive_as "$name" "$want"; then log "$name: pid $pid gone or not ours any more"; rm -f "$f"; return 0; fi
  kill -TERM "$pid"
  for _ in $(seq 1 40); do alive "$pid" || break; sleep 0.25; done
  if alive "$pid"; then log "$name: pid $pid ignored TERM, sending KILL"; kill -KILL "$pid"; fi
  rm -f "$f"; log "stopped $name (pid $pid)"
}

stop kubelet "$KBIN"

if alive_as containerd "--config $CD/config.toml"; then
  c() { ctr --address "$SOCK" --connect-timeout 2s -n k8s.io "$@"; }
  for id in $(c tasks ls -q 2>/dev/null); do c tasks kill -s KILL "$id" >/dev/null 2>&1; done
  # a killed task goes away on its own (the CRI deletes it when it sees the exit): delete what is
  # still listed, until nothing is (bounded)
  for _ in $(seq 1 40); do
    ids=$(c tasks ls -q 2>/dev/null)
    [ -z "$ids" ] && break
    for id in $ids; do c tasks delete "$id" >/dev/null 2>&1; done
    sleep 0.25
  done
  for id in $(c containers ls -q 2>/dev/null); do c containers delete "$id" >/dev/null 2>&1; done
  left=$(c tasks ls -q 2>/dev/null | wc -l)
  [ "$left" -eq 0 ] || log "warning: $left tasks still present in k8s.io"
fi
stop containerd "--config $CD/config.toml"

# runc removes each container's cgroup; the shared parent k8s.io stays: remove it when empty
# (another instance's containers keep it busy, then rmdir fails and it stays)
for d in /sys/fs/cgroup/*/k8s.io; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
exit 0
