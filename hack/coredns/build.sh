#!/usr/bin/env bash
# Build CoreDNS with the node tier's plugin set (main.go) from the version pinned in go.mod, cached like
# hack/envtest/build.sh: .cache/bin/coredns with a .coredns-stamp (CoreDNS version, Go version, go.sum digest), the Go
# caches and a copy of the binary in the machine-wide ~/.cache/game-analytics/envtest (ENVTEST_SHARED_CACHE).
# Last line of stdout on success: the directory holding the binary.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin_dir="${ENVTEST_BIN_DIR:-$root/.cache/bin}"
shared="${ENVTEST_SHARED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/game-analytics/envtest}"
start=$SECONDS
log() { echo "[coredns] $*" >&2; }
command -v go >/dev/null 2>&1 || { log "error: the Go toolchain (go) is not on PATH"; exit 1; }
version="$(awk '$1 == "require" && $2 == "github.com/coredns/coredns" {print $3}' "$here/go.mod")"
stamp="coredns=$version go=$(go env GOVERSION) main=$(sha256sum "$here/main.go" | cut -c1-12) gosum=$(sha256sum "$here/go.sum" | cut -c1-16)"
mkdir -p "$bin_dir"
if [[ -x "$bin_dir/coredns" && "$(cat "$bin_dir/.coredns-stamp" 2>/dev/null)" == "$stamp" ]]; then
  log "up to date: $stamp"; echo "$bin_dir"; exit 0
fi
if [[ -x "$shared/bin/coredns" && "$(cat "$shared/bin/.coredns-stamp" 2>/dev/null)" == "$stamp" ]]; then
  cp -f "$shared/bin/coredns" "$bin_dir/coredns"; echo "$stamp" >"$bin_dir/.coredns-stamp"
  cp -f "$shared/bin/.coredns-stamp.seconds" "$bin_dir/" 2>/dev/null || true
  log "copied from $shared/bin"; echo "$bin_dir"; exit 0
fi
export GOPATH="$shared/go" GOMODCACHE="$shared/go/mod" GOCACHE="$shared/go/build"
export GOFLAGS="-mod=readonly -buildvcs=false -trimpath" GOTOOLCHAIN=local CGO_ENABLED=0
log "building coredns $version (plugins: see main.go)"
(cd "$here" && go mod download && go build -ldflags "-s -w" -o "$bin_dir/coredns.tmp" .)
mv -f "$bin_dir/coredns.tmp" "$bin_dir/coredns"
echo "$stamp" >"$bin_dir/.coredns-stamp"
echo "$((SECONDS - start))" >"$bin_dir/.coredns-stamp.seconds"  # the cold build time, which make demo prints
mkdir -p "$shared/bin" && cp -f "$bin_dir/coredns" "$shared/bin/coredns" && echo "$stamp" >"$shared/bin/.coredns-stamp"
cp -f "$bin_dir/.coredns-stamp.seconds" "$shared/bin/"
log "coredns: $(du -h "$bin_dir/coredns" | cut -f1) in $((SECONDS - start))s"
echo "$bin_dir"
