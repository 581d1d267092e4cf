#!/usr/bin/env bash
# Builds the real servers the test bed runs, from source through the Go module
# proxy, into a cache outside the repository:
#   ${OIDC_PUBLISHER_CACHE:-$HOME/.cache/oidc-publisher}/bin/<tool>-<version>
# A tool already in the cache is not built again.
#
#   build-tools.sh [tool ...]     tools: kube (kube-apiserver + kubectl), etcd, minio, fake-gcs-server, helm,
#                                 node (kubelet, kube-controller-manager, kube-scheduler, kube-proxy and
#                                 the pause binary, for the bed's real node),
#                                 kubeadm (for the test that validates the documentation's kubeadm configurations)
#                                 pod-identity-webhook (the AWS pod identity webhook, for the node's Pods)
#                                 promtool (Prometheus's rule checker, for the alerting rules' unit tests)
#
# Each build says what it builds, where it is cached and about how long it takes: the
# estimates are measured on 2 cores with an empty Go cache (a warm Go cache is faster).
set -euo pipefail

: "${KUBE_VERSION:?set by test/bed/tools.ts}"
: "${ETCD_VERSION:?set by test/bed/tools.ts}"
: "${MINIO_VERSION:?set by test/bed/tools.ts}"
: "${FAKE_GCS_VERSION:?set by test/bed/tools.ts}"
: "${HELM_VERSION:?set by test/bed/tools.ts}"
: "${POD_IDENTITY_WEBHOOK_VERSION:?set by test/bed/tools.ts}"

cache="${OIDC_PUBLISHER_CACHE:-$HOME/.cache/oidc-publisher}"
bin="$cache/bin"
mkdir -p "$bin"

if ! command -v go >/dev/null 2>&1; then
  echo "build-tools: Go is not installed. The test bed builds kube-apiserver, etcd, MinIO and" >&2
  echo "fake-gcs-server from source and needs Go >= 1.25 on PATH (https://go.dev/doc/install;" >&2
  echo "on Debian: apt-get install golang-go, or unpack the official tarball into /usr/local/go)." >&2
  exit 3
fi

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod

log() { printf 'build-tools: %s\n' "$*" >&2; }

have() { [ -x "$bin/$1" ]; }

# install_into DIR NAME: moves a freshly built binary into the cache atomically.
publish() {
  local built="$1" name="$2"
  chmod 0755 "$built"
  mv -f "$built" "$bin/$name.tmp.$$"
  mv -f "$bin/$name.tmp.$$" "$bin/$name"
}

# kube_build TITLE ESTIMATE CMD... : builds k8s.io/kubernetes/cmd/CMD for each CMD in one throwaway
# module, the kubernetes module's staging replacements pointed at their published tags, into
# $work/CMD. Sets $work (removed by the caller).
kube_build() {
  local title="$1" estimate="$2"; shift 2
  log "building $title $KUBE_VERSION from source into $bin: about $estimate on 2 cores the first time, cached afterwards"
  work="$(mktemp -d)"
  (
    cd "$work"
    go mod init oidc-publisher.local/kubetools >/dev/null 2>&1
    local gomod
    gomod="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
    [ -f "$gomod" ] || { log "could not download k8s.io/kubernetes@$KUBE_VERSION"; exit 1; }
    local staging="v0.${KUBE_VERSION#v1.}"
    # The kubernetes module replaces its staging modules with local paths; point
    # each at its published tag instead.
    local goline
    goline="$(grep -E '^go [0-9.]+$' "$gomod" | head -n1)"
    go mod edit -go="${goline#go }"
    grep -E '^godebug ' "$gomod" >> go.mod || true
    awk '/^godebug \(/{f=1} f{print} f&&/^\)/{f=0}' "$gomod" >> go.mod
    local mods
    mods="$(grep -oE 'k8s\.io/[a-z0-9._-]+ => \./staging/src/k8s\.io/[a-z0-9._-]+' "$gomod" | awk '{print $1}' | sort -u)"
    [ -n "$mods" ] || { log "no staging replacements found in $gomod"; exit 1; }
    for m in $mods; do go mod edit -replace="$m=$m@$staging"; done
    go mod edit -require="k8s.io/kubernetes@$KUBE_VERSION"
    local pkgs=() c
    for c in "$@"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
    log "$title: downloading modules"
    go get "${pkgs[@]/%/@$KUBE_VERSION}" >&2
    local minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
    local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
    ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
    mkdir -p "$work/out"
    log "$title: compiling"
    go build -trimpath -ldflags "$ldflags" -o "$work/out/" "${pkgs[@]}"
  )
}

build_kube() {
  local apiserver="kube-apiserver-$KUBE_VERSION" kubectl="kubectl-$KUBE_VERSION"
  if have "$apiserver" && have "$kubectl"; then return; fi
  local work
  trap 'rm -rf "$work"' RETURN
  kube_build "kube-apiserver and kubectl" "12 min" kube-apiserver kubectl
  publish "$work/out/kube-apiserver" "$apiserver"
  publish "$work/out/kubectl" "$kubectl"
  log "built $apiserver and $kubectl (cached)"
}

