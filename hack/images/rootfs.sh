#!/usr/bin/env bash
# Make a Debian root filesystem (mmdebstrap, variant minbase) in a directory, from the package mirror this
# machine's apt is configured with (/etc/apt/sources.list and /etc/apt/sources.list.d/*: no host is named here).
#
# Usage: hack/images/rootfs.sh OUT_DIR [PACKAGE...]
#   OUT_DIR     created; must not exist yet
#   PACKAGE...  installed on top of minbase (no Recommends)
# The suite is the host's (VERSION_CODENAME of /etc/os-release). Documentation, man pages and locales are left out.
# Runs as root (mmdebstrap --mode=root). Prints nothing on stdout; progress on stderr.
set -euo pipefail

out="${1:?usage: rootfs.sh OUT_DIR [PACKAGE...]}"
shift
[[ ! -e "$out" ]] || { echo "[rootfs] $out exists" >&2; exit 1; }
command -v mmdebstrap >/dev/null || { echo "[rootfs] mmdebstrap is not installed (make debs)" >&2; exit 1; }

# shellcheck disable=SC1091
suite="$(. /etc/os-release && echo "$VERSION_CODENAME")"
sources=()
[[ -s /etc/apt/sources.list ]] && grep -qE '^\s*deb\s' /etc/apt/sources.list && sources+=(/etc/apt/sources.list)
for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
  [[ -f "$f" ]] && sources+=("$f")
done
((${#sources[@]})) || { echo "[rootfs] no apt sources configured in /etc/apt" >&2; exit 1; }

include=()
if (($#)); then include=("--include=$(IFS=,; echo "$*")"); fi
log_file="$(mktemp)"
trap 'rm -f "$log_file"' EXIT
start=$SECONDS
if ! mmdebstrap --mode=root --variant=minbase --format=directory "${include[@]}" \
  --aptopt='APT::Install-Recommends "false"' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  "$suite" "$out" "${sources[@]}" >"$log_file" 2>&1; then
  tail -n 30 "$log_file" >&2
  exit 1
fi
# apt's lists and caches are not part of an image.
rm -rf "$out"/var/lib/apt/lists/* "$out"/var/cache/apt/*.bin "$out"/var/log/apt/* "$out"/var/log/dpkg.log
echo "[rootfs] $suite minbase + ${*:-nothing} in $((SECONDS - start))s: $(du -sh "$out" | cut -f1)" >&2
