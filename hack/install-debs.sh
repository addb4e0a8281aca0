#!/usr/bin/env bash
# Install the Debian packages whose programs the project runs as real components in tests and demos:
#
#   postgresql               initdb/postgres/pg_ctl under /usr/lib/postgresql/<major>/bin
#   redis-server             redis-server, redis-cli (via redis-tools)
#   redis-sentinel           redis-sentinel (a redis-server in sentinel mode)
#   prometheus               prometheus server and promtool
#   prometheus-alertmanager  amtool, and the server as /usr/bin/prometheus-alertmanager (Debian name)
#   etcd-server              etcd, the storage of the envtest control plane
#   containerd, runc         the node tier's container runtime (CRI), started privately by devtools/node.py
#   containernetworking-plugins  bridge, host-local, loopback, portmap CNI plugins in /usr/lib/cni
#   iptables, nftables, conntrack  kube-proxy's rules (iptables is the nf_tables backend here)
#   mmdebstrap, umoci        Debian root filesystems and OCI layouts: the node's images (hack/images)
#   shellcheck               lints the RedisFailover scripts (controller/redisfailover/scripts) in the tests
#   poppler-utils            pdftoppm: PDF report pages to PNG in the tests (and for looking at them)
#   chromium                 only with --with-chromium or WITH_CHROMIUM=1 (headless screenshots)
#
# Idempotent: when every package is already installed (checked with dpkg-query) it prints so and exits at once.
# `apt-get update` runs only when a wanted package has no install candidate or a download fails.
#
# Services are never started: Debian maintainer scripts would start redis, postgresql, prometheus and
# alertmanager as system services on their default ports, while the project's tests start their own
# instances on random loopback ports. During the install a policy-rc.d that forbids starting services is
# put in place (unless one exists already), and under systemd the units are stopped and disabled after it.
#
# Usage: hack/install-debs.sh [--with-chromium]
set -euo pipefail

log() { printf '[install-debs] %s\n' "$*"; }

packages=(postgresql redis-server redis-sentinel prometheus prometheus-alertmanager etcd-server
  containerd runc containernetworking-plugins iptables nftables conntrack mmdebstrap umoci shellcheck poppler-utils)
services=(postgresql redis-server redis-sentinel prometheus prometheus-alertmanager etcd containerd)

with_chromium="${WITH_CHROMIUM:-0}"
for arg in "$@"; do
  case "$arg" in
    --with-chromium) with_chromium=1 ;;
    -h | --help)
      sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "unknown argument: $arg (try --help)" >&2
      exit 2
      ;;
  esac
done
if [[ "$with_chromium" == 1 ]]; then
  packages+=(chromium)
fi

is_installed() {
  [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" == "ii"* ]]
}

missing=()
for pkg in "${packages[@]}"; do
  if ! is_installed "$pkg"; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  log "all installed: ${packages[*]}"
  exit 0
fi
log "missing: ${missing[*]}"

SUDO=()
if [[ "$(id -u)" != 0 ]]; then
  if command -v sudo >/dev/null; then
    SUDO=(sudo)
  else
    echo "[install-debs] must run as root (or with sudo available)" >&2
    exit 1
  fi
fi

# Forbid service starts while packages are configured. Keep a policy-rc.d that is already there
# (container images ship one that exits 101), remove only the one we created.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e "$policy" ]]; then
  log "installing temporary $policy (exit 101: do not start services)"
  printf '#!/bin/sh\n# written by game-analytics hack/install-debs.sh, removed after the install\nexit 101\n' |
    "${SUDO[@]}" tee "$policy" >/dev/null
  "${SUDO[@]}" chmod 0755 "$policy"
  created_policy=1
fi
cleanup() {
  if [[ "$created_policy" == 1 ]]; then
    log "removing temporary $policy"
    "${SUDO[@]}" rm -f "$policy"
  fi
}
trap cleanup EXIT

apt_env=(env DEBIAN_FRONTEND=noninteractive)
apt_update() {
  log "apt-get update"
  "${SUDO[@]}" "${apt_env[@]}" apt-get update -q
}

# Package lists are needed when a package has no candidate (no lists yet, or lists older than the package).
needs_update=0
for pkg in "${missing[@]}"; do
  candidate="$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ {print $2}')"
  if [[ -z "$candidate" || "$candidate" == "(none)" ]]; then
    needs_update=1
  fi
done
if [[ "$needs_update" == 1 ]]; then
  apt_update
fi

install_cmd=("${SUDO[@]}" "${apt_env[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}")
log "${install_cmd[*]}"
if ! "${install_cmd[@]}"; then
  # Stale lists make downloads fail with 404: refresh once and retry.
  log "install failed; refreshing package lists and retrying once"
  apt_update
  "${install_cmd[@]}"
fi

# Under systemd the policy-rc.d is honoured by deb-systemd-invoke too, but units get enabled for the
# next boot: disable them so that no system instance occupies the default ports later.
if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
  for svc in "${services[@]}"; do
    if systemctl list-unit-files "$svc.service" >/dev/null 2>&1; then
      log "systemctl disable --now $svc"
      "${SUDO[@]}" systemctl disable --now "$svc" >/dev/null 2>&1 || true
    fi
  done
fi

for pkg in "${packages[@]}"; do
  if ! is_installed "$pkg"; then
    echo "[install-debs] $pkg is still not installed" >&2
    exit 1
  fi
done
log "installed: ${missing[*]}"
