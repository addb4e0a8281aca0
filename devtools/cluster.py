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

Binaries come from :func:`find_binaries` (``hack/envtest/build.sh`` builds them into ``.cache/bin``). The module is
split in three: this one (:class:`LocalControlPlane`), :mod:`devtools.cluster_base` (errors, binaries, kubeconfig
and audit policy builders, processes; re-exported here) and :mod:`devtools.cluster_cli` (the command line).

Command line (for ``make cluster``)::

    python -m devtools.cluster up [--dir DIR] [--detach] [--node]
    python -m devtools.cluster down --dir DIR

Example::

    with LocalControlPlane() as cp:
        api = kubernetes.client.CoreV1Api(cp.api_client())
        api.list_namespace()
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import yaml

from .cluster_base import (  # re-exported: callers import them from here
    ADMIN_USER,
    WRITE_VERBS,
    Binaries,
    BinariesNotFound,
    ControlPlaneError,
    _Process,
    audit_policy,
    build_binaries,
    find_binaries,
    kubeconfig_document,
    read_audit_events,
    stop_pid,
    write_pki,
)
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
    "main",
    "read_audit_events",
    "stop_pid",
]

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"  # bookkeeping only: no Service IP is ever routed


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
        write_pki(self.pki_dir, self.host)

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


def main(argv: Sequence[str] | None = None) -> int:
    """``up`` / ``down``: see :func:`devtools.cluster_cli.main`."""
    from .cluster_cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
