"""Cluster services of the node tier (:mod:`devtools.node`): CoreDNS for Service names, and local volumes.

- **CoreDNS** (``hack/coredns``: CoreDNS built with the bind, errors, health, ready, cache, loadbalance and
  kubernetes plugins) runs as a host process of the node, serving ``cluster.local`` on the node IP, port 53; the
  kubelet's ``clusterDNS`` points there. It reads Services, EndpointSlices, Pods and Namespaces with its own client
  certificate (user :data:`COREDNS_USER`, bound to a ClusterRole of that name). Nothing outside the cluster is
  resolved: pods of the local node have nowhere else to go.
- **Volumes**: :class:`VolumeProvisioner` binds every Pending PersistentVolumeClaim without a storage class (or
  with class :data:`STORAGE_CLASS`) to a new hostPath PersistentVolume under the node's folder, the way a
  local-path provisioner would; the PVs are deleted on stop.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

__all__ = ["COREDNS_USER", "STORAGE_CLASS", "VolumeProvisioner", "corefile", "coredns_rbac"]

COREDNS_USER = "system:ga-node:coredns"
STORAGE_CLASS = "ga-node-local"


def corefile(node_ip: str, *, health_port: int, ready_port: int, kubeconfig: Path) -> str:
    """The Corefile: ``cluster.local`` and the reverse zones on ``node_ip:53`` from the kubernetes plugin."""
    return f"""cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {node_ip}
    errors
    health 127.0.0.1:{health_port}
    ready 127.0.0.1:{ready_port}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    cache 5
    loadbalance
}}
"""


def coredns_rbac() -> tuple[dict[str, Any], dict[str, Any]]:
    """ClusterRole and ClusterRoleBinding (user :data:`COREDNS_USER`) for what the kubernetes plugin reads."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": COREDNS_USER},
        "rules": [
            {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
             "verbs": ["list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": COREDNS_USER},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": COREDNS_USER},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": COREDNS_USER}],
    }
    return role, binding


def apply_rbac(api_client: Any) -> None:
    """Create (or keep) the CoreDNS ClusterRole and ClusterRoleBinding. Raises ``ApiException`` but on 409."""
    from kubernetes import client

    rbac = client.RbacAuthorizationV1Api(api_client)
    role, binding = coredns_rbac()
    for create, body in ((rbac.create_cluster_role, role), (rbac.create_cluster_role_binding, binding)):
        try:
            create(body)
        except client.ApiException as exc:
            if exc.status != 409:
                raise


class VolumeProvisioner:
    """Binds Pending PVCs (no storage class, or :data:`STORAGE_CLASS`) to hostPath PVs under ``base_dir``.

    A daemon thread lists PVCs every ``interval`` seconds with ``api_client`` (admin). Each PV is named
    ``ga-node-<namespace>-<claim>``, sized as the claim asks, pre-bound by ``claimRef``, reclaim policy Retain,
    its folder mode 0777 (pods run as non-root users). :meth:`stop` ends the thread and deletes the PVs it made.
    """

    def __init__(self, api_client: Any, base_dir: Path, *, node_name: str, interval: float = 1.0) -> None:
        self.api = api_client
        self.base_dir = base_dir
        self.node_name = node_name
        self.interval = interval
        self.created: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ga-node-volumes", daemon=True)

    def start(self) -> VolumeProvisioner:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(Exception):  # the apiserver stopping first is fine: the loop just ends
                self.provision_once()

    def provision_once(self) -> list[str]:
        """One pass: a PV for every Pending claim it serves; returns the names of the PVs created."""
        from kubernetes import client

        core = client.CoreV1Api(self.api)
        made = []
        for pvc in core.list_persistent_volume_claim_for_all_namespaces().items:
            cls = pvc.spec.storage_class_name
            if pvc.status.phase != "Pending" or pvc.spec.volume_name or cls not in (None, "", STORAGE_CLASS):
                continue
            ns, name = pvc.metadata.namespace, pvc.metadata.name
            pv_name = f"ga-node-{ns}-{name}"[:253]
            path = self.base_dir / ns / name
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o777)
            body = {
                "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv_name},
                "spec": {
                    "capacity": {"storage": pvc.spec.resources.requests["storage"]},
                    "accessModes": pvc.spec.access_modes,
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": cls or "",
                    "hostPath": {"path": str(path), "type": "Directory"},
                    "claimRef": {"namespace": ns, "name": name, "uid": pvc.metadata.uid},
                    "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "kubernetes.io/hostname", "operator": "In", "values": [self.node_name]}]}]}},
                },
            }
            try:
                core.create_persistent_volume(body)
            except client.ApiException as exc:
                if exc.status != 409:
                    raise
                continue
            self.created.append(pv_name)
            made.append(pv_name)
        return made

    def stop(self) -> None:
        """End the thread and delete the PVs it created (errors ignored: the cluster may be gone)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        from kubernetes import client

        core = client.CoreV1Api(self.api)
        for name in self.created:
            with contextlib.suppress(Exception):
                core.delete_persistent_volume(name)
        self.created.clear()
