"""One real node for the local control plane: containerd + runc + CNI bridge, kubelet, kube-scheduler, kube-proxy,
CoreDNS, and hostPath volumes for PVCs (:mod:`devtools.node_services`).

Pods really run here, from images built without a registry (:mod:`devtools.images`). What it takes on these
machines is in ``shared/NODE.md``; the rules for a shared machine are kept like this:

- **Network**: a bridge of the harness's own name (:data:`BRIDGE`) with the node IP, on which the apiserver, the
  kubelet and the pods live. Pods have routes only to their subnet and the Service range, nothing masquerades,
  and a FORWARD rule of the harness's own chain drops anything that would leave the bridge: no packet of a pod
  leaves the machine. Pod network namespaces are containerd's, mounted under the node's own state folder.
- **cgroups (v1)**: the kubelet's ``cgroupRoot`` is this process's memory cgroup plus a suffix, created in every
  v1 hierarchy (cpuset's cpus and mems copied down); every cgroup the node made is removed, depth first.
- **Kernel settings**: untouched. The kubelet's own tunables check runs in a private mount namespace
  (``hack/node/kubelet.sh``); ``net.ipv4.ip_forward`` (Service traffic between pods) is set only while the
  node runs and restored afterwards.
- **Processes**: started in their own sessions, recorded by PID in ``<dir>/state.json``; :func:`cleanup`
  (``down``) stops them and removes what a killed run left: processes in the node's cgroups, containerd shims
  of its socket, mounts under its folder, the bridge, the iptables rules, the cgroups.

Layout of ``<dir>`` (``<control plane dir>/node`` by default)::

    pki/  containerd/  cni/  kubelet/  logs/  state.json  *.kubeconfig  *.yaml

Usage::

    with NodeCluster(work_dir) as nc:          # control plane on the node IP + the node, images imported
        nc.control_plane.kubeconfig            # admin kubeconfig; pods get scheduled and run

Command line: ``python -m devtools.node check`` (is a node possible here, and why not) and
``python -m devtools.node down --dir DIR`` (clean up after a killed run).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from devtools import certs
from devtools import node_config as cfg
from devtools import node_services as svc
from devtools.cluster import (
    SERVICE_CLUSTER_IP_RANGE,
    Binaries,
    LocalControlPlane,
    find_binaries,
    kubeconfig_document,
    stop_pid,
)
from devtools.node_host import (
    NodeError,
    State,
    cleanup,
    http_ok,
    https_ok,
    iptables_chains,
    load_pair,
    memory_cgroup,
    node_available,
    node_binaries,
    run,
    v1_hierarchies,
    write_pair,
)
from devtools.waiting import free_port

__all__ = ["BRIDGE", "NODE_NAME", "NodeCluster", "NodeError", "LocalNode", "cleanup", "node_available"]

REPO_ROOT = Path(__file__).resolve().parent.parent
KUBELET_WRAPPER = REPO_ROOT / "hack" / "node" / "kubelet.sh"
NODE_NAME = "ga-node"
BRIDGE = "ga-node0"
POD_CIDR = "10.233.0.0/24"
FORWARD_CHAIN = "GA-NODE-FORWARD"


# --------------------------------------------------------------------------------------------
# The node


class LocalNode:
    """containerd, kubelet, kube-scheduler and (``kube_proxy``) kube-proxy for one control plane.

    Lifecycle: :meth:`prepare` (bridge, node CA; returns the apiserver flags the node needs) before the control
    plane starts on :attr:`node_ip`, then :meth:`start`, and :meth:`stop`. ``images``: ``{name: OCI tarball}``
    imported into containerd before the kubelet starts (:func:`devtools.images.build_images`).
    """

    def __init__(self, work_dir: Path, *, network: cfg.NodeNetwork | None = None, name: str = NODE_NAME,
                 bin_dir: str | os.PathLike[str] | None = None, kube_proxy: bool = True,
                 proxy_mode: str = "iptables", images: dict[str, Path] | None = None) -> None:
        self.dir = Path(work_dir).resolve()
        self.net = network or cfg.NodeNetwork(BRIDGE, POD_CIDR, SERVICE_CLUSTER_IP_RANGE)
        self.name = name
        self.binaries = node_binaries(bin_dir)
        self.with_proxy = kube_proxy
        self.proxy_mode = proxy_mode
        self.images = images or {}
        self.state = State(self.dir / "state.json") if self.dir.exists() else None
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        #: Seconds per start phase (containerd, image import, kubelet to node Ready, ...), filled by start().
        self.timings: dict[str, float] = {}
        suffix = hashlib.sha256(str(self.dir).encode()).hexdigest()[:8]
        self.cgroup_root = f"{memory_cgroup().rstrip('/')}/ga-node-{suffix}"

    @property
    def node_ip(self) -> str:
        """The node's address on the bridge; the control plane must serve on it (``LocalControlPlane(host=...)``)."""
        return self.net.node_ip

    @property
    def containerd_socket(self) -> Path:
        return self.dir / "containerd" / "containerd.sock"

    def _log(self, name: str) -> Path:
        return self.dir / "logs" / f"{name}.log"

    # -- before the control plane ---------------------------------------------------------
    def prepare(self) -> list[str]:
        """Create the folder, the bridge and the node CA; return the extra kube-apiserver flags.

        Raises :class:`NodeError` when the bridge exists already (another node, or a killed run: ``down``).
        """
        for sub in ("pki", "logs", "containerd", "cni/net.d", "cni/ipam", "kubelet", "tunables"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.state = State(self.dir / "state.json")
        if Path(f"/sys/class/net/{self.net.bridge}").exists():
            raise NodeError(f"interface {self.net.bridge} exists: a node is running or a killed run left it "
                            f"(python -m devtools.node down --dir DIR)")
        if self.state.get("iptables_before") is None:
            self.state.set("iptables_before", {b: sorted(iptables_chains(b)) for b in ("iptables", "ip6tables")})
        self.state.set("bridge", self.net.bridge)
        run(["ip", "link", "add", self.net.bridge, "type", "bridge"])
        run(["ip", "addr", "add", f"{self.node_ip}/{self.net.prefix_len}", "dev", self.net.bridge])
        run(["ip", "link", "set", self.net.bridge, "up"])
        # Service IPs route onto the bridge too: traffic from this machine to a Service that kube-proxy does not
        # (or no longer) translate stays on the bridge instead of following the default route off the machine.
        run(["ip", "route", "add", self.net.service_cidr, "dev", self.net.bridge])
        pki = self.dir / "pki"
        node_ca = certs.generate_ca("game-analytics-node-ca")
        write_pair(pki / "node-ca", node_ca)
        # The apiserver's client certificate towards the kubelet (logs, exec, port-forward): system:masters, so the
        # kubelet's webhook authorization (a SubjectAccessReview) allows it.
        write_pair(pki / "apiserver-kubelet-client", certs.issue_certificate(
            node_ca, "kube-apiserver-kubelet-client", organizations=["system:masters"], client=True))
        write_pair(pki / "kubelet-serving", certs.issue_certificate(
            node_ca, self.name, dns_names=[self.name], ip_addresses=[self.node_ip], server=True))
        return [
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            "--kubelet-preferred-address-types=InternalIP",
            "--endpoint-reconciler-type=lease",  # the kubernetes Service points at the node IP: pods reach it
        ]

    # -- start --------------------------------------------------------------------------------
    def start(self, cp: LocalControlPlane, timeout: float = 180.0) -> None:
        """Start containerd (and import :attr:`images`), the kubelet, kube-scheduler and kube-proxy against ``cp``;
        wait until the node is Ready. Raises :class:`NodeError` (after :meth:`stop`) on failure."""
        assert self.state is not None, "prepare() first"
        deadline = time.monotonic() + timeout
        try:
            self._write_credentials(cp)
            self._make_cgroups()
            self._timed("containerd", lambda: self._start_containerd(deadline))
            if self.images:
                from devtools.images import import_images

                self._timed("image import", lambda: import_images(self.images, self.containerd_socket,
                                                                  log=self._log("ctr-import")))
            self._timed("coredns", lambda: self._start_coredns(cp, deadline))
            self._timed("kubelet to node Ready", lambda: self._start_kubelet(cp, deadline))
            self._timed("kube-scheduler", lambda: self._start_scheduler(cp, deadline))
            if self.with_proxy:
                self._timed("kube-proxy", lambda: self._start_proxy(deadline))
        except BaseException:
            self.stop(cp)
            raise

    def _timed(self, what: str, step: Any) -> None:
        started = time.monotonic()
        step()
        self.timings[what] = round(time.monotonic() - started, 1)

    def _write_credentials(self, cp: LocalControlPlane) -> None:
        ca = load_pair(cp.pki_dir / "ca")
        for stem, user, orgs in (("kubelet", f"system:node:{self.name}", ["system:nodes"]),
                                 ("coredns", svc.COREDNS_USER, []),
                                 ("kube-proxy", "system:kube-proxy", []),
                                 ("kube-scheduler", "system:kube-scheduler", [])):
            write_pair(self.dir / "pki" / stem, certs.issue_certificate(ca, user, organizations=orgs, client=True))
            doc = kubeconfig_document(cp.server, cp.ca_file, user=user, client_cert=self.dir / "pki" / f"{stem}.crt",
                                      client_key=self.dir / "pki" / f"{stem}.key")
            path = self.dir / f"{stem}.kubeconfig"
            path.write_text(yaml.safe_dump(doc))
            path.chmod(0o600)

    def _make_cgroups(self) -> None:
        assert self.state is not None
        self.state.add("cgroups", self.cgroup_root)
        for h in v1_hierarchies():
            chain = [p for p in reversed(Path(self.cgroup_root).parents) if str(p) != "/"] + [Path(self.cgroup_root)]
            for rel in chain:
                d = h / str(rel).lstrip("/")
                if d.exists():
                    continue
                d.mkdir()
                if rel != Path(self.cgroup_root) and str(rel) not in self.state.get("cgroup_parents", []):
                    self.state.add("cgroup_parents", str(rel))
                if h.name == "cpuset":
                    for f in ("cpuset.cpus", "cpuset.mems"):
                        (d / f).write_text((d.parent / f).read_text())

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        assert self.state is not None
        log = self._log(name)
        with log.open("ab") as out:
            out.write(("$ " + " ".join(argv) + "\n").encode())
            out.flush()
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    cwd=self.dir, start_new_session=True)
        self._procs[name] = proc
        self.state.set("pids", {**self.state.get("pids", {}), name: proc.pid})
        return proc

    def _wait(self, name: str, ready: Any, deadline: float, what: str) -> None:
        proc = self._procs[name]
        last = ""
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise NodeError(f"{name} exited with code {proc.returncode}; {self._log(name)}:\n{self.log_tail(name)}")
            try:
                if ready():
                    return
            except Exception as exc:  # noqa: BLE001 - any failure of the probe means "not yet"
                last = repr(exc)
            time.sleep(0.3)
        raise NodeError(f"{name}: {what} not reached in time ({last}); {self._log(name)}:\n{self.log_tail(name)}")

    def log_tail(self, name: str, lines: int = 30) -> str:
        """The last ``lines`` lines of component ``name``'s log."""
        try:
            return "\n".join(self._log(name).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _start_containerd(self, deadline: float) -> None:
        assert self.state is not None
        from devtools.images import PAUSE_IMAGE

        base = self.dir / "containerd"
        conf_dir = self.dir / "cni" / "net.d"
        (conf_dir / "10-ga-node.conflist").write_text(json.dumps(cfg.cni_conflist(self.net, self.dir / "cni" / "ipam"),
                                                                 indent=2))
        (base / "config.toml").write_text(cfg.containerd_config(base, sandbox_image=PAUSE_IMAGE, cni_conf_dir=conf_dir,
                                                                runc=shutil.which("runc") or "/usr/sbin/runc"))
        self.state.set("containerd_socket", str(self.containerd_socket))
        self._spawn("containerd", ["containerd", "--config", str(base / "config.toml")])
        self._wait("containerd", lambda: run(["ctr", "--address", str(self.containerd_socket), "version"],
                                              check=False, quiet=True).returncode == 0, deadline, "ctr version")

    def _start_kubelet(self, cp: LocalControlPlane, deadline: float) -> None:
        root = self.dir / "kubelet"
        # A shared mount: the volumes the kubelet mounts in its own namespace (hack/node/kubelet.sh) show here.
        run(["mount", "--bind", str(root), str(root)])
        run(["mount", "--make-shared", str(root)])
        resolv = self.dir / "resolv.conf"
        resolv.write_text("# pods of the local node: no DNS server is reachable from the pod network\noptions ndots:1\n")
        port, healthz = free_port(self.node_ip), free_port()
        config = cfg.kubelet_config(node_ip=self.node_ip, port=port, healthz_port=healthz, cgroup_root=self.cgroup_root,
                                    client_ca=self.dir / "pki" / "node-ca.crt",
                                    tls_cert=self.dir / "pki" / "kubelet-serving.crt",
                                    tls_key=self.dir / "pki" / "kubelet-serving.key",
                                    runtime_socket=self.containerd_socket, resolv_conf=resolv,
                                    cluster_dns=[self.node_ip])
        (self.dir / "kubelet-config.yaml").write_text(yaml.safe_dump(config))
        argv = ["unshare", "--mount", "--propagation", "unchanged", "--", "bash", str(KUBELET_WRAPPER),
                str(self.dir / "tunables"), str(self.binaries["kubelet"]),
                f"--config={self.dir / 'kubelet-config.yaml'}", f"--kubeconfig={self.dir / 'kubelet.kubeconfig'}",
                f"--root-dir={root}", f"--cert-dir={self.dir / 'pki'}", f"--hostname-override={self.name}",
                f"--node-ip={self.node_ip}", "--v=1"]
        self._spawn("kubelet", argv)

        def ready() -> bool:
            from kubernetes import client

            with cp.api_client() as api:
                node = client.CoreV1Api(api).read_node(self.name)
            return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])

        self._wait("kubelet", ready, deadline, f"node {self.name} Ready")

    def _start_coredns(self, cp: LocalControlPlane, deadline: float) -> None:
        with cp.api_client() as api:
            svc.apply_rbac(api)
        health, ready = free_port(), free_port()
        conf = self.dir / "Corefile"
        conf.write_text(svc.corefile(self.node_ip, health_port=health, ready_port=ready,
                                     kubeconfig=self.dir / "coredns.kubeconfig"))
        self._spawn("coredns", [str(self.binaries["coredns"]), "-conf", str(conf)])
        self._wait("coredns", lambda: http_ok(f"http://127.0.0.1:{ready}/ready"), deadline, "/ready")

    def _start_scheduler(self, cp: LocalControlPlane, deadline: float) -> None:
        kubeconfig = self.dir / "kube-scheduler.kubeconfig"
        port = free_port()
        self._spawn("kube-scheduler", [
            str(self.binaries["kube-scheduler"]), f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1", f"--secure-port={port}", f"--cert-dir={self.dir / 'pki' / 'scheduler'}",
            "--leader-elect=false", "--profiling=false"])
        self._wait("kube-scheduler", lambda: https_ok(f"https://127.0.0.1:{port}/healthz"), deadline, "/healthz")

    def _start_proxy(self, deadline: float) -> None:
        assert self.state is not None
        forward = Path("/proc/sys/net/ipv4/ip_forward")
        if self.state.get("ip_forward") is None:
            self.state.set("ip_forward", int(forward.read_text()))
        # Guard first: nothing that enters from the bridge is forwarded anywhere but back onto it.
        self.state.set("forward_chain", FORWARD_CHAIN)
        run(["iptables", "-N", FORWARD_CHAIN], check=False, quiet=True)
        run(["iptables", "-F", FORWARD_CHAIN])
        run(["iptables", "-A", FORWARD_CHAIN, "-i", self.net.bridge, "!", "-o", self.net.bridge, "-j", "DROP"])
        run(["iptables", "-I", "FORWARD", "1", "-j", FORWARD_CHAIN])
        forward.write_text("1")
        healthz, metrics = free_port(), free_port()
        config = cfg.kube_proxy_config(kubeconfig=self.dir / "kube-proxy.kubeconfig", cluster_cidr=self.net.cidr,
                                       node_ip=self.node_ip, healthz_port=healthz, metrics_port=metrics,
                                       hostname=self.name, mode=self.proxy_mode)
        (self.dir / "kube-proxy.yaml").write_text(yaml.safe_dump(config))
        self.state.set("kube_proxy_cleanup", [str(self.binaries["kube-proxy"]), "--cleanup"])
        self._spawn("kube-proxy", [str(self.binaries["kube-proxy"]), f"--config={self.dir / 'kube-proxy.yaml'}",
                                   "--v=1"])
        self._wait("kube-proxy", lambda: http_ok(f"http://127.0.0.1:{healthz}/healthz"), deadline, "/healthz")

    # -- stop ---------------------------------------------------------------------------------
    def drain(self, cp: LocalControlPlane, timeout: float = 60.0) -> None:
        """Stop the scheduler, then delete every pod bound to this node and wait (up to ``timeout``) until the
        kubelet has stopped them all, so that CNI tears their networks down."""
        if "kube-scheduler" in self._procs:
            stop_pid(self._procs.pop("kube-scheduler").pid)
        from kubernetes import client

        with contextlib.suppress(Exception), cp.api_client() as api:
            core = client.CoreV1Api(api)
            pods = core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={self.name}").items
            for pod in pods:
                with contextlib.suppress(client.ApiException):
                    core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace, grace_period_seconds=1)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self._running_tasks():
                time.sleep(0.5)

    def _running_tasks(self) -> int:
        proc = run(["ctr", "--address", str(self.containerd_socket), "-n", "k8s.io", "tasks", "ls", "-q"],
                    check=False, quiet=True)
        return len(proc.stdout.split()) if proc.returncode == 0 else 0

    def stop(self, cp: LocalControlPlane | None = None) -> list[str]:
        """Drain (when ``cp`` is given and the kubelet runs), stop everything and clean up; return what was done."""
        if cp is not None and "kubelet" in self._procs and self._procs["kubelet"].poll() is None:
            self.drain(cp)
        for proc in self._procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.poll()
        self._procs.clear()
        return cleanup(self.dir) if self.dir.exists() else []


