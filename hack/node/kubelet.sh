#!/usr/bin/env bash
# Start the kubelet in its own mount namespace, so that its kernel tunables check leaves the machine alone.
#
# At start the kubelet sets vm.overcommit_memory=1, vm.panic_on_oom=0, kernel.panic=10, kernel.panic_on_oops=1
# and the root key quotas when they differ (with protectKernelDefaults it refuses to start instead). On a shared
# machine neither is acceptable, so in the kubelet's private mount namespace each differing /proc/sys entry is
# covered by a file holding the value the kubelet wants: it reads that, and the host keeps its own settings.
# The kubelet's root dir must be a shared mount (devtools/node.py makes it one), so that the volumes the kubelet
# mounts there propagate back to containerd's namespace.
#
# Usage: unshare --mount --propagation unchanged -- hack/node/kubelet.sh TUNABLES_DIR KUBELET [ARG...]
# (unshare without --fork and this script's exec keep one PID: the kubelet's.)
set -euo pipefail
dir="${1:?usage: kubelet.sh TUNABLES_DIR KUBELET [ARG...]}"
shift
mount --make-rprivate /proc
mkdir -p "$dir"
while read -r key want; do
  path="/proc/sys/${key//.//}"
  [[ -e "$path" ]] || continue
  have="$(cat "$path")"
  if [[ "$have" != "$want" ]]; then
    echo "$want" >"$dir/$key"
    mount --bind "$dir/$key" "$path"
    echo "[kubelet.sh] $key: the host keeps $have; the kubelet reads $want" >&2
  fi
done <<'TUNABLES'
vm.overcommit_memory 1
vm.panic_on_oom 0
kernel.panic 10
kernel.panic_on_oops 1
kernel.keys.root_maxkeys 1000000
kernel.keys.root_maxbytes 25000000
TUNABLES
exec "$@"
