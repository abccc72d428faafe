#!/bin/bash
# Builds the kube-apiserver the lab tier (test/lab/) runs against: v1.20.2 from Debian bookworm's
# source package `kubernetes`, with Go 1.19, offline, into $LAB_STATE/bin/kube-apiserver. etcd comes
# from Debian's etcd-server. From the same tree: the kubelet (bin/kubelet) and the pause image
# (pause/pause-oci.tar, static pause.c) that test/kubelet-lab runs with its own containerd. Every step skips what is already done, so a second run on the same
# machine costs nothing; a machine-wide lock keeps two checkouts from building at once.
#   LAB_STATE=/var/cache/pullguard-kube-lab bash test/kube-lab/build.sh   (the default state folder)
# Steps: source (apt-get source --download-only, private apt config: /etc/apt stays as it is),
# prepare (unpack, two source fixes), openapi (generate the file upstream's make generates), build,
# kubelet (go build ./cmd/kubelet: about 1 minute more with the cache warm), pause (gcc -static).
# About 5 minutes on 2 cores the first time; 1.9 GB under $LAB_STATE (1.4 GB of it Go build cache).
set -euo pipefail
LAB_STATE=${LAB_STATE:-/var/cache/pullguard-kube-lab}
mkdir -p "$LAB_STATE"
LAB_STATE=$(cd "$LAB_STATE" && pwd -P)
BIN=$LAB_STATE/bin
LOGS=$LAB_STATE/logs
K8S=$LAB_STATE/k8s
SRC=$LAB_STATE/src
APTDIR=$LAB_STATE/apt
FORCE=${LAB_FORCE:-}