class NodeCluster:
    """A control plane serving on the node IP plus a :class:`LocalNode`, with the images imported.

    ``work_dir``: the control plane's folder (the node's is ``<work_dir>/node``). ``images``: ``{name: tarball}``;
    ``None`` builds (or finds cached) the default set with :func:`devtools.images.build_images`.
    Usable as a context manager; :meth:`start` raises :class:`NodeError` or ``ControlPlaneError``.
    """

    def __init__(self, work_dir: Path, *, binaries: Binaries | None = None, images: dict[str, Path] | None = None,
                 kube_proxy: bool = True, controller_manager: bool = True) -> None:
        self.work_dir = Path(work_dir)
        self._binaries = binaries
        self._images = images
        self._kube_proxy = kube_proxy
        self._kcm = controller_manager
        self.node: LocalNode | None = None
        self.control_plane: LocalControlPlane | None = None
        #: Binds Pending PVCs to hostPath PVs under ``<node dir>/volumes`` while the node runs.
        self.volumes: svc.VolumeProvisioner | None = None
        self._volumes_api: Any = None
        #: Seconds per start phase (images, control plane, then :attr:`LocalNode.timings`).
        self.timings: dict[str, float] = {}

    def __enter__(self) -> NodeCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 240.0) -> None:
        """Build or find images, prepare the node, start the control plane on the node IP, then the node."""
        ok, reason = node_available()
        if not ok:
            raise NodeError(f"no node on this machine: {reason}")
        started = time.monotonic()
        if self._images is None:
            from devtools.images import build_images

            self._images = build_images()
        self.timings = {"images (build or cache)": round(time.monotonic() - started, 1)}
        self.work_dir.mkdir(parents=True, exist_ok=True)
        cleanup(self.work_dir / "node")
        self.node = LocalNode(self.work_dir / "node", kube_proxy=self._kube_proxy, images=self._images)
        try:
            extra = self.node.prepare()
            self.control_plane = LocalControlPlane(self.work_dir, self._binaries or find_binaries(),
                                                   controller_manager=self._kcm, extra_apiserver_args=extra,
                                                   host=self.node.node_ip)
            started = time.monotonic()
            self.control_plane.start()
            self.timings["control plane"] = round(time.monotonic() - started, 1)
            # Recorded as the node's too: `python -m devtools.node down` stops them after a killed run.
            assert self.node.state is not None
            self.node.state.set("control_plane_pids", self.control_plane.pids)
            self.node.start(self.control_plane, timeout=timeout)
            self.timings.update(self.node.timings)
            self._volumes_api = self.control_plane.api_client()
            self.volumes = svc.VolumeProvisioner(self._volumes_api, self.node.dir / "volumes",
                                                 node_name=self.node.name).start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the node (draining its pods first), then the control plane."""
        if self.volumes is not None:
            self.volumes.stop()
            self.volumes = None
            self._volumes_api.close()
        if self.node is not None:
            if self.node.state is not None:
                self.node.state.set("control_plane_pids", {})  # stopped below, by their own object
            self.node.stop(self.control_plane)
        if self.control_plane is not None:
            self.control_plane.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """``check`` / ``down --dir DIR``; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m devtools.node", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="can a node start on this machine? (exit 1 with the reason if not)")
    down = sub.add_parser("down", help="clean up what a node in DIR left (processes, mounts, bridge, cgroups)")
    down.add_argument("--dir", type=Path, required=True, help="the node's folder (the one holding state.json)")
    args = parser.parse_args(argv)
    if args.command == "check":
        ok, reason = node_available()
        print("node: available" if ok else f"node: unavailable: {reason}")
        return 0 if ok else 1
    target = args.dir if (args.dir / "state.json").exists() else args.dir / "node"
    for line in cleanup(target):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
