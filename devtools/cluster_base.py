"""Support of :mod:`devtools.cluster`: its errors, locating and building the control-plane binaries, the pure
builders of its kubeconfig and audit policy, reading the audit log, and stopping processes.

Everything here is re-exported by :mod:`devtools.cluster`, which callers import.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import REPO_ROOT, certs

__all__ = [
    "ADMIN_USER",
    "BUILD_SCRIPT",
    "WRITE_VERBS",
    "Binaries",
    "BinariesNotFound",
    "ControlPlaneError",
    "audit_policy",
    "build_binaries",
    "find_binaries",
    "kubeconfig_document",
    "read_audit_events",
    "stop_pid",
    "write_pki",
]

BUILD_SCRIPT = REPO_ROOT / "hack" / "envtest" / "build.sh"
#: User name of the admin kubeconfig's client certificate (group system:masters).
ADMIN_USER = "game-analytics-admin"
#: Audit verbs that change state.
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


class ControlPlaneError(RuntimeError):
    """A control-plane process failed to start, died, or did not become ready in time."""


class BinariesNotFound(ControlPlaneError):
    """kube-apiserver, kube-controller-manager or etcd could not be found."""


# --------------------------------------------------------------------------------------------
# Binaries


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of the three control-plane executables."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path


def _search_dirs(bin_dir: str | os.PathLike[str] | None) -> list[Path]:
    dirs = [bin_dir, os.environ.get("KUBEBUILDER_ASSETS"), os.environ.get("ENVTEST_BIN_DIR")]
    found = [Path(d) for d in dirs if d]
    found.append(REPO_ROOT / ".cache" / "bin")
    return found


def find_binaries(bin_dir: str | os.PathLike[str] | None = None) -> Binaries:
    """Locate etcd, kube-apiserver and kube-controller-manager.

    Each binary is looked up, in order, in ``bin_dir``, ``$KUBEBUILDER_ASSETS``, ``$ENVTEST_BIN_DIR``,
    ``<repo>/.cache/bin`` and finally ``$PATH`` (etcd also at ``/usr/bin/etcd``, the Debian package).
    Raises :class:`BinariesNotFound` naming what is missing and how to build it.
    """
    dirs = _search_dirs(bin_dir)
    paths: dict[str, Path] = {}
    missing = []
    for name in ("etcd", "kube-apiserver", "kube-controller-manager"):
        candidates = [d / name for d in dirs]
        on_path = shutil.which(name)
        if on_path:
            candidates.append(Path(on_path))
        if name == "etcd":
            candidates.append(Path("/usr/bin/etcd"))  # Debian's etcd-server
        hit = next((c for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)
        if hit is None:
            missing.append(name)
        else:
            paths[name] = hit.resolve()
    if missing:
        raise BinariesNotFound(
            f"missing control-plane binaries: {', '.join(missing)} (searched {', '.join(map(str, dirs))} "
            f"and PATH); build them with `bash {BUILD_SCRIPT}` (make envtest) "
            "or point KUBEBUILDER_ASSETS at a directory holding them"
        )
    return Binaries(paths["etcd"], paths["kube-apiserver"], paths["kube-controller-manager"])


def build_binaries(script: Path = BUILD_SCRIPT) -> Binaries:
    """Run ``hack/envtest/build.sh`` (a no-op when its binaries are current) and locate the result.

    The cold build compiles Kubernetes and takes 10-25 minutes on 2 cores.  Raises
    :class:`BinariesNotFound` if the script is absent or fails.
    """
    if not script.is_file():
        raise BinariesNotFound(f"{script} not found (not a source checkout?)")
    proc = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        raise BinariesNotFound(f"{script} failed with exit code {proc.returncode}")
    return find_binaries(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------
# Pure configuration builders


def kubeconfig_document(
    server: str,
    ca_file: Path,
    *,
    user: str,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    token: str | None = None,
    namespace: str | None = None,
    context: str = "game-analytics-test",
) -> dict[str, Any]:
    """Return a kubeconfig (as a dict ready for YAML) for one cluster, one user, one context.

    Authenticates with a client certificate (``client_cert`` and ``client_key``) or a bearer
    ``token``; exactly one of the two must be given, else ``ValueError``.
    """
    if (token is None) == (client_cert is None or client_key is None):
        raise ValueError("give either token or both client_cert and client_key")
    credentials: dict[str, str] = (
        {"token": token}
        if token is not None
        else {"client-certificate": str(client_cert), "client-key": str(client_key)}
    )
    ctx: dict[str, str] = {"cluster": context, "user": user}
    if namespace:
        ctx["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": context, "context": ctx}],
        "current-context": context,
    }


def audit_policy() -> dict[str, Any]:
    """Return the audit policy: writes at ``Metadata`` level, reads and health probes not logged.

    ``Metadata`` records who did what to which object (user, verb, objectRef, responseStatus)
    without request bodies, so Secrets never leak into the log.  The RequestReceived stage is
    omitted, leaving one ``ResponseComplete`` event per write (plus ``Panic`` on server errors).
    """
    return {
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived"],
        "rules": [
            {"level": "None", "nonResourceURLs": ["/healthz*", "/readyz*", "/livez*", "/version"]},
            {"level": "Metadata", "verbs": sorted(WRITE_VERBS)},
            {"level": "None"},
        ],
    }


def read_audit_events(
    path: Path,
    *,
    verbs: Iterable[str] | None = WRITE_VERBS,
    user: str | None = None,
    stage: str = "ResponseComplete",
) -> list[dict[str, Any]]:
    """Parse the JSON-lines audit log at ``path`` into ``audit.k8s.io/v1`` Event dicts.

    Filters on ``verbs`` (``None``: any), exact ``user.username`` (``None``: any) and ``stage``.
    A missing file yields ``[]``; a torn last line (being written) is skipped.
    """
    if not path.exists():
        return []
    wanted = set(verbs) if verbs is not None else None
    events = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if event.get("stage") != stage:
                continue
            if wanted is not None and event.get("verb") not in wanted:
                continue
            if user is not None and event.get("user", {}).get("username") != user:
                continue
            events.append(event)
    return events


# --------------------------------------------------------------------------------------------
# Processes


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not reaped by its parent) still answers kill(0).
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def stop_pid(pid: int, *, grace: float = 10.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Stop process ``pid``: SIGTERM, then SIGKILL after ``grace`` seconds. Gone already is fine."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return
        if proc is None and not _pid_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if proc is not None:
        proc.wait(timeout=5)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


# --------------------------------------------------------------------------------------------
# Certificates


def write_pki(pki: Path, host: str) -> None:
    """The control plane's certificates and keys in ``pki`` (CA, serving and client pairs, the front proxy's CA
    and client, the ServiceAccount signing key; private keys mode 0600), serving on ``host``."""
    ca = certs.generate_ca()
    _write_pair(pki / "ca", ca)
    serving = certs.issue_certificate(
        ca,
        "kube-apiserver",
        dns_names=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
        ip_addresses=[host, "10.96.0.1"],
        server=True,
    )
    _write_pair(pki / "apiserver", serving)
    _write_pair(
        pki / "controller-manager-serving",
        certs.issue_certificate(
            ca, "kube-controller-manager", dns_names=["localhost"], ip_addresses=[host], server=True
        ),
    )
    _write_pair(
        pki / "admin",
        certs.issue_certificate(ca, ADMIN_USER, organizations=["system:masters"], client=True),
    )
    # Bound by the default ClusterRoleBinding system:kube-controller-manager.
    _write_pair(
        pki / "controller-manager",
        certs.issue_certificate(ca, "system:kube-controller-manager", client=True),
    )
    # Front proxy (aggregation layer): its own CA, so only this client may assert X-Remote-* headers.
    front_ca = certs.generate_ca("game-analytics-test-front-proxy-ca")
    _write_pair(pki / "front-proxy-ca", front_ca)
    _write_pair(
        pki / "front-proxy-client", certs.issue_certificate(front_ca, "front-proxy-client", client=True)
    )
    private, public = certs.generate_signing_key()
    (pki / "sa.key").write_bytes(private)
    (pki / "sa.key").chmod(0o600)
    (pki / "sa.pub").write_bytes(public)


def _write_pair(stem: Path, pair: certs.KeyPair) -> None:
    stem.with_suffix(".crt").write_bytes(pair.cert_pem)
    key = stem.with_suffix(".key")
    key.write_bytes(pair.key_pem)
    key.chmod(0o600)
