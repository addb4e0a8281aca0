#!/usr/bin/env bash
# Build (or locate) the real Kubernetes binaries of the e2e tier from the k8s.io/kubernetes version pinned in
# hack/envtest/go.mod, one `go build` per set:
#
#   build.sh [control-plane]   kube-apiserver, kube-controller-manager (plus etcd from Debian's etcd-server)
#   build.sh node              kubelet, kube-proxy, kube-scheduler (the node tier: devtools/node.py)
#
# Output: $ENVTEST_BIN_DIR (default <repo>/.cache/bin) holds the set's binaries and its stamp file
# (.envtest-stamp for the control plane, .node-stamp for the node). The Go toolchain's caches live in
# $ENVTEST_SHARED_CACHE (default ~/.cache/game-analytics/envtest), shared by every clone on the machine, so that
# CI's fresh clone reuses a build made by an earlier clone (binaries are copied from there when the stamp matches).
#
# Idempotent: binaries are reused when present and the stamp (Kubernetes version, Go version,
# go.sum digest) matches. If KUBEBUILDER_ASSETS names a directory holding the set's binaries, nothing is built
# and that directory is reported instead.
#
# Last line of stdout on success: the directory holding the binaries.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin_dir="${ENVTEST_BIN_DIR:-$root/.cache/bin}"
set_name="${1:-control-plane}"
case "$set_name" in
  control-plane) binaries=(kube-apiserver kube-controller-manager); stamp_name=.envtest-stamp ;;
  node) binaries=(kubelet kube-proxy kube-scheduler); stamp_name=.node-stamp ;;
  *) echo "[envtest] unknown set: $set_name (control-plane or node)" >&2; exit 2 ;;
esac
start=$SECONDS

log() { echo "[envtest] $*" >&2; }
elapsed() { log "done in $((SECONDS - start))s"; }

ensure_etcd() {
  local dir="$1"
  if [[ -x "$dir/etcd" ]]; then return; fi
  if ! command -v etcd >/dev/null 2>&1 && [[ ! -x /usr/bin/etcd ]]; then
    log "installing etcd (Debian package etcd-server)"
    if [[ $(id -u) -eq 0 ]]; then
      apt-get install -y etcd-server >&2 || { apt-get update >&2 && apt-get install -y etcd-server >&2; }
    else
      sudo apt-get install -y etcd-server >&2
    fi
  fi
  local etcd_path
  etcd_path="$(command -v etcd || echo /usr/bin/etcd)"
  ln -sfn "$etcd_path" "$dir/etcd"
  log "etcd: $("$dir/etcd" --version | head -n1)"
}

# 1. Pre-built assets (controller-runtime's envtest layout, or anything else).
if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  assets_complete=1
  for b in "${binaries[@]}"; do [[ -x "$KUBEBUILDER_ASSETS/$b" ]] || assets_complete=0; done
  if [[ $assets_complete -eq 1 ]]; then
    log "using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS (nothing built)"
    if [[ "$set_name" == control-plane && ! -x "$KUBEBUILDER_ASSETS/etcd" ]]; then
      log "note: no etcd in KUBEBUILDER_ASSETS; the harness falls back to PATH"
    fi
    elapsed
    echo "$KUBEBUILDER_ASSETS"
    exit 0
  fi
  log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks one of ${binaries[*]}; building instead"
fi

command -v go >/dev/null 2>&1 || { log "error: the Go toolchain (go) is not on PATH"; exit 1; }

k8s_version="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$here/go.mod")"
[[ -n "$k8s_version" ]] || { log "error: cannot read the k8s.io/kubernetes version from go.mod"; exit 1; }
go_version="$(go env GOVERSION)"
stamp="kubernetes=$k8s_version go=$go_version goos=$(go env GOOS)/$(go env GOARCH) gosum=$(sha256sum "$here/go.sum" | cut -c1-16)"

mkdir -p "$bin_dir"
if [[ "$set_name" == control-plane ]]; then ensure_etcd "$bin_dir"; fi

# 2. Cached binaries.
all_present=1
for b in "${binaries[@]}"; do [[ -x "$bin_dir/$b" ]] || all_present=0; done
if [[ $all_present -eq 1 && -f "$bin_dir/$stamp_name" && "$(cat "$bin_dir/$stamp_name")" == "$stamp" ]]; then
  log "up to date: $stamp"
  elapsed
  echo "$bin_dir"
  exit 0
fi

# 3. A build made by another clone on this machine (e.g. CI's fresh clone reuses the developer's).
shared="${ENVTEST_SHARED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/game-analytics/envtest}"
if [[ -f "$shared/bin/$stamp_name" && "$(cat "$shared/bin/$stamp_name")" == "$stamp" ]]; then
  for b in "${binaries[@]}"; do cp -f "$shared/bin/$b" "$bin_dir/$b"; done
  cp -f "$shared/bin/$stamp_name.seconds" "$bin_dir/" 2>/dev/null || true
  echo "$stamp" > "$bin_dir/$stamp_name"
  log "copied from the machine's shared cache $shared/bin: $stamp"
  elapsed
  echo "$bin_dir"
  exit 0
fi

# 4. Build.
export GOPATH="$shared/go"
export GOMODCACHE="$GOPATH/mod"
export GOCACHE="$GOPATH/build"
export GOFLAGS="-mod=readonly -buildvcs=false -trimpath"
export GOTOOLCHAIN=local
export CGO_ENABLED=0

# The version the binaries report (kube-apiserver --version, /version). Same variables as
# Kubernetes' hack/lib/version.sh sets for release builds.
major="${k8s_version#v}"; major="${major%%.*}"
minor="${k8s_version#v*.}"; minor="${minor%%.*}"
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

log "building ${binaries[*]} from k8s.io/kubernetes $k8s_version with $go_version (control plane: ~11 min cold on 2 cores; node: ~1-3 min once the control plane is built)"
tmp="$(mktemp -d "$bin_dir/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
pkgs=()
for b in "${binaries[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
(
  cd "$here"
  log "downloading modules"
  go mod download
  log "compiling (go build -o $bin_dir ${pkgs[*]})"
  go build -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}"
)
for b in "${binaries[@]}"; do
  mv -f "$tmp/$b" "$bin_dir/$b"
  log "$b: $(du -h "$bin_dir/$b" | cut -f1) $("$bin_dir/$b" --version 2>&1 | head -n1)"
done
echo "$stamp" > "$bin_dir/$stamp_name"
echo "$((SECONDS - start))" > "$bin_dir/$stamp_name.seconds"  # the cold build time, which make demo prints
mkdir -p "$shared/bin"
for b in "${binaries[@]}"; do cp -f "$bin_dir/$b" "$shared/bin/$b"; done
cp -f "$bin_dir/$stamp_name.seconds" "$shared/bin/"
echo "$stamp" > "$shared/bin/$stamp_name"
elapsed
echo "$bin_dir"
