#!/bin/bash
# Builds the kube-apiserver the lab tier (test/lab/) runs against: v1.20.2 from Debian bookworm's
# source package `kubernetes`, with Go 1.19, offline, into $LAB_STATE/bin/kube-apiserver. etcd comes
# from Debian's etcd-server. Every step skips what is already done, so a second run on the same
# machine costs nothing; a machine-wide lock keeps two checkouts from building at once.
#   LAB_STATE=/var/cache/pullguard-kube-lab bash test/kube-lab/build.sh   (the default state folder)
# Steps: source (apt-get source --download-only, private apt config: /etc/apt stays as it is),
# prepare (unpack, two source fixes), openapi (generate the file upstream's make generates), build.
# About 4 minutes on 2 cores the first time; 1.7 GB under $LAB_STATE (1.2 GB of it Go build cache).
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

mkdir -p "$BIN" "$LOGS" "$SRC"
if [ -z "$FORCE" ] && [ -x "$BIN/kube-apiserver" ] && [ "$("$BIN/kube-apiserver" --version 2>/dev/null)" = "Kubernetes $K8S_VERSION" ]; then
  log "$BIN/kube-apiserver ($K8S_VERSION) already built"; exit 0
fi
# One build per machine at a time: a second checkout waits, then finds the binary built.
exec 8>"$LAB_STATE/build.lock"
flock 8
if [ -z "$FORCE" ] && [ -x "$BIN/kube-apiserver" ]; then log "built meanwhile by another run"; exit 0; fi
for cmd in "$GO" etcd flock; do command -v "$cmd" >/dev/null || die "missing $cmd: run bash .ci/install-packages"; done
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

step_build() {
  local debver date ld p t0
  debver=$(cat "$SRC/debian-version" 2>/dev/null || echo unknown)
  date=$(date -u ${SOURCE_DATE_EPOCH:+-d "@$SOURCE_DATE_EPOCH"} +%Y-%m-%dT%H:%M:%SZ)
  ld="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=20 -X $p.gitTreeState=clean"
    ld="$ld -X $p.buildDate=$date -X $p.gitCommit=debian-$debver"
  done
  log "build: go build ./cmd/kube-apiserver (about 3 minutes on 2 cores with a cold cache)"
  t0=$(date +%s)
  (cd "$K8S" && go_env "$GO" build -trimpath -ldflags "$ld" -o "$BIN/kube-apiserver.new" ./cmd/kube-apiserver)
  mv "$BIN/kube-apiserver.new" "$BIN/kube-apiserver"
  local v; v=$("$BIN/kube-apiserver" --version)
  [ "$v" = "Kubernetes $K8S_VERSION" ] || die "build: --version printed '$v'"
  log "build: $v in $(($(date +%s) - t0)) s"
}

for s in source prepare openapi build; do "step_$s"; done
