#!/usr/bin/env bash
# Build prometheus-operator and prometheus-config-reloader from the github.com/prometheus-operator/prometheus-operator
# version pinned in hack/prometheus-operator/go.mod, and copy that version's CRDs (example/prometheus-operator-crd/ of
# the module) to .cache/prometheus-operator/crds/, where the e2e tier and `make demo` install them from
# (devtools/prometheus_operator.py). Cached like hack/envtest/build.sh:
#
#   .cache/bin/prometheus-operator, .cache/bin/prometheus-config-reloader and .cache/bin/.prometheus-operator-stamp
#   (operator version, Go version, go.sum digest); the Go caches and a copy of the binaries in the machine-wide
#   ~/.cache/game-analytics/envtest (ENVTEST_SHARED_CACHE), shared with hack/envtest and hack/coredns.
#
# Idempotent: nothing is built when the stamp matches. Last line of stdout on success: the binary directory.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin_dir="${ENVTEST_BIN_DIR:-$root/.cache/bin}"
crd_dir="${PROMETHEUS_OPERATOR_CRD_DIR:-$root/.cache/prometheus-operator/crds}"
shared="${ENVTEST_SHARED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/game-analytics/envtest}"
binaries=(prometheus-operator prometheus-config-reloader)
stamp_name=.prometheus-operator-stamp
start=$SECONDS
log() { echo "[prometheus-operator] $*" >&2; }
command -v go >/dev/null 2>&1 || { log "error: the Go toolchain (go) is not on PATH"; exit 1; }

module=github.com/prometheus-operator/prometheus-operator
version="$(awk -v m="$module" '$1 == "require" && $2 == m {print $3}' "$here/go.mod")"
[[ -n "$version" ]] || { log "error: cannot read the $module version from go.mod"; exit 1; }
stamp="prometheus-operator=$version go=$(go env GOVERSION) goos=$(go env GOOS)/$(go env GOARCH) gosum=$(sha256sum "$here/go.sum" | cut -c1-16)"

export GOPATH="$shared/go" GOMODCACHE="$shared/go/mod" GOCACHE="$shared/go/build"
export GOFLAGS="-mod=readonly -buildvcs=false -trimpath" GOTOOLCHAIN=local CGO_ENABLED=0

# The CRDs: the release's own files, copied so that nothing reads the (read-only) module cache at test time.
copy_crds() {
  local src
  src="$(cd "$here" && go mod download -json "$module@$version" | awk -F'"' '$2 == "Dir" {print $4}')"
  [[ -d "$src/example/prometheus-operator-crd" ]] || { log "error: no example/prometheus-operator-crd in $src"; exit 1; }
  mkdir -p "$crd_dir"
  rm -f "$crd_dir"/*.yaml
  cp "$src"/example/prometheus-operator-crd/*.yaml "$crd_dir/"
  chmod u+w "$crd_dir"/*.yaml
  echo "$version" >"$crd_dir/VERSION"
}

mkdir -p "$bin_dir"
all_present=1
for b in "${binaries[@]}"; do [[ -x "$bin_dir/$b" ]] || all_present=0; done
if [[ $all_present -eq 1 && "$(cat "$bin_dir/$stamp_name" 2>/dev/null)" == "$stamp" ]]; then
  [[ "$(cat "$crd_dir/VERSION" 2>/dev/null)" == "$version" ]] || copy_crds
  log "up to date: $stamp"; echo "$bin_dir"; exit 0
fi
copy_crds
if [[ "$(cat "$shared/bin/$stamp_name" 2>/dev/null)" == "$stamp" ]]; then
  for b in "${binaries[@]}"; do cp -f "$shared/bin/$b" "$bin_dir/$b"; done
  echo "$stamp" >"$bin_dir/$stamp_name"
  log "copied from the machine's shared cache $shared/bin: $stamp"; echo "$bin_dir"; exit 0
fi

# The version the binaries report (--version, the prometheus_operator build_info metric), as upstream's Makefile sets it.
pkg=github.com/prometheus/common/version
ldflags="-s -w -X $pkg.Version=${version#v} -X $pkg.Revision=$version -X $pkg.Branch=$version"
ldflags+=" -X $pkg.BuildUser=game-analytics -X $pkg.BuildDate=$(date -u +%Y%m%d-%H:%M:%S)"
log "building ${binaries[*]} from $module $version (~5 min cold on 2 cores)"
tmp="$(mktemp -d "$bin_dir/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
(
  cd "$here"
  go mod download
  go build -ldflags "$ldflags" -o "$tmp/prometheus-operator" "$module/cmd/operator"
  go build -ldflags "$ldflags" -o "$tmp/prometheus-config-reloader" "$module/cmd/prometheus-config-reloader"
)
for b in "${binaries[@]}"; do
  mv -f "$tmp/$b" "$bin_dir/$b"
  log "$b: $(du -h "$bin_dir/$b" | cut -f1) $("$bin_dir/$b" --version 2>&1 | head -n1)"
done
echo "$stamp" >"$bin_dir/$stamp_name"
mkdir -p "$shared/bin"
for b in "${binaries[@]}"; do cp -f "$bin_dir/$b" "$shared/bin/$b"; done
echo "$stamp" >"$shared/bin/$stamp_name"
log "done in $((SECONDS - start))s"
echo "$bin_dir"
