"""The Helm chart lints, renders, and grants exactly what the operator needs (checked against the code)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from devtools.podsecurity import pod_template, violations
from game_analytics.controller.k8s import PLURALS

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "game-analytics"
HELM = shutil.which("helm", path=f"{ROOT / '.cache' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")



@pytest.fixture(autouse=True, scope="module")
def _helm_installed():
    if HELM is None:
        pytest.fail("helm is not installed: run `make tools` (make test does)")


def template(*sets: str) -> list[dict]:
    args = [HELM, "template", "ga", str(CHART), "--namespace", "analytics"]
    for s in sets:
        args += ["--set", s]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def rules_of(docs, kind):
    return [r for d in docs if d["kind"] == kind for r in d["rules"]]


def allowed(rules, group, resource, verb):
    return any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules)


def test_lint():
    result = subprocess.run([HELM, "lint", "--strict", str(CHART)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_wildcards_and_operator_pod_is_restricted():
    docs = template()
    for rule in rules_of(docs, "ClusterRole"):
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], rule
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    assert violations(pod_template(deployment)) == []
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--standalone" in args and "--all-namespaces" in args


def test_rbac_covers_every_child_the_operator_writes():
    rules = rules_of(template(), "ClusterRole")
    for (api_version, kind), plural in PLURALS.items():
        group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
        if group == "gameanalytics.io":
            for verb in ("get", "list", "watch", "patch"):
                assert allowed(rules, group, plural, verb), (plural, verb)
            assert allowed(rules, group, f"{plural}/status", "patch")
        elif kind not in ("Secret", "Pod", "Event"):  # Events: created only (checked below)
            for verb in ("get", "list", "create", "patch", "delete"):
                assert allowed(rules, group, plural, verb), f"missing {verb} on {group}/{plural}"
    assert allowed(rules, "", "events", "create")
    assert not allowed(rules, "", "secrets", "list"), "the operator reads Secrets by name only"


@pytest.mark.parametrize("values", [None, "watchNamespaces={games}"])
def test_rbac_covers_what_the_operator_does_to_pods(values):
    """Pods are no child, but the operator lists them (status), labels the Redis master, and deletes one Redis pod
    at a time in a rolling restart (controller/redisfailover/plan.py)."""
    docs = template(values) if values else template()
    rules = [r for d in docs if d["kind"] in ("ClusterRole", "Role") for r in d["rules"]]
    for verb in ("get", "list", "patch", "delete"):
        assert allowed(rules, "", "pods", verb), f"missing {verb} on pods"


def test_two_replicas_use_peering():
    docs = template("replicaCount=2")
    assert any(d["kind"] == "ClusterKopfPeering" for d in docs)
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    assert "--peering=game-analytics" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]


def test_watch_namespaces_gives_roles_not_cluster_wide_access():
    docs = template("watchNamespaces={games,staging}")
    roles = [d for d in docs if d["kind"] == "Role"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["games", "staging"]
    assert not allowed(rules_of(docs, "ClusterRole"), "apps", "deployments", "create")


def test_values_schema_rejects_bad_values():
    result = subprocess.run([HELM, "template", "ga", str(CHART), "--set", "resyncSeconds=1"],
                            capture_output=True, text=True)
    assert result.returncode != 0 and "resyncSeconds" in result.stderr


def test_chart_crds_match_generated():
    names = sorted(p.name for p in (CHART / "crds").glob("*.gameanalytics.io.yaml"))
    assert names == sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))


def test_chart_works_as_a_dependency_and_with_name_overrides():
    docs = template("global.imageRegistry=registry.example", "fullnameOverride=ga-op", "nameOverride=analytics")
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    assert deployment["metadata"]["name"] == "ga-op"
    assert deployment["metadata"]["labels"]["app.kubernetes.io/name"] == "analytics"
    assert deployment["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == "analytics"


def test_service_monitor_renders_without_the_api_for_gitops():
    """`helm template` in a pipeline has no cluster: the ServiceMonitor must not silently disappear."""
    assert [d for d in template() if d["kind"] == "ServiceMonitor"]
    assert not [d for d in template("metrics.serviceMonitor.enabled=false") if d["kind"] == "ServiceMonitor"]


def test_pdb_only_with_more_than_one_replica():
    assert not [d for d in template() if d["kind"] == "PodDisruptionBudget"]
    (pdb,) = [d for d in template("replicaCount=3") if d["kind"] == "PodDisruptionBudget"]
    assert pdb["spec"]["maxUnavailable"] == 1


def test_security_contexts_and_scheduling_come_from_values():
    docs = template("priorityClassName=critical", "nodeSelector.pool=ops", "securityContext.runAsUser=20000")
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == "critical" and pod["nodeSelector"] == {"pool": "ops"}
    assert pod["containers"][0]["securityContext"]["runAsUser"] == 20000
    (default,) = [d for d in template() if d["kind"] == "Deployment"]
    assert violations(pod_template(default)) == []


def test_notes_say_how_to_upgrade_the_crds():
    """NOTES.txt is rendered by `helm lint` (test_lint) and by `helm install`; offline, check what it tells."""
    notes = (CHART / "templates" / "NOTES.txt").read_text()
    assert "kubectl apply --server-side -f" in notes and "never upgrades" in notes


def test_audit_dsn_secret_reaches_the_operator_and_events_may_be_created():
    """controller/audit.py writes audit Events always, and the audit table only with audit.dsnSecret."""
    def env(docs):
        (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
        return {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}

    assert "GAME_ANALYTICS_AUDIT_DSN" not in env(template())
    docs = template("audit.dsnSecret=audit-db")
    assert env(docs)["GAME_ANALYTICS_AUDIT_DSN"]["valueFrom"] == {"secretKeyRef": {"name": "audit-db", "key": "dsn"}}
    rules = [r for d in docs if d["kind"] in ("ClusterRole", "Role") for r in d["rules"]]
    assert allowed(rules, "", "events", "create")


def test_chart_assets_are_the_current_alert_rules_and_dashboards():
    """files/ holds copies of alert_rules/ and grafana_dashboards/ (`make chart-assets`); a stale copy fails here."""
    from devtools import chart_assets

    assert chart_assets.stale() == [], "run `make chart-assets`"


def test_stack_alerts_ship_as_prometheus_rules_selected_by_the_monitoring_labels():
    sources = {p.stem: yaml.safe_load(p.read_text()) for p in sorted((ROOT / "alert_rules").glob("*.yaml"))}
    rules = {d["metadata"]["name"]: d for d in template() if d["kind"] == "PrometheusRule"}
    assert set(rules) == {f"ga-game-analytics-{stem}" for stem in sources}
    for stem, source in sources.items():
        rule = rules[f"ga-game-analytics-{stem}"]
        assert rule["spec"] == source["spec"], stem  # the same groups, expressions and templates, unchanged
        assert rule["metadata"]["namespace"] == "analytics"
        assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert rule["metadata"]["labels"]["app.kubernetes.io/component"] == "alert-rules"
    relabelled = [d for d in template("monitoring.labels.release=monitoring") if d["kind"] == "PrometheusRule"]
    assert {d["metadata"]["labels"]["release"] for d in relabelled} == {"monitoring"}
    own = [d for d in template("alertRules.labels.prometheus=platform") if d["kind"] == "PrometheusRule"]
    assert all(d["metadata"]["labels"]["prometheus"] == "platform" and "release" not in d["metadata"]["labels"]
               for d in own)
    assert not [d for d in template("alertRules.enabled=false") if d["kind"] == "PrometheusRule"]


def test_dashboards_ship_as_sidecar_configmaps_and_optionally_grafana_dashboards():
    import json

    sources = {p.name: json.loads(p.read_text()) for p in sorted((ROOT / "grafana_dashboards").glob("*.json"))}
    maps = [d for d in template() if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard")]
    assert len(maps) == len(sources)
    for cm in maps:
        labels = cm["metadata"]["labels"]
        assert labels["grafana_dashboard"] == "1" and labels["release"] == "kube-prometheus-stack"
        ((key, text),) = cm["data"].items()
        assert json.loads(text) == sources[key.removeprefix("game-analytics-")]
    elsewhere = template("dashboards.namespace=grafana", "dashboards.sidecarLabels.grafana_dashboard=yes")
    assert {(d["metadata"]["namespace"], d["metadata"]["labels"]["grafana_dashboard"])
            for d in elsewhere if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard")} \
        == {("grafana", "yes")}
    assert not [d for d in template() if d["kind"] == "GrafanaDashboard"]
    crs = [d for d in template("dashboards.grafanaOperator.enabled=true") if d["kind"] == "GrafanaDashboard"]
    assert len(crs) == len(sources)
    assert all(d["spec"]["instanceSelector"] == {"matchLabels": {"dashboards": "grafana"}} for d in crs)
    assert sorted(json.loads(d["spec"]["json"])["title"] for d in crs) == sorted(s["title"] for s in sources.values())
    assert not [d for d in template("dashboards.enabled=false") if d["kind"] in ("ConfigMap", "GrafanaDashboard")]


def test_grafana_url_reaches_the_operator():
    def env(docs):
        (deploy,) = [d for d in docs if d["kind"] == "Deployment"]
        return {e["name"]: e.get("value") for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]}

    assert env(template())["GAME_ANALYTICS_GRAFANA_URL"] == ""
    assert env(template("monitoring.grafanaURL=https://grafana.example.com"))["GAME_ANALYTICS_GRAFANA_URL"] \
        == "https://grafana.example.com"