K8S_VERSION=v1.20.2
K8S_ORIG=kubernetes_1.20.5+really1.20.2.orig.tar.gz
# sha256 of the orig tarball of Debian's kubernetes 1.20.5+really1.20.2 (changes only with the upstream version)
K8S_ORIG_SHA256=b83c0780efb182d928dc63d46488a847f161f04e40a94b96bf5247dd671ecdfc
GOROOT_119=/usr/lib/go-1.19
GO=$GOROOT_119/bin/go
DEB_REFLECT2=/usr/share/gocode/src/github.com/modern-go/reflect2 # golang-github-modern-go-reflect2-dev 1.0.2
DEBIAN_MIRROR=${LAB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY_MIRROR=${LAB_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

log() { printf '%s kube-lab: %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf 'kube-lab: ERROR: %s\n' "$*" >&2; exit 1; }

PAUSE=$LAB_STATE/pause
# the pause image's name in the kubelet's containerd (test/kubelet-lab/kubelet-up.sh uses the same)
PAUSE_REF=localhost/pullguard-kubelet-lab/pause:3.4.1
mkdir -p "$BIN" "$LOGS" "$SRC"
built() { # built BINARY -> 0 if $BIN/BINARY is there and prints the version
  [ -x "$BIN/$1" ] && [ "$("$BIN/$1" --version 2>/dev/null)" = "Kubernetes $K8S_VERSION" ]
}
all_built() { built kube-apiserver && built kubelet && [ -f "$PAUSE/pause-oci.tar" ]; }
if [ -z "$FORCE" ] && all_built; then
  log "$BIN/kube-apiserver, $BIN/kubelet ($K8S_VERSION) and $PAUSE/pause-oci.tar already built"; exit 0
fi
# One build per machine at a time: a second checkout waits, then finds the binaries built.
exec 8>"$LAB_STATE/build.lock"
flock 8
if [ -z "$FORCE" ] && all_built; then log "built meanwhile by another run"; exit 0; fi
for cmd in "$GO" etcd flock gcc strip; do command -v "$cmd" >/dev/null || die "missing $cmd: run bash .ci/install-packages"; done
[ -d "$DEB_REFLECT2" ] || die "missing $DEB_REFLECT2: run bash .ci/install-packages"

write_apt_config() { # private apt config: own sources, lists and cache under $APTDIR
  local kr=/usr/share/keyrings/debian-archive-keyring.gpg so=""
  [ -f "$kr" ] && so="[signed-by=$kr] "
  mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial"
  cat >"$APTDIR/sources.list" <<EOS
deb-src ${so}$DEBIAN_MIRROR bookworm main
deb-src ${so}$DEBIAN_SECURITY_MIRROR bookworm-security main
deb-src ${so}$DEBIAN_MIRROR bookworm-updates main
EOS
  cat >"$APTDIR/apt.conf" <<EOS
Dir::Etc::SourceList "$APTDIR/sources.list";
Dir::Etc::SourceParts "/dev/null";
Dir::State::Lists "$APTDIR/lists";
Dir::Cache "$APTDIR/cache";
Acquire::Languages "none";
EOS
}
papt() { APT_CONFIG="$APTDIR/apt.conf" "$@"; }

go_env() { # module mode: vendored dependencies only, no network, no user go env
  env GOENV=off GOTOOLCHAIN=local GO111MODULE=on GOFLAGS=-mod=vendor GOPROXY=off GOSUMDB=off \
    CGO_ENABLED=0 GOROOT="$GOROOT_119" GOPATH="$LAB_STATE/gopath" GOCACHE="$LAB_STATE/gocache" \
    PATH="$GOROOT_119/bin:$PATH" "$@"
}

step_source() {
  write_apt_config
  if [ -z "$FORCE" ] && [ -f "$SRC/$K8S_ORIG" ] && ls "$SRC"/kubernetes_*.dsc >/dev/null 2>&1; then
    log "source: $K8S_ORIG already downloaded"
  else
    log "source: apt-get source --download-only kubernetes"
    papt apt-get update -qq
    (cd "$SRC" && papt apt-get source -qq --download-only kubernetes)
  fi
  local sum; sum=$(sha256sum "$SRC/$K8S_ORIG" | cut -d' ' -f1)
  [ "$sum" = "$K8S_ORIG_SHA256" ] || [ -n "${LAB_SKIP_ORIG_CHECK:-}" ] \
    || die "source: $K8S_ORIG has sha256 $sum, expected $K8S_ORIG_SHA256 (LAB_SKIP_ORIG_CHECK=1 to go on)"
  sed -n 's/^Version: //p' "$(ls -t "$SRC"/kubernetes_*.dsc | head -n1)" | head -n1 >"$SRC/debian-version"
}

step_prepare() {
  if [ -z "$FORCE" ] && [ -f "$K8S/.lab-prepared" ]; then log "prepare: already prepared"; return 0; fi
  log "prepare: unpacking $K8S_ORIG"
  rm -rf "$K8S" "$K8S.tmp"; mkdir -p "$K8S.tmp"
  tar xzf "$SRC/$K8S_ORIG" -C "$K8S.tmp" --strip-components=1
  # Go 1.15 wrote vendor/modules.txt with wildcard replacement headers ("# path => path vX") between the
  # modules; Go 1.19 then refuses -mod=vendor. Newer Go writes them at the end: move them there, in order.
  local mt=$K8S.tmp/vendor/modules.txt
  cp "$mt" "$SRC/modules.txt.orig"
  awk '/^# [^ ]+ => /{w[n++]=$0; next} {print} END{for(i=0;i<n;i++) print w[i]}' "$SRC/modules.txt.orig" >"$mt"
  # The vendored modern-go/reflect2 v1.0.1 links reflect.mapiterinit with its pre-Go-1.18 signature;
  # Debian's 1.0.2 is the upstream fix. The vendored LICENSE stays; vendor folders carry no go.mod.
  local r=$K8S.tmp/vendor/github.com/modern-go/reflect2 f
  find "$r" -mindepth 1 ! -name LICENSE -delete
  for f in "$DEB_REFLECT2"/*; do [ "${f##*/}" = go.mod ] || cp "$f" "$r/"; done
  mv "$K8S.tmp" "$K8S"
  touch "$K8S/.lab-prepared"
}

step_openapi() {
  local out=$K8S/pkg/generated/openapi/zz_generated.openapi.go
  if [ -z "$FORCE" ] && [ -f "$out" ]; then log "openapi: already generated"; return 0; fi
  # Upstream's make generates this file at build time; the source tarball lacks it. Same tool (the
  # vendored openapi-gen), same inputs (every package tagged +k8s:openapi-gen=, as the Makefile picks them).
  log "openapi: building the vendored openapi-gen and generating"
  (cd "$K8S" && go_env "$GO" build -o "$BIN/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen)
  grepl() { xargs grep --color=never -l -e "$1" || [ $? -eq 123 ]; } # 123: a batch matched nothing
  (
    cd "$K8S"
    find -H . -not \( \( -path './_*' -o -path './.*' -o -path ./vendor \) -prune \) -type f -name '*.go' \
      | sed 's|^./staging/src|vendor|' | sed 's|/[^/]*$||' | sed 's|^./||' | LC_ALL=C sort -u >"$SRC/all-go-dirs.txt"
    # shellcheck disable=SC2046
    find $(cat "$SRC/all-go-dirs.txt") -maxdepth 1 -type f -name '*.go' | grepl '^// *+k8s:' \
      | grep -v -E '^vendor/k8s.io/(code-generator|sample-apiserver)/' \
      | grepl '+k8s:openapi-gen=' | xargs -n1 dirname | LC_ALL=C sort -u >"$SRC/openapi-dirs.txt"
  )
  [ -s "$SRC/openapi-dirs.txt" ] || die "openapi: no input packages found"
  local gp=$LAB_STATE/gopath-gen inputs # GOPATH mode, as hack/run-in-gopath.sh runs it
  mkdir -p "$gp/src/k8s.io"; ln -sfn "$K8S" "$gp/src/k8s.io/kubernetes"
  inputs=$(sed 's|^|k8s.io/kubernetes/|' "$SRC/openapi-dirs.txt" | paste -sd, -)
  (
    cd "$gp/src/k8s.io/kubernetes"
    env -u GOFLAGS GOENV=off GO111MODULE=off GOPATH="$gp" GOROOT="$GOROOT_119" GOCACHE="$LAB_STATE/gocache" \
      PATH="$GOROOT_119/bin:$PATH" "$BIN/openapi-gen" --logtostderr --input-dirs "$inputs" \
      --output-base "$gp/src" --output-package k8s.io/kubernetes/pkg/generated/openapi \
      --output-file-base zz_generated.openapi --go-header-file hack/boilerplate/boilerplate.generatego.txt \
      --report-filename "$SRC/openapi-violations.report"
  ) >"$LOGS/openapi-gen.log" 2>&1 || { tail -n 30 "$LOGS/openapi-gen.log"; die "openapi-gen failed"; }
  [ -s "$out" ] || die "openapi: $out was not written"
}

ldflags() { # the version stamp upstream's make puts in every binary
  local debver date ld p
  debver=$(cat "$SRC/debian-version" 2>/dev/null || echo unknown)
  date=$(date -u ${SOURCE_DATE_EPOCH:+-d "@$SOURCE_DATE_EPOCH"} +%Y-%m-%dT%H:%M:%SZ)
  ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=20 -X $p.gitTreeState=clean"
    ld="$ld -X $p.buildDate=$date -X $p.gitCommit=debian-$debver"
  done
  printf '%s' "$ld"
}

go_build() { # go_build NAME: ./cmd/NAME into $BIN/NAME, unless built (or LAB_FORCE)
  local t0 v
  if [ -z "$FORCE" ] && built "$1"; then log "build: $BIN/$1 already built"; return 0; fi
  log "build: go build ./cmd/$1 (kube-apiserver: about 3 minutes on 2 cores with a cold cache)"
  t0=$(date +%s)
  (cd "$K8S" && go_env "$GO" build -trimpath -ldflags "$(ldflags)" -o "$BIN/$1.new" "./cmd/$1")
  mv "$BIN/$1.new" "$BIN/$1"
  v=$("$BIN/$1" --version)
  [ "$v" = "Kubernetes $K8S_VERSION" ] || die "build: $1 --version printed '$v'"
  log "build: $1 $v in $(($(date +%s) - t0)) s"
}
step_build() { go_build kube-apiserver; }
step_kubelet() { go_build kubelet; }

step_pause() { # Kubernetes' own build/pause/linux/pause.c, static, as a hand-made OCI image tar
  [ -z "$FORCE" ] && [ -f "$PAUSE/pause-oci.tar" ] && { log "pause: already built"; return 0; }
  local P=$PAUSE.tmp diffid ld ls cd cs md ms
  rm -rf "$P"; mkdir -p "$P/rootfs" "$P/oci/blobs/sha256"
  gcc -Os -Wall -Werror -static -DVERSION=v3.4.1-pullguard -o "$P/rootfs/pause" "$K8S/build/pause/linux/pause.c"
  strip "$P/rootfs/pause"; chmod 0755 "$P/rootfs/pause"
  (umask 022
   tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=posix \
       --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -C "$P/rootfs" -cf "$P/layer.tar" pause)
  diffid=$(sha256sum "$P/layer.tar" | cut -d' ' -f1)
  gzip -n -9 -c "$P/layer.tar" >"$P/layer.tar.gz"
  ld=$(sha256sum "$P/layer.tar.gz" | cut -d' ' -f1); ls=$(stat -c %s "$P/layer.tar.gz"); cp "$P/layer.tar.gz" "$P/oci/blobs/sha256/$ld"
  # what upstream's build/pause/Dockerfile makes: FROM scratch, ADD pause, USER 65535:65535, ENTRYPOINT ["/pause"]
  printf '{"created":"2024-01-01T00:00:00Z","architecture":"amd64","os":"linux","config":{"User":"65535:65535","Entrypoint":["/pause"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$diffid" >"$P/config.json"
  cd=$(sha256sum "$P/config.json" | cut -d' ' -f1); cs=$(stat -c %s "$P/config.json"); cp "$P/config.json" "$P/oci/blobs/sha256/$cd"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
    "$cd" "$cs" "$ld" "$ls" >"$P/manifest.json"
  md=$(sha256sum "$P/manifest.json" | cut -d' ' -f1); ms=$(stat -c %s "$P/manifest.json"); cp "$P/manifest.json" "$P/oci/blobs/sha256/$md"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$P/oci/oci-layout"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"3.4.1"}}]}' \
    "$md" "$ms" "$PAUSE_REF" >"$P/oci/index.json"
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$P/oci" -cf "$P/pause-oci.tar" .
  rm -rf "$PAUSE"; mv "$P" "$PAUSE"
  log "pause: $PAUSE_REF manifest sha256:$md"
}

for s in source prepare openapi build kubelet pause; do "step_$s"; done
