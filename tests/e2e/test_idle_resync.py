"""Server-side apply of a GameDataSource's children on the real kube-apiserver, with quantities the API server
rewrites (``"0.5"`` CPU is stored as ``500m``, ``1024Mi`` as ``1Gi``) and every worker pod setting.

The reconcile core (:func:`game_analytics.controller.reconcile.reconcile`) runs in the test process through
:class:`~game_analytics.controller.k8s.Cluster` (lightkube) with the admin kubeconfig, so that each reconcile is
a call the test controls; the API server's audit log counts the writes each one made. The operator process itself
is covered by tests/e2e/test_operator.py (its own idle-resync test on the examples).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import yaml

from devtools.cluster import ADMIN_USER
from game_analytics.api import KINDS_BY_NAME
from game_analytics.config import Images
from game_analytics.controller.k8s import FIELD_MANAGER, Cluster
from game_analytics.controller.reconcile import reconcile

from .support import OPERATOR_SA, RESYNC, ROOT, SYSTEM_NS, Kubectl

pytestmark = pytest.mark.e2e

SOURCE = "quantities"
#: Quantities as a user writes them, and as the API server stores them.
WRITTEN = {"requests": {"cpu": "0.5", "memory": "1G"}, "limits": {"cpu": "1.5", "memory": "1024Mi"}}
STORED = {"requests": {"cpu": "500m", "memory": "1G"}, "limits": {"cpu": "1500m", "memory": "1Gi"}}
AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "node-role.example.com/analytics", "operator": "Exists"}]}]},
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 50, "preference": {"matchExpressions": [
                {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["eu-1a", "eu-1b"]}]}}],
    },
    "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {
            "matchLabels": {"app.kubernetes.io/instance": SOURCE}}}}]},
}
POD_SETTINGS = {
    "imagePullSecrets": [{"name": "registry-pull"}],
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "analytics", "effect": "NoSchedule"}],
    "priorityClassName": "analytics-workers",
    "affinity": AFFINITY,
}


def source_manifest(namespace: str) -> dict:
    """A GameDataSource with quantity-bearing resources on every worker and every pod setting."""
    workers = {w: {"replicas": 2 if w == "ingest" else 1, "resources": WRITTEN}
               for w in ("ingest", "exporter", "detection")}
    return {"apiVersion": "gameanalytics.io/v1alpha1", "kind": "GameDataSource",
            "metadata": {"name": SOURCE, "namespace": namespace},
            "spec": {"postgres": {"dsnSecretRef": {"name": "db", "key": "dsn"}},
                     "redis": {"urlSecretRef": {"name": "redis", "key": "url"}},
                     "workers": {**POD_SETTINGS, **workers}}}


@pytest.fixture(scope="module")
def crds(control_plane) -> Kubectl:
    """The operator's CRDs, Established (the chart installs the same files; helm leaves existing CRDs alone)."""
    kubectl = Kubectl(control_plane.kubeconfig)
    kubectl.run("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kubectl.run("wait", "--for=condition=Established", "--timeout=60s", "crd/gamedatasources.gameanalytics.io")
    return kubectl


@pytest.fixture
def source(crds: Kubectl, namespace: str) -> Iterator[dict]:
    """The GameDataSource created on the API server (its Secrets too), as read back."""
    secrets = [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
                "stringData": {key: value}} for name, key, value in
               (("db", "dsn", "postgresql+psycopg://u:p@db:5432/analytics"), ("redis", "url", "redis://redis:6379/0"))]
    crds.run("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                    "items": [*secrets, source_manifest(namespace)]}))
    yield crds.get("gamedatasource", SOURCE, namespace)


def reconcile_once(cluster: Cluster, kubectl: Kubectl, namespace: str):
    """One reconcile of the live GameDataSource; returns the outcome."""
    body = kubectl.get("gamedatasource", SOURCE, namespace)
    return reconcile(KINDS_BY_NAME["GameDataSource"], body, cluster, Images())


#: Who may write the children: this test (the admin kubeconfig) and, when the session runs it (tests/e2e/support.py),
#: the operator process, which watches every namespace and so reconciles this GameDataSource too.
WRITERS = (ADMIN_USER, f"system:serviceaccount:{SYSTEM_NS}:{OPERATOR_SA}")


def writes(control_plane, namespace: str) -> list[str]:
    """``user verb resource/name`` of every completed write of a child in ``namespace`` so far, by :data:`WRITERS`
    (the GameDataSource itself is left out: the operator patches its status and Kopf's annotations)."""
    return [f"{e['user']['username']} {e['verb']} {e['objectRef'].get('resource')}/{e['objectRef'].get('name')}"
            for e in control_plane.audit_events() if e.get("user", {}).get("username") in WRITERS
            and e.get("objectRef", {}).get("namespace") == namespace
            and e["objectRef"].get("resource") not in ("gamedatasources", "events")
            and e["objectRef"].get("subresource") != "scale"]  # the test's own kubectl scale


def deployments(kubectl: Kubectl, namespace: str) -> dict[str, dict]:
    items = kubectl.json("get", "deployments", "-n", namespace, "--show-managed-fields")["items"]
    return {d["metadata"]["name"]: d for d in items}


def test_idle_resync_writes_nothing_for_quantity_bearing_specs(control_plane, crds: Kubectl, namespace: str,
                                                               source: dict):
    cluster = Cluster.from_kubeconfig(control_plane.kubeconfig)
    first = reconcile_once(cluster, crds, namespace)
    ready = next(c for c in first.status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", ready
    assert len(deployments(crds, namespace)) == 3  # applied by this reconcile, or by the operator just before
    served = "monitoring.coreos.com/v1" in crds.run("api-versions").stdout.split()
    assert first.applied.unavailable == ([] if served else ["monitoring.coreos.com/v1"])  # the probe is right
    time.sleep(2)  # let the controller-manager add its defaults and status (not writes by us)
    before = writes(control_plane, namespace)  # the audit log is written in blocking mode: complete on return

    idle = [reconcile_once(cluster, crds, namespace) for _ in range(3)]
    time.sleep(2 * RESYNC)  # and two resync periods of the operator, when it runs
    new = writes(control_plane, namespace)[len(before):]
    print(f"\nidle resync of a GameDataSource with cpu 0.5/1.5 and memory 1G/1024Mi: "
          f"{len(first.applied.applied)} children applied by the first reconcile, then writes per idle resync: "
          f"{[len(o.applied.applied) + len(o.applied.pruned) for o in idle]}; audit-log writes: {len(new)}")
    assert [o.applied.applied + o.applied.pruned for o in idle] == [[], [], []]
    assert new == [], new

    # the control: a real drift is seen and repaired (by this reconcile, or by the operator's resync just before)
    crds.run("scale", "deployment", "quantities-exporter", "-n", namespace, "--replicas=3")
    repaired = reconcile_once(cluster, crds, namespace)
    assert repaired.applied.applied in (["Deployment/quantities-exporter"], [])
    assert deployments(crds, namespace)["quantities-exporter"]["spec"]["replicas"] == 1
    repairs = writes(control_plane, namespace)[len(before):]
    assert repairs and all(w.endswith(" patch deployments/quantities-exporter") for w in repairs), repairs


def test_pod_settings_land_in_the_applied_deployments(control_plane, crds: Kubectl, namespace: str, source: dict):
    """Every GameDataSource pod setting is in each worker Deployment's pod template as the API server stored it,
    owned by the operator's field manager through server-side apply (this reconcile's, or the operator's when the
    session runs it: the same field manager)."""
    cluster = Cluster.from_kubeconfig(control_plane.kubeconfig)
    reconcile_once(cluster, crds, namespace)
    live = deployments(crds, namespace)
    assert sorted(live) == ["quantities-detection", "quantities-exporter", "quantities-ingest"]
    for name, deployment in live.items():
        pod = deployment["spec"]["template"]["spec"]
        assert {k: pod.get(k) for k in POD_SETTINGS} == POD_SETTINGS, name
        main = next(c for c in pod["containers"] if c["name"] == name.removeprefix(f"{SOURCE}-"))
        assert main["resources"] == STORED, name
        managers = {(m["manager"], m["operation"]) for m in deployment["metadata"]["managedFields"]}
        assert (FIELD_MANAGER, "Apply") in managers, managers
        owned = yaml.safe_dump(next(m["fieldsV1"] for m in deployment["metadata"]["managedFields"]
                                    if m["manager"] == FIELD_MANAGER))
        assert "f:affinity" in owned and "f:priorityClassName" in owned
    budgets = crds.json("get", "poddisruptionbudgets", "-n", namespace)["items"]  # workers with 2+ replicas
    assert [b["metadata"]["name"] for b in budgets] == ["quantities-ingest"]


def test_ill_formed_affinity_is_refused_at_apply_naming_the_field(crds: Kubectl, namespace: str):
    doc = source_manifest(namespace)
    doc["spec"]["workers"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In"}]}]}}}
    out = crds.run("apply", "-f", "-", input=json.dumps(doc), check=False)
    assert out.returncode != 0
    assert "spec.workers.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]" \
           ".matchExpressions[0].values" in out.stderr, out.stderr
    for affinity, refusal in [
            ({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}},
             "nodeSelectorTerms: Required value"),
            ({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.labels", "operator": "In", "values": ["x"]}]}]}}},
             "nodeSelectorTerms[0].matchFields: Invalid value"),
            ({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": "Bad Key"}]}},
             "requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey: Invalid value")]:
        doc["spec"]["workers"]["affinity"] = affinity
        out = crds.run("apply", "-f", "-", input=json.dumps(doc), check=False)
        assert out.returncode != 0 and refusal in out.stderr, out.stderr
