#!/usr/bin/env bash
# Make the root filesystem of the node's pod sandbox ("pause") image: Debian's statically linked busybox only.
# Its entrypoint (set by devtools/images.py) is a shell that sleeps until SIGTERM or SIGINT, then exits 0.
#
# Usage: hack/images/pause-rootfs.sh OUT_DIR   (OUT_DIR must not exist yet)
set -euo pipefail
out="${1:?usage: pause-rootfs.sh OUT_DIR}"
[[ ! -e "$out" ]] || { echo "[pause] $out exists" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download -q busybox-static >&2) ||
  { apt-get update -q >&2 && (cd "$tmp" && apt-get download -q busybox-static >&2); }
dpkg-deb -x "$tmp"/busybox-static_*.deb "$tmp/x"
mkdir -p "$out/bin" "$out/tmp" "$out/proc" "$out/dev" "$out/sys" "$out/etc"
cp "$tmp/x/bin/busybox" "$out/bin/busybox"
ln -s busybox "$out/bin/sh"
ln -s busybox "$out/bin/sleep"
echo "nobody:x:65534:65534:nobody:/:/bin/sh" >"$out/etc/passwd"
echo "nogroup:x:65534:" >"$out/etc/group"
chmod 1777 "$out/tmp"
echo "[pause] busybox $(dpkg-deb -f "$tmp"/busybox-static_*.deb Version)" >&2
