#!/usr/bin/env bash
# Pack a root filesystem directory as a one-layer OCI image (umoci) and write it as an OCI layout tarball, the
# input of `ctr images import`.
#
# Usage: hack/images/pack.sh ROOTFS OUT_TAR TAG [UMOCI_CONFIG_ARG...]
#   TAG                 the ref.name in the layout's index.json (the importer adds the repository: --base-name)
#   UMOCI_CONFIG_ARG    passed to `umoci config`, e.g. --config.entrypoint=game-analytics --config.user=10001:10001
# Files keep their numeric owners. The layer's timestamps are the files' own.
set -euo pipefail

rootfs="${1:?usage: pack.sh ROOTFS OUT_TAR TAG [UMOCI_CONFIG_ARG...]}" out="${2:?}" tag="${3:?}"
shift 3
command -v umoci >/dev/null || { echo "[pack] umoci is not installed (make debs)" >&2; exit 1; }
work="$(mktemp -d "$(dirname "$out")/.pack.XXXXXX")"
trap 'rm -rf "$work"' EXIT
umoci init --layout "$work/oci"
umoci new --image "$work/oci:$tag"
tar --numeric-owner --xattrs --acls -C "$rootfs" -cf "$work/layer.tar" .
umoci raw add-layer --image "$work/oci:$tag" "$work/layer.tar"
rm -f "$work/layer.tar"
umoci config --image "$work/oci:$tag" --os=linux --architecture="$(dpkg --print-architecture)" "$@"
umoci gc --layout "$work/oci"
tar -C "$work/oci" -cf "$work/image.tar" .
mv -f "$work/image.tar" "$out"
echo "[pack] $out: $(du -h "$out" | cut -f1)" >&2
