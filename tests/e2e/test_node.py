"""Node tier: pods really run. A control plane with one real node (devtools.node), the chart installed with helm,
and the operator running as a pod from the locally built image, as its ServiceAccount.

Where a node cannot start on a machine (no root, no cgroup write access, tools missing) these tests fail with the
reason: they never skip silently.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.node import BRIDGE, NodeCluster, node_available
from devtools.node_host import v1_hierarchies

from .support import EXAMPLES, OPERATOR_SA, RELEASE, ROOT, SYSTEM_NS, Kubectl, tool

pytestmark = pytest.mark.e2e

GAMES = "games"


@pytest.fixture(scope="module")
def node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeCluster]:
    """Control plane on the node IP plus the node, images built (cached) and imported; torn down afterwards, and
    then nothing of the node may be left on the machine."""
    ok, reason = node_available()
    if not ok:
        pytest.fail(f"the node tier cannot run on this machine: {reason}", pytrace=False)
    work = tmp_path_factory.mktemp("node-cluster")
    nc = NodeCluster(work)
    nc.start()
    try:
        yield nc
    finally:
        cgroup_root = nc.node.cgroup_root if nc.node else None
        nc.stop()
        _assert_nothing_left(work, cgroup_root)


def _assert_nothing_left(work: Path, cgroup_root: str | None) -> None:
    assert not Path(f"/sys/class/net/{BRIDGE}").exists(), "the bridge was left"
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    assert not [m for m in mounts if m.startswith(str(work))], "mounts were left under the node's folder"
    if cgroup_root:
        left = [h for h in v1_hierarchies(with_unified=True) if (h / cgroup_root.lstrip("/")).exists()]
        assert not left, f"node cgroups were left: {left}"
    assert "KUBE-" not in subprocess.run(["iptables-save"], capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def kubectl(node_cluster: NodeCluster) -> Kubectl:
    assert node_cluster.control_plane is not None
    return Kubectl(node_cluster.control_plane.kubeconfig)


def _wait_pod(kubectl: Kubectl, ns: str, selector: str, timeout: float = 180) -> dict:
    """The first pod matching ``selector`` once it is Running and Ready; fails with its state and events."""
    deadline = time.monotonic() + timeout
    pods: list[dict] = []
    while time.monotonic() < deadline:
        pods = kubectl.json("get", "pods", "-n", ns, "-l", selector)["items"]
        for pod in pods:
            ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
            if pod["status"].get("phase") == "Running" and ready:
                return pod
        time.sleep(1)
    events = kubectl.run("get", "events", "-n", ns, "--sort-by=.lastTimestamp", check=False).stdout
    raise AssertionError(f"no Running and Ready pod for {selector} in {ns} within {timeout}s:\n"
                         f"{json.dumps([p['status'] for p in pods], indent=1)[:3000]}\n{events[-3000:]}")


@pytest.fixture(scope="module")
def operator_pod(node_cluster: NodeCluster, kubectl: Kubectl) -> dict:
    """The chart installed by helm with the local image (pull policy Never); the operator pod once Ready."""
    cp = node_cluster.control_plane
    assert cp is not None
    kubectl.run("apply", "-f", str(ROOT / "hack" / "crds" / "prometheus-operator-crds.yaml"))
    helm = subprocess.run(
        [tool("helm"), "install", RELEASE, str(ROOT / "charts" / "game-analytics"), "--namespace", SYSTEM_NS,
         "--create-namespace", "--kubeconfig", str(cp.kubeconfig), "--set", "image.pullPolicy=Never"],
        capture_output=True, text=True, timeout=120)
    assert helm.returncode == 0, f"helm install failed:\n{helm.stderr}"
    return _wait_pod(kubectl, SYSTEM_NS, "app.kubernetes.io/name=game-analytics")


def test_operator_pod_runs_from_the_local_image_as_its_service_account(
    node_cluster: NodeCluster, kubectl: Kubectl, operator_pod: dict
) -> None:
    cp = node_cluster.control_plane
    assert cp is not None
    spec = operator_pod["spec"]
    assert spec["serviceAccountName"] == OPERATOR_SA
    assert spec["nodeName"] == node_cluster.node.name
    (container,) = spec["containers"]
    assert container["image"] == "ghcr.io/game-analytics/game-analytics:0.1.0"
    assert container["imagePullPolicy"] == "Never"
    assert operator_pod["status"]["podIP"].startswith("10.233.0.")
    # The in-cluster operator talks to the apiserver through the kubernetes Service (kube-proxy) as its
    # ServiceAccount: a custom resource it reconciles shows writes by that user in the audit log.
    kubectl.run("create", "namespace", GAMES, check=False)
    kubectl.run("apply", "-n", GAMES, "-f", str(EXAMPLES / "alertrule-ingest-lag.yaml"))
    user = f"system:serviceaccount:{SYSTEM_NS}:{OPERATOR_SA}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not cp.audit_events(user=user):
        time.sleep(1)
    writes = cp.audit_events(user=user)
    assert writes, f"no write by {user} within 60 s; operator log:\n" + kubectl.run(
        "logs", "-n", SYSTEM_NS, operator_pod["metadata"]["name"], check=False).stdout[-3000:]
    # kubectl logs reaches the kubelet on the node IP with the apiserver's kubelet client certificate.
    logs = kubectl.run("logs", "-n", SYSTEM_NS, operator_pod["metadata"]["name"]).stdout
    assert "Traceback" not in logs, logs[-3000:]