# The real node: kubelet, kube-controller-manager, kube-scheduler, kube-proxy, and the
# pause binary compiled from the pause.c of the same Kubernetes release.
build_node() {
  local cmds=(kubelet kube-controller-manager kube-scheduler kube-proxy) c all=1
  for c in "${cmds[@]}"; do have "$c-$KUBE_VERSION" || all=; done
  have "pause-$KUBE_VERSION" || all=
  [ -n "$all" ] && return
  command -v gcc >/dev/null 2>&1 || { log "the pause binary needs gcc (test/bed/node-packages.sh installs it)"; exit 3; }
  local work
  trap 'rm -rf "$work"' RETURN
  kube_build "${cmds[*]}" "8 min (3 after kube-apiserver's build)" "${cmds[@]}"
  local src
  src="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')/build/pause/linux/pause.c"
  [ -f "$src" ] || { log "no pause.c at $src"; exit 1; }
  local pause_version
  pause_version="$(sed -n 's/^TAG ?= *//p' "$(dirname "$(dirname "$src")")/Makefile" 2>/dev/null | head -n1)"
  gcc -Os -static -Wall -Werror -DVERSION="v${pause_version:-3.10.1}" -o "$work/out/pause" "$src"
  for c in "${cmds[@]}"; do publish "$work/out/$c" "$c-$KUBE_VERSION"; done
  publish "$work/out/pause" "pause-$KUBE_VERSION"
  log "built ${cmds[*]} and pause $KUBE_VERSION (cached)"
}

# kubeadm of the bed's Kubernetes version: test/integration/kubeadm-config.test.ts runs its
# `config validate` and a dry run of the kube-apiserver manifest on the documentation's snippets.
# Measured: 2 min 7 s after kube-apiserver's build (modules and most packages cached), on 2 busy
# cores; the 6 min with an empty Go cache is an estimate, not a measurement.
build_kubeadm() {
  local name="kubeadm-$KUBE_VERSION"
  have "$name" && return
  local work
  trap 'rm -rf "$work"' RETURN
  kube_build "kubeadm" "6 min (2 after kube-apiserver's build)" kubeadm
  publish "$work/out/kubeadm" "$name"
  log "built $name (cached)"
}

# promtool of a pinned Prometheus release (its Go module's v0.MAJORMINOR.PATCH tag): the
# alerting rules' unit tests run `promtool check rules` and `promtool test rules`. Built in a
# throwaway module so that the replace and exclude directives of Prometheus's go.mod do not stop it.
# Measured: 11 CPU-minutes (9.5 user, 1.5 system) with no Prometheus module in the Go cache, 26 min
# wall on 2 cores shared with other builds; about 6 min on 2 idle cores.
build_promtool() {
  : "${PROMETHEUS_VERSION:?set by test/bed/tools.ts}"
  local name="promtool-$PROMETHEUS_VERSION"
  have "$name" && return
  log "building promtool (github.com/prometheus/prometheus $PROMETHEUS_VERSION) from source into $bin: about 8 min on 2 cores the first time, cached afterwards"
  local work; work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  (
    cd "$work"
    go mod init oidc-publisher.local/promtool >/dev/null 2>&1
    go get -tool "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION" >&2
    go build -trimpath -ldflags "-s -w" -o "$work/promtool" github.com/prometheus/prometheus/cmd/promtool
  )
  publish "$work/promtool" "$name"
  log "built $name (cached)"
}

build_etcd() {
  local name="etcd-$ETCD_VERSION"
  have "$name" && return
  log "building etcd $ETCD_VERSION from source into $bin: about 3 min on 2 cores the first time, cached afterwards"
  local work; work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  (
    cd "$work"
    go mod init oidc-publisher.local/etcdtool >/dev/null 2>&1
    go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
    go build -trimpath -ldflags "-s -w" -o "$work/etcd" go.etcd.io/etcd/server/v3
  )
  publish "$work/etcd" "$name"
  log "built $name (cached)"
}

# go_install_tool NAME MODULE@VERSION BINARY ESTIMATE
go_install_tool() {
  local name="$1" pkg="$2" binary="$3" estimate="$4"
  have "$name" && return
  log "building $pkg from source into $bin: about $estimate on 2 cores the first time, cached afterwards"
  local work; work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  GOBIN="$work" GOFLAGS= go install -trimpath -ldflags "-s -w" "$pkg" >&2
  publish "$work/$binary" "$name"
  log "built $name (cached)"
}

tools=("$@")
[ ${#tools[@]} -gt 0 ] || tools=(kube etcd minio fake-gcs-server)
for t in "${tools[@]}"; do
  case "$t" in
    kube) build_kube ;;
    etcd) build_etcd ;;
    node) build_node ;;
    kubeadm) build_kubeadm ;;
    promtool) build_promtool ;;
    minio) go_install_tool "minio-$MINIO_VERSION" "github.com/minio/minio@$MINIO_VERSION" minio "8 min" ;;
    fake-gcs-server) go_install_tool "fake-gcs-server-$FAKE_GCS_VERSION" "github.com/fsouza/fake-gcs-server@$FAKE_GCS_VERSION" fake-gcs-server "3 min" ;;
    helm) go_install_tool "helm-$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" helm "4 min" ;;
    pod-identity-webhook)
      go_install_tool "pod-identity-webhook-$POD_IDENTITY_WEBHOOK_VERSION" \
        "github.com/aws/amazon-eks-pod-identity-webhook@$POD_IDENTITY_WEBHOOK_VERSION" \
        amazon-eks-pod-identity-webhook "3 min" ;;
    *) log "unknown tool: $t"; exit 2 ;;
  esac
done
