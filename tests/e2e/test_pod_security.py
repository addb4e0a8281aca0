"""Every workload the operator generates passes PodSecurity `restricted` on the real admission plugin."""

from __future__ import annotations

import json

import pytest

from devtools.waiting import wait_for

from .support import EXAMPLES, create_example_secrets, is_reconciled

pytestmark = pytest.mark.e2e

NS = "restricted-games"
WORKLOAD_EXAMPLES = ["gamedatasource.yaml", "redisfailover.yaml", "mongoshardedcluster.yaml", "rankingjob.yaml",
                     "scheduledreport.yaml"]


def test_generated_workloads_meet_restricted(operator, kubectl, control_plane):
    kubectl.run("create", "namespace", NS, check=False)
    create_example_secrets(kubectl, NS)
    kubectl.run("label", "namespace", NS, "--overwrite", *(f"pod-security.kubernetes.io/{mode}=restricted"
                                                          for mode in ("enforce", "warn", "audit")))
    for name in WORKLOAD_EXAMPLES:
        result = kubectl.run("apply", "-n", NS, "-f", str(EXAMPLES / name))
        assert "Warning" not in result.stderr, result.stderr
    for kind, name in [("gamedatasource", "default"), ("redisfailover", "leaderboards"),
                       ("mongoshardedcluster", "telemetry"), ("rankingjob", "bundesliga-glicko2"),
                       ("scheduledreport", "weekly-studio-report")]:
        wait_for(f"{kind}/{name} Ready", lambda: is_reconciled(kubectl.get(kind, name, NS)), timeout=90)

    # the controllers turned Deployments and StatefulSets into Pods, which PodSecurity admitted
    def pods_created():
        pods = kubectl.json("get", "pods", "-n", NS)["items"]
        owners = {p["metadata"]["ownerReferences"][0]["name"].rsplit("-", 1)[0] for p in pods}
        return {"default-ingest", "default-exporter", "default-detection", "leaderboards-redis",
                "leaderboards-sentinel", "telemetry-mongos"} <= owners | {
                    p["metadata"]["name"].rsplit("-", 1)[0] for p in pods} and pods
    wait_for("pods created", pods_created, timeout=60)
    events = kubectl.json("get", "events", "-n", NS)["items"]
    rejected = [e["message"] for e in events if "PodSecurity" in e.get("message", "")]
    assert rejected == [], rejected

    # no audit or warn annotation on any request in the namespace (workload templates included: CronJobs too)
    violations = [e for e in control_plane.audit_events()
                  if e.get("objectRef", {}).get("namespace") == NS
                  and any(k.startswith("pod-security.kubernetes.io/audit-violations")
                          for k in (e.get("annotations") or {}))]
    assert violations == [], json.dumps(violations[:3], indent=1)[:3000]

    # control: the same checks do catch a non-compliant workload
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "not-restricted", "namespace": NS},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "x"}},
                    "template": {"metadata": {"labels": {"app": "x"}},
                                 "spec": {"containers": [{"name": "x", "image": "busybox"}]}}}}
    result = kubectl.run("apply", "-f", "-", input=json.dumps(bad))
    assert "would violate PodSecurity" in result.stderr
    wait_for("audit annotation on the control", lambda: [
        e for e in control_plane.audit_events() if e.get("objectRef", {}).get("name") == "not-restricted"
        and "pod-security.kubernetes.io/audit-violations" in (e.get("annotations") or {})])
