#!/bin/bash
# A real kubelet v1.20.2 with its own private containerd, against a kube-apiserver on loopback (the
# test tier's test/kube-lab), so that pods bound to its node with spec.nodeName really pull their
# images: the ones that cannot be pulled really end in ErrImagePull / ImagePullBackOff with the
# kubelet's own texts. See README.md. Stop with kubelet-down.sh (by PID). No CNI: hostNetwork pods only.
#
#   KUBELET_LAB_DIR=/tmp/x KUBELET_LAB_KUBECONFIG=/path/kubeconfig bash kubelet-up.sh
#
# Settings (environment):
#   KUBELET_LAB_DIR          the instance's folder: state, sockets, logs, PID files (required)
#   KUBELET_LAB_KUBECONFIG   a kubeconfig for the API server (the kubelet authenticates with it; required)
#   KUBELET_NODE_NAME        default pg-kubelet-1
#   KUBELET_PORT, KUBELET_HEALTHZ_PORT   on 127.0.0.1; default 10250 and 10248 (give free ones)
#   KUBELET_LAB_REGISTRIES   registries containerd may reach, space-separated: HOST=http or
#                            HOST=https:/path/to/ca.crt (HOST as in the image name, 127.0.0.1:PORT)
#   LAB_STATE                where test/kube-lab/build.sh built kubelet and the pause image
#                            (default $PULLGUARD_KUBE_LAB_STATE, else /var/cache/pullguard-kube-lab)
#
# Host footprint: nothing outside $KUBELET_LAB_DIR. containerd and the kubelet share one private
# mount namespace (unshare -m) in which
#   /var/lib, /var/log, /run  are overlays whose upper dirs are under $KUBELET_LAB_DIR/ns/
#     (the kubelet hardcodes /var/lib/kubelet/device-plugins and /var/log/pods + /var/log/containers;
#      containerd 1.6 hardcodes /run/containerd/s for shim sockets),
#   4 sysctl files the kubelet would otherwise rewrite on the host kernel (vm.overcommit_memory,
#     vm.panic_on_oom, kernel.panic, kernel.panic_on_oops; the kubelet's setupKernelTunables) are
#     bind-mounted over by files holding the values it expects, so it leaves the real ones alone.
set -euo pipefail
LAB_DIR=$(cd "$(dirname "$0")" && pwd -P)
. "$LAB_DIR/lib/common.sh"
: "${KUBELET_LAB_KUBECONFIG:?set KUBELET_LAB_KUBECONFIG to the API server kubeconfig}"
KPORT=${KUBELET_PORT:-10250}
HPORT=${KUBELET_HEALTHZ_PORT:-10248}

for cmd in containerd ctr runc unshare nsenter setsid curl; do
  command -v "$cmd" >/dev/null || die "missing $cmd: run bash .ci/install-packages"
done
[ -x "$KBIN" ] || die "missing $KBIN: run bash .ci/install-packages (test/kube-lab/build.sh builds it)"
[ -f "$PAUSE_TAR" ] || die "missing $PAUSE_TAR: run bash .ci/install-packages (test/kube-lab/build.sh builds it)"
[ "$(id -u)" -eq 0 ] || die "needs root (a private mount namespace, containerd, runc)"
mkdir -p "$KRUN" "$KLOGS" "$CD"

write_containerd_config() {
  local entry host kind ca
  mkdir -p "$CD/root" "$CD/state" "$CD/opt" "$CD/runc" "$CD/cni/bin" "$CD/cni/net.d"
  rm -rf "$CD/hosts.d"; mkdir -p "$CD/hosts.d"
  for entry in ${KUBELET_LAB_REGISTRIES:-}; do
    host=${entry%%=*}; kind=${entry#*=}
    mkdir -p "$CD/hosts.d/$host"
    # containerd 1.6 ignores a hosts.toml without a [host] table (containerd#10027), hence the empty one.
    case "$kind" in
      http) printf 'server = "http://%s"\n\n[host]\n' "$host" >"$CD/hosts.d/$host/hosts.toml" ;;
      https:*) ca=${kind#https:}; [ -f "$ca" ] || die "registry $host: no CA file $ca"
        printf 'server = "https://%s"\nca = "%s"\n\n[host]\n' "$host" "$ca" >"$CD/hosts.d/$host/hosts.toml" ;;
      *) die "KUBELET_LAB_REGISTRIES: '$entry' is neither HOST=http nor HOST=https:CAFILE" ;;
    esac
  done
  cat >"$CD/config.toml" <<TOML
version = 2
root = "$CD/root"
state = "$CD/state"
oom_score = 0

[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = ""
  level = "info"
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$CD/opt"
[plugins."io.containerd.grpc.v1.cri"]
  disable_tcp_service = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  sandbox_image = "$PAUSE_REF"
  # Sandboxes without CAP_SYS_RESOURCE cannot set a negative oom_score_adj (the CRI gives the pod
  # sandbox -998): "runc create failed: unable to start container process: can't get final child's
  # PID from pipe: EOF". This clamps every oom_score_adj to containerd's own (0) or above.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$CD/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CD/cni/bin"
    conf_dir = "$CD/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$CD/hosts.d"
TOML
}

