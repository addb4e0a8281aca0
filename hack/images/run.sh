#!/usr/bin/env bash
# Run one build step (a Dockerfile RUN) inside a root filesystem directory: chroot in a private mount namespace
# (so a killed build leaves no mount behind), with /proc, /dev, the host's DNS resolver and CA bundle (pip reaches
# the package index as the host does) bound in only for the step.
#
# Usage: hack/images/run.sh ROOTFS WORKDIR USER ENV_FILE -- ARGV...
#   WORKDIR   the step's working directory inside ROOTFS (created)
#   USER      "" for root, else USER[:GROUP] (names or ids, chroot --userspec)
#   ENV_FILE  NUL-separated KEY=VALUE entries: the whole environment of the step
# Exit code: the step's.
set -euo pipefail

rootfs="$(cd "${1:?usage: run.sh ROOTFS WORKDIR USER ENV_FILE -- ARGV...}" && pwd)"
workdir="$2" user="$3" env_file="$4"
shift 4
[[ "${1:-}" == "--" ]] && shift

if [[ "${_GA_IMAGE_STEP_INNER:-}" != 1 ]]; then
  exec env _GA_IMAGE_STEP_INNER=1 unshare --mount --propagation private --fork -- "$0" "$rootfs" "$workdir" "$user" "$env_file" -- "$@"
fi

mount -t proc proc "$rootfs/proc"
mount --rbind /dev "$rootfs/dev"
created=()
bind_file() { # host file -> path in rootfs; the mount point is removed afterwards if the step did not make it
  local src="$1" dst="$rootfs$2"
  [[ -f "$src" ]] || return 0
  if [[ ! -e "$dst" && ! -L "$dst" ]]; then mkdir -p "$(dirname "$dst")"; : >"$dst"; created+=("$dst"); fi
  [[ -L "$dst" ]] && return 0
  mount --bind "$src" "$dst"
}
bind_file /etc/resolv.conf /etc/resolv.conf
bind_file /etc/ssl/certs/ca-certificates.crt /tmp/.host-ca-bundle.crt
mkdir -p "$rootfs$workdir"

spec=()
[[ -n "$user" ]] && spec=("--userspec=$user")
env_args=()
while IFS= read -r -d '' kv; do env_args+=("$kv"); done <"$env_file"
set +e
chroot "${spec[@]}" "$rootfs" /usr/bin/env -i "${env_args[@]}" \
  SSL_CERT_FILE=/tmp/.host-ca-bundle.crt PIP_CERT=/tmp/.host-ca-bundle.crt \
  /bin/sh -c 'cd "$0" && exec "$@"' "$workdir" "$@"
rc=$?
set -e
umount "$rootfs/tmp/.host-ca-bundle.crt" 2>/dev/null || true
umount "$rootfs/etc/resolv.conf" 2>/dev/null || true
umount -R "$rootfs/dev"
umount "$rootfs/proc"
for f in "${created[@]}"; do rm -f "$f"; done
exit "$rc"
