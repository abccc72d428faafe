# shellcheck shell=bash
# Shared settings for kubelet-up.sh and kubelet-down.sh (sourced, never run). One kubelet-lab
# instance lives in $KUBELET_LAB_DIR (its state, sockets, logs, PID files); the binaries come from
# $LAB_STATE, where test/kube-lab/build.sh built them (kubelet, pause/pause-oci.tar).
: "${KUBELET_LAB_DIR:?set KUBELET_LAB_DIR to the folder of this instance}"
mkdir -p "$KUBELET_LAB_DIR"
K=$(cd "$KUBELET_LAB_DIR" && pwd -P)
LAB_STATE=${LAB_STATE:-${PULLGUARD_KUBE_LAB_STATE:-/var/cache/pullguard-kube-lab}}
KBIN=$LAB_STATE/bin/kubelet
PAUSE_TAR=$LAB_STATE/pause/pause-oci.tar
# the name test/kube-lab/build.sh gives the pause image in its index annotation
PAUSE_REF=localhost/pullguard-kubelet-lab/pause:3.4.1
CD=$K/containerd
SOCK=$CD/containerd.sock
NSD=$K/ns
KRUN=$K/run
KLOGS=$K/logs
NODE=${KUBELET_NODE_NAME:-pg-kubelet-1}

log() { printf '%s kubelet-lab: %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf 'kubelet-lab: ERROR: %s\n' "$*" >&2; exit 1; }

alive() { # alive PID -> 0 if the process exists and is not a zombie (reaping by PID 1 can lag)
  local st; st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "${st:0:1}" != Z ]
}

# alive_as NAME WANT -> 0 if $KRUN/NAME.pid names a live process whose command line contains WANT
# (a PID can be reused: never signal a process that is not ours)
alive_as() {
  local f="$KRUN/$1.pid"
  [ -f "$f" ] && alive "$(cat "$f")" && tr '\0' ' ' <"/proc/$(cat "$f")/cmdline" | grep -qF -- "$2"
}