write_ns_init() { # the script that sets up the private mount namespace, then execs containerd
  local d
  for d in var-lib var-log run; do mkdir -p "$NSD/$d/upper" "$NSD/$d/work"; done
  mkdir -p "$NSD/sysctl"
  echo 1 >"$NSD/sysctl/vm.overcommit_memory"; echo 0 >"$NSD/sysctl/vm.panic_on_oom"
  echo 10 >"$NSD/sysctl/kernel.panic"; echo 1 >"$NSD/sysctl/kernel.panic_on_oops"
  cat >"$NSD/init.sh" <<INIT
#!/bin/sh
set -e
mount -t overlay overlay -o lowerdir=/var/lib,upperdir=$NSD/var-lib/upper,workdir=$NSD/var-lib/work /var/lib
mount -t overlay overlay -o lowerdir=/var/log,upperdir=$NSD/var-log/upper,workdir=$NSD/var-log/work /var/log
mount -t overlay overlay -o lowerdir=/run,upperdir=$NSD/run/upper,workdir=$NSD/run/work /run
for k in vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops; do
  mount --bind "$NSD/sysctl/\$k" "/proc/sys/\$(echo \$k | tr . /)"
done
exec containerd --config "$CD/config.toml"
INIT
  chmod +x "$NSD/init.sh"
}

start_containerd() {
  if alive_as containerd "--config $CD/config.toml"; then log "containerd already running (pid $(cat "$KRUN/containerd.pid"))"; return 0; fi
  [ ${#SOCK} -le 100 ] || die "socket path too long (unix sockets: 108 bytes): $SOCK"
  write_containerd_config; write_ns_init
  rm -f "$SOCK" "$SOCK.ttrpc"
  # setsid: own session; unshare and sh both exec, so $! is containerd's PID.
  setsid unshare -m --propagation private "$NSD/init.sh" </dev/null >>"$KLOGS/containerd.log" 2>&1 &
  echo $! >"$KRUN/containerd.pid"
  local i
  for i in $(seq 1 300); do
    ctr --address "$SOCK" --connect-timeout 1s version >/dev/null 2>&1 && break
    alive "$(cat "$KRUN/containerd.pid")" || { tail -n 20 "$KLOGS/containerd.log" >&2; die "containerd exited"; }
    sleep 0.2
  done
  ctr --address "$SOCK" --connect-timeout 1s version >/dev/null 2>&1 || die "containerd not answering on $SOCK after 60 s"
  log "containerd pid $(cat "$KRUN/containerd.pid"), socket $SOCK"
  if ! ctr --address "$SOCK" -n k8s.io images ls -q | grep -qxF "$PAUSE_REF"; then
    ctr --address "$SOCK" -n k8s.io images import --snapshotter overlayfs "$PAUSE_TAR" >/dev/null
    log "imported $PAUSE_REF"
  fi
  # label the pause image as the CRI does for images it pulls itself (else the CRI does not list it)
  ctr --address "$SOCK" -n k8s.io images label "$PAUSE_REF" io.cri-containerd.image=managed >/dev/null
}

write_kubelet_config() {
  mkdir -p "$K/root/pki" "$K/volume-plugins"
  cp "$KUBELET_LAB_KUBECONFIG" "$K/kubeconfig"; chmod 600 "$K/kubeconfig"
  cat >"$K/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $KPORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $HPORT
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
cgroupsPerQOS: false
failSwapOn: false
makeIPTablesUtilChains: false
volumePluginDir: $K/volume-plugins
staticPodPath: ""
resolvConf: /etc/resolv.conf
serializeImagePulls: true
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
runtimeRequestTimeout: 2m
YAML
}

start_kubelet() {
  if alive_as kubelet "$KBIN"; then log "kubelet already running (pid $(cat "$KRUN/kubelet.pid"))"; return 0; fi
  write_kubelet_config
  local cpid; cpid=$(cat "$KRUN/containerd.pid")
  # same mount namespace as containerd (nsenter execs, so $! is the kubelet's PID)
  setsid nsenter -t "$cpid" -m "$KBIN" \
    --config="$K/kubelet.yaml" --kubeconfig="$K/kubeconfig" \
    --container-runtime=remote --container-runtime-endpoint="unix://$SOCK" \
    --image-service-endpoint="unix://$SOCK" \
    --root-dir="$K/root" --cert-dir="$K/root/pki" \
    --hostname-override="$NODE" --pod-infra-container-image="$PAUSE_REF" \
    --enforce-node-allocatable="" \
    --v="${KUBELET_V:-2}" </dev/null >>"$KLOGS/kubelet.log" 2>&1 &
  echo $! >"$KRUN/kubelet.pid"
  log "kubelet pid $!, log $KLOGS/kubelet.log"
  local i
  for i in $(seq 1 180); do
    alive_as kubelet "$KBIN" || { tail -n 30 "$KLOGS/kubelet.log" >&2; die "kubelet exited"; }
    if curl -sf "http://127.0.0.1:$HPORT/healthz" >/dev/null 2>&1 &&
       grep -qF "Successfully registered node $NODE" "$KLOGS/kubelet.log"; then
      log "node $NODE registered, kubelet healthz ok"; return 0
    fi
    sleep 1
  done
  tail -n 30 "$KLOGS/kubelet.log" >&2
  die "node $NODE not registered after 180 s, see $KLOGS/kubelet.log"
}

case "${1:-all}" in
  containerd) start_containerd ;;
  all) start_containerd; start_kubelet ;;
  *) echo "usage: $0 [all|containerd]"; exit 2 ;;
esac
