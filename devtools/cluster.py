"""A real Kubernetes control plane on loopback, envtest style: etcd + kube-apiserver + kube-controller-manager.

No containers, no kubelet, no scheduler: Pods are stored and owned but never run.  Everything else a
controller talks to is the real thing: RBAC and Node authorization, ServiceAccount token issuing
(TokenRequest API), the default admission chain including PodSecurity, CRD schema and CEL
validation, the garbage collector and the workload controllers.  This is the tier the operator's
e2e tests run against.

Layout of the work directory::

    pki/            CA, serving and client certificates, ServiceAccount signing key
    etcd-data/      etcd's data directory (recreated on every start)
    audit/          audit-policy.yaml and audit.log (JSON lines, one event per request stage)
    logs/           etcd.log, kube-apiserver.log, kube-controller-manager.log
    kubeconfig      cluster-admin kubeconfig (client certificate in group system:masters)
    pids.json       process ids of a detached cluster (``up --detach``)

Binaries come from :func:`find_binaries` (``hack/envtest/build.sh`` builds them into ``.cache/bin``).

Command line (for ``make cluster``)::

    python -m devtools.cluster up [--dir DIR] [--detach] [--node]
    python -m devtools.cluster down --dir DIR

Example::

    with LocalControlPlane() as cp:
        api = kubernetes.client.CoreV1Api(cp.api_client())
        api.list_namespace()
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from . import REPO_ROOT, certs
from .waiting import free_port

__all__ = [
    "ADMIN_USER",
    "WRITE_VERBS",
    "Binaries",
    "BinariesNotFound",
    "ControlPlaneError",
    "LocalControlPlane",
    "audit_policy",
    "build_binaries",
    "find_binaries",
    "kubeconfig_document",
    "read_audit_events",
    "stop_pid",
]

BUILD_SCRIPT = REPO_ROOT / "hack" / "envtest" / "build.sh"

#: User name of the admin kubeconfig's client certificate (group system:masters).
ADMIN_USER = "game-analytics-admin"
#: Audit verbs that change state.
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"  # bookkeeping only: no Service IP is ever routed


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


class LocalControlPlane:
    """etcd + kube-apiserver + kube-controller-manager on free loopback ports.

    ``work_dir``: where certificates, data, logs and the kubeconfig go; a temporary directory
    (removed by :meth:`stop`) when ``None``.  ``binaries``: from :func:`find_binaries` when ``None``.
    ``controller_manager``: also start kube-controller-manager (garbage collector, workload,
    namespace and ServiceAccount controllers; each controller uses its own ServiceAccount).
    ``extra_apiserver_args``: appended to kube-apiserver's command line (``--flag=value`` strings).

    Usable as a context manager.  :meth:`start` raises :class:`ControlPlaneError` (after stopping
    whatever did start) when a process exits early or ``/readyz`` is not ok within ``timeout``.
    """

    def __init__(
        self,
        work_dir: str | os.PathLike[str] | None = None,
        binaries: Binaries | None = None,
        *,
        controller_manager: bool = True,
        extra_apiserver_args: Sequence[str] = (),
        host: str = "127.0.0.1",
    ) -> None:
        self._owns_dir = work_dir is None
        self.work_dir = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="ga-control-plane-"))
        self.binaries = binaries or find_binaries()
        self.host = host
        self._with_kcm = controller_manager
        self._extra_apiserver_args = list(extra_apiserver_args)
        self._procs: list[_Process] = []
        self._log_files: list[IO[bytes]] = []
        self.apiserver_port = 0
        self.etcd_url = ""

    # -- paths --------------------------------------------------------------------------------
    @property
    def pki_dir(self) -> Path:
        return self.work_dir / "pki"

    @property
    def logs_dir(self) -> Path:
        return self.work_dir / "logs"

    @property
    def kubeconfig(self) -> Path:
        """Path of the cluster-admin kubeconfig (user :data:`ADMIN_USER`, group system:masters)."""
        return self.work_dir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.pki_dir / "ca.crt"

    @property
    def audit_log(self) -> Path:
        """Path of the JSON-lines audit log (see :func:`audit_policy` and :func:`read_audit_events`)."""
        return self.work_dir / "audit" / "audit.log"

    @property
    def server(self) -> str:
        """The API server URL, ``https://127.0.0.1:<port>``."""
        return f"https://{self.host}:{self.apiserver_port}"

    @property
    def pids(self) -> dict[str, int]:
        """Process ids by component name (``etcd``, ``kube-apiserver``, ``kube-controller-manager``)."""
        return {p.name: p.popen.pid for p in self._procs}

    # -- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> LocalControlPlane:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 180.0) -> None:
        """Generate certificates and config, start the three processes and wait until ready."""
        for sub in ("pki", "logs", "audit"):
            (self.work_dir / sub).mkdir(parents=True, exist_ok=True)
        etcd_data = self.work_dir / "etcd-data"
        if etcd_data.exists():
            shutil.rmtree(etcd_data)
        self._write_pki()
        (self.work_dir / "audit" / "audit-policy.yaml").write_text(yaml.safe_dump(audit_policy()))
        deadline = time.monotonic() + timeout
        try:
            self._start_etcd(etcd_data, deadline)
            self._start_apiserver(deadline)
            self._write_kubeconfigs()
            if self._with_kcm:
                self._start_controller_manager(deadline)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every started process by PID (reverse start order); remove an owned temp dir."""
        for proc in reversed(self._procs):
            stop_pid(proc.popen.pid, proc=proc.popen)
        self._procs.clear()
        for fh in self._log_files:
            fh.close()
        self._log_files.clear()
        if self._owns_dir and self.work_dir.exists():
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def detach(self) -> Path:
        """Leave the processes running after this object is gone; write ``pids.json`` and return its path.

        Stop them later with ``python -m devtools.cluster down --dir DIR``.
        """
        pid_file = self.work_dir / "pids.json"
        pid_file.write_text(json.dumps({"pids": self.pids, "server": self.server}, indent=2))
        self._procs.clear()
        self._owns_dir = False
        return pid_file

    # -- clients ------------------------------------------------------------------------------
    def ssl_context(self, *, client_cert: bool = True) -> ssl.SSLContext:
        """TLS context trusting the cluster CA, presenting the admin client certificate if ``client_cert``."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        if client_cert:
            ctx.load_cert_chain(self.pki_dir / "admin.crt", self.pki_dir / "admin.key")
        return ctx

    def get(self, path: str, *, timeout: float = 5.0) -> tuple[int, str]:
        """GET ``path`` from the API server as admin; return ``(status, body)``. Raises ``OSError`` if unreachable."""
        import http.client

        conn = http.client.HTTPSConnection(
            self.host, self.apiserver_port, context=self.ssl_context(), timeout=timeout
        )
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read().decode(errors="replace")
        finally:
            conn.close()

    def readyz(self) -> str:
        """Body of ``/readyz`` (``"ok"`` when ready); raises ``OSError`` when the server is unreachable."""
        return self.get("/readyz")[1]

    def api_client(self, kubeconfig: Path | None = None) -> Any:
        """A ``kubernetes.client.ApiClient`` for ``kubeconfig`` (the admin one by default)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(kubeconfig or self.kubeconfig))

    def service_account_kubeconfig(
        self,
        namespace: str,
        name: str,
        *,
        expiration_seconds: int = 3600,
        path: Path | None = None,
        create: bool = True,
    ) -> Path:
        """Write a kubeconfig authenticating as ServiceAccount ``namespace/name``; return its path.

        The bearer token comes from the TokenRequest API (``serviceaccounts/token``), as
        ``kubectl create token`` does; it expires after ``expiration_seconds`` (at least 600).
        The ServiceAccount is created first when ``create`` and absent.  The user has whatever
        RBAC grants it (nothing by default).  Raises ``kubernetes.client.ApiException`` on API errors.
        """
        from kubernetes import client

        with self.api_client() as api:
            core = client.CoreV1Api(api)
            if create:
                try:
                    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
                except client.ApiException as exc:
                    if exc.status != 409:
                        raise
            request = client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=expiration_seconds)
            )
            token = core.create_namespaced_service_account_token(name, namespace, request).status.token
        path = path or self.work_dir / f"kubeconfig-sa-{namespace}-{name}"
        doc = kubeconfig_document(
            self.server,
            self.ca_file,
            user=f"system:serviceaccount:{namespace}:{name}",
            token=token,
            namespace=namespace,
        )
        path.write_text(yaml.safe_dump(doc))
        path.chmod(0o600)
        return path

    def audit_events(self, **filters: Any) -> list[dict[str, Any]]:
        """Audit events so far; keyword filters as :func:`read_audit_events` (default: completed writes)."""
        return read_audit_events(self.audit_log, **filters)

    # -- internals ----------------------------------------------------------------------------
    def _write_pki(self) -> None:
        pki = self.pki_dir
        ca = certs.generate_ca()
        self._write_pair(pki / "ca", ca)
        serving = certs.issue_certificate(
            ca,
            "kube-apiserver",
            dns_names=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
            ip_addresses=[self.host, "10.96.0.1"],
            server=True,
        )
        self._write_pair(pki / "apiserver", serving)
        self._write_pair(
            pki / "controller-manager-serving",
            certs.issue_certificate(
                ca, "kube-controller-manager", dns_names=["localhost"], ip_addresses=[self.host], server=True
            ),
        )
        self._write_pair(
            pki / "admin",
            certs.issue_certificate(ca, ADMIN_USER, organizations=["system:masters"], client=True),
        )
        # Bound by the default ClusterRoleBinding system:kube-controller-manager.
        self._write_pair(
            pki / "controller-manager",
            certs.issue_certificate(ca, "system:kube-controller-manager", client=True),
        )
        # Front proxy (aggregation layer): its own CA, so only this client may assert X-Remote-* headers.
        front_ca = certs.generate_ca("game-analytics-test-front-proxy-ca")
        self._write_pair(pki / "front-proxy-ca", front_ca)
        self._write_pair(
            pki / "front-proxy-client", certs.issue_certificate(front_ca, "front-proxy-client", client=True)
        )
        private, public = certs.generate_signing_key()
        (pki / "sa.key").write_bytes(private)
        (pki / "sa.key").chmod(0o600)
        (pki / "sa.pub").write_bytes(public)

    @staticmethod
    def _write_pair(stem: Path, pair: certs.KeyPair) -> None:
        stem.with_suffix(".crt").write_bytes(pair.cert_pem)
        key = stem.with_suffix(".key")
        key.write_bytes(pair.key_pem)
        key.chmod(0o600)

    def _write_kubeconfigs(self) -> None:
        pki = self.pki_dir
        for path, user, stem in (
            (self.kubeconfig, ADMIN_USER, "admin"),
            (
                self.work_dir / "controller-manager.kubeconfig",
                "system:kube-controller-manager",
                "controller-manager",
            ),
        ):
            doc = kubeconfig_document(
                self.server,
                self.ca_file,
                user=user,
                client_cert=pki / f"{stem}.crt",
                client_key=pki / f"{stem}.key",
            )
            path.write_text(yaml.safe_dump(doc))
            path.chmod(0o600)

    def _spawn(self, name: str, argv: list[str]) -> _Process:
        log_path = self.logs_dir / f"{name}.log"
        fh = log_path.open("ab")
        self._log_files.append(fh)
        fh.write(("$ " + " ".join(argv) + "\n").encode())
        fh.flush()
        # Own session: a terminal's Ctrl-C reaches only us, and we stop the children in order.
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=self.work_dir,
            start_new_session=True,
        )
        proc = _Process(name, popen, log_path)
        self._procs.append(proc)
        return proc

    def _wait(self, proc: _Process, ready: Any, deadline: float, what: str) -> None:
        last_error = ""
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise ControlPlaneError(
                    f"{proc.name} exited with code {proc.popen.returncode}; last log lines "
                    f"({proc.log_path}):\n{proc.log_tail()}"
                )
            try:
                if ready():
                    return
            except OSError as exc:
                last_error = repr(exc)
            time.sleep(0.2)
        raise ControlPlaneError(
            f"{proc.name}: {what} not reached in time ({last_error}); last log lines ({proc.log_path}):\n{proc.log_tail()}"
        )

    def _start_etcd(self, data_dir: Path, deadline: float) -> None:
        client_port, peer_port = free_port(self.host), free_port(self.host)
        self.etcd_url = f"http://{self.host}:{client_port}"
        peer = f"http://{self.host}:{peer_port}"
        proc = self._spawn(
            "etcd",
            [
                str(self.binaries.etcd),
                "--name=default",
                f"--data-dir={data_dir}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=default={peer}",
                "--logger=zap",
                "--log-level=warn",
            ],
        )

        def healthy() -> bool:
            import urllib.request

            with urllib.request.urlopen(f"{self.etcd_url}/health", timeout=2) as resp:
                return bool(json.load(resp).get("health") == "true")

        self._wait(proc, healthy, deadline, "etcd /health")

    def _start_apiserver(self, deadline: float) -> None:
        pki = self.pki_dir
        self.apiserver_port = free_port(self.host)
        argv = [
            str(self.binaries.kube_apiserver),
            f"--etcd-servers={self.etcd_url}",
            f"--bind-address={self.host}",
            f"--advertise-address={self.host}",
            f"--secure-port={self.apiserver_port}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={self.ca_file}",
            "--authorization-mode=RBAC,Node",
            # PodSecurity is in the default admission chain since 1.25; add nothing, disable nothing.
            "--allow-privileged=true",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
            # The "kubernetes" Service's Endpoints may not point at loopback; nothing routes to it here anyway.
            "--endpoint-reconciler-type=none",
            f"--audit-policy-file={self.work_dir / 'audit' / 'audit-policy.yaml'}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            "--audit-log-mode=blocking",
            "--profiling=false",
            f"--cert-dir={pki}",
            *self._extra_apiserver_args,
        ]
        proc = self._spawn("kube-apiserver", argv)

        def ready() -> bool:
            status, body = self.get("/readyz")
            return status == 200 and body.strip() == "ok"

        self._wait(proc, ready, deadline, "/readyz ok")

    def _start_controller_manager(self, deadline: float) -> None:
        pki = self.pki_dir
        kubeconfig = self.work_dir / "controller-manager.kubeconfig"
        port = free_port(self.host)
        argv = [
            str(self.binaries.kube_controller_manager),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={self.host}",
            f"--secure-port={port}",
            f"--tls-cert-file={pki / 'controller-manager-serving.crt'}",
            f"--tls-private-key-file={pki / 'controller-manager-serving.key'}",
            f"--client-ca-file={self.ca_file}",
            f"--root-ca-file={self.ca_file}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--cluster-signing-cert-file={self.ca_file}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            "--use-service-account-credentials=true",
            # Default set: garbage collector, deployment/replicaset, namespace, serviceaccount(-token), ...
            "--controllers=*",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--leader-elect=false",
            "--profiling=false",
        ]
        proc = self._spawn("kube-controller-manager", argv)
        ctx = self.ssl_context(client_cert=False)

        def healthy() -> bool:
            import http.client

            conn = http.client.HTTPSConnection(self.host, port, context=ctx, timeout=2)
            try:
                conn.request("GET", "/healthz")
                resp = conn.getresponse()
                return resp.status == 200 and resp.read().strip() == b"ok"
            finally:
                conn.close()

        self._wait(proc, healthy, deadline, "controller-manager /healthz ok")


# --------------------------------------------------------------------------------------------
# Command line


def _down(work_dir: Path) -> int:
    if (work_dir / "node" / "state.json").exists():  # a node (up --node) goes first: its pods, then the node
        from devtools.node import cleanup

        for line in cleanup(work_dir / "node"):
            print(f"node: {line}", file=sys.stderr)
    pid_file = work_dir / "pids.json"
    if not pid_file.exists():
        print(f"no {pid_file}: nothing to stop", file=sys.stderr)
        return 0
    pids: dict[str, int] = json.loads(pid_file.read_text())["pids"]
    for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
        pid = pids.get(name)
        # Guard against a recycled PID: only signal a process that still runs that binary.
        if pid and _pid_alive(pid) and name in _cmdline(pid):
            print(f"stopping {name} (pid {pid})", file=sys.stderr)
            stop_pid(pid)
    pid_file.unlink()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``up [--dir DIR] [--detach] [--bin-dir DIR]`` / ``down --dir DIR``; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m devtools.cluster", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a control plane and print the KUBECONFIG export line")
    up.add_argument("--dir", type=Path, help="work directory (default: a temporary one, removed on exit)")
    up.add_argument("--detach", action="store_true", help="leave it running, write DIR/pids.json and exit")
    up.add_argument("--bin-dir", help="directory holding the binaries (default: see find_binaries)")
    up.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for readiness")
    up.add_argument("--node", action="store_true",
                    help="also run one real node (devtools.node: containerd, kubelet, scheduler, kube-proxy) "
                    "with the locally built images; the control plane then serves on the node's bridge IP")
    down = sub.add_parser("down", help="stop a detached control plane")
    down.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)

    if args.command == "down":
        return _down(args.dir)
    if args.detach and not args.dir:
        parser.error("--detach needs --dir")
    if args.dir and (args.dir / "pids.json").exists():
        parser.error(f"{args.dir / 'pids.json'} exists: run `down --dir {args.dir}` first")
    work_dir = args.dir.resolve() if args.dir else None
    node_cluster = None
    try:
        started = time.monotonic()
        if args.node:
            from devtools.node import NodeCluster

            node_cluster = NodeCluster(work_dir or Path(tempfile.mkdtemp(prefix="ga-node-cluster-")),
                                       binaries=find_binaries(args.bin_dir))
            node_cluster.start(timeout=args.timeout)
            assert node_cluster.control_plane is not None
            cp = node_cluster.control_plane
        else:
            cp = LocalControlPlane(work_dir, find_binaries(args.bin_dir))
            cp.start(timeout=args.timeout)
    except ControlPlaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"# control plane ready in {time.monotonic() - started:.1f}s at {cp.server}; logs in {cp.logs_dir}",
        file=sys.stderr,
    )
    if node_cluster is not None:
        phases = ", ".join(f"{k} {v:.1f}s" for k, v in node_cluster.timings.items())
        print(f"# node {node_cluster.node.name if node_cluster.node else ''} Ready ({phases})", file=sys.stderr)
    print(f"export KUBECONFIG={cp.kubeconfig}", flush=True)
    if args.detach:
        print(
            f"# detached; stop with: python -m devtools.cluster down --dir {cp.work_dir}",
            file=sys.stderr,
        )
        cp.detach()
        return 0
    stop = {"flag": False}

    def on_signal(signum: int, frame: object) -> None:
        stop["flag"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print("# running; Ctrl-C to stop", file=sys.stderr)
    try:
        while not stop["flag"]:
            dead = [p.name for p in cp._procs if p.popen.poll() is not None]
            if dead:
                print(f"error: {', '.join(dead)} exited; see {cp.logs_dir}", file=sys.stderr)
                return 1
            time.sleep(0.5)
    finally:
        if node_cluster is not None:
            node_cluster.stop()
            if work_dir is None:
                shutil.rmtree(node_cluster.work_dir, ignore_errors=True)
        else:
            cp.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
