"""Labels of generated monitoring objects: the operator default (chart value ``monitoring.labels``, env
``GAME_ANALYTICS_MONITORING_LABELS``), merged with each resource's ``spec.monitoringLabels``."""

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from game_analytics.api import KINDS_BY_NAME
from game_analytics.config import DEFAULT_MONITORING_LABELS, Images, monitoring_labels_from_env
from game_analytics.controller.reconcile import reconcile

from .fake_cluster import FakeCluster

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
MONITORING_KINDS = {"PrometheusRule", "ServiceMonitor", "AlertmanagerConfig"}


def body(example: str, **spec_updates) -> dict:
    doc = yaml.safe_load((EXAMPLES / example).read_text())
    doc["metadata"].update(namespace="games", uid="uid-1", generation=1)
    doc["spec"].update(spec_updates)
    doc["status"] = {}
    return doc


def cluster_for(kind: str) -> FakeCluster:
    """An in-memory cluster holding what ``kind``'s example references (the GameDataSource's RedisFailover)."""
    cluster = FakeCluster()
    if kind == "GameDataSource":
        cluster.add(body("redisfailover.yaml"))
    return cluster


def monitoring_children(cluster: FakeCluster) -> list[dict]:
    return [o for o in cluster.objects.values() if o.get("kind") in MONITORING_KINDS]


def test_the_default_is_what_kube_prometheus_stack_selects():
    assert DEFAULT_MONITORING_LABELS == {"release": "kube-prometheus-stack"}
    assert monitoring_labels_from_env({}) == DEFAULT_MONITORING_LABELS
    assert Images().monitoring_labels == DEFAULT_MONITORING_LABELS


def test_the_env_sets_or_clears_the_default():
    assert monitoring_labels_from_env({"GAME_ANALYTICS_MONITORING_LABELS": '{"release": "monitoring"}'}) == {
        "release": "monitoring"}
    assert monitoring_labels_from_env({"GAME_ANALYTICS_MONITORING_LABELS": "{}"}) == {}
    for bad in ("[1]", '{"a": 1}', "not json"):
        with pytest.raises(ValueError, match="GAME_ANALYTICS_MONITORING_LABELS"):
            monitoring_labels_from_env({"GAME_ANALYTICS_MONITORING_LABELS": bad})


@pytest.mark.parametrize("kind,example", [
    ("AlertRule", "alertrule-wealth-jump.yaml"), ("GameDataSource", "gamedatasource.yaml"),
    ("RedisFailover", "redisfailover.yaml"),
])
def test_every_monitoring_child_carries_the_default(kind, example):
    cluster = cluster_for(kind)
    reconcile(KINDS_BY_NAME[kind], body(example), cluster, Images(monitoring_labels={"release": "kps"}))
    children = [c for c in monitoring_children(cluster) if c["metadata"]["labels"].get(
        "gameanalytics.io/owner-kind") == kind]
    assert children, f"{kind} rendered no monitoring objects"
    for child in children:
        assert child["metadata"]["labels"]["release"] == "kps", child["metadata"]


@pytest.mark.parametrize("kind,example", [("AlertRule", "alertrule-wealth-jump.yaml"),
                                          ("GameDataSource", "gamedatasource.yaml")])
def test_spec_monitoring_labels_win_over_the_default_but_not_over_ownership(kind, example):
    cluster = cluster_for(kind)
    own = {"release": "team-prom", "prometheus": "games", "app.kubernetes.io/managed-by": "someone-else"}
    reconcile(KINDS_BY_NAME[kind], body(example, monitoringLabels=own), cluster,
              Images(monitoring_labels={"release": "kps", "tier": "shared"}))
    children = [c for c in monitoring_children(cluster) if c["metadata"]["labels"].get(
        "gameanalytics.io/owner-kind") == kind]
    assert children
    for child in children:
        labels = child["metadata"]["labels"]
        assert labels["release"] == "team-prom" and labels["prometheus"] == "games" and labels["tier"] == "shared"
        assert labels["app.kubernetes.io/managed-by"] == "game-analytics-operator"


def test_the_chart_passes_monitoring_labels_to_the_operator():
    helm = ROOT / ".cache" / "bin" / "helm"
    if not helm.exists():
        pytest.fail("helm is not installed: run `make tools`")

    def env_of(*sets: str) -> dict:
        args = [str(helm), "template", "ga", str(ROOT / "charts" / "game-analytics")]
        for s in sets:
            args += ["--set", s]
        out = subprocess.run(args, check=True, capture_output=True, text=True, env=os.environ).stdout
        (dep,) = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "Deployment"]
        return {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}

    default = env_of()["GAME_ANALYTICS_MONITORING_LABELS"]
    assert monitoring_labels_from_env({"GAME_ANALYTICS_MONITORING_LABELS": default}) == DEFAULT_MONITORING_LABELS
    custom = env_of("monitoring.labels.release=prom")["GAME_ANALYTICS_MONITORING_LABELS"]
    assert monitoring_labels_from_env({"GAME_ANALYTICS_MONITORING_LABELS": custom}) == {"release": "prom"}


@pytest.mark.parametrize("kind,example", [("AlertRule", "alertrule-wealth-jump.yaml"),
                                          ("GameDataSource", "gamedatasource.yaml")])
@pytest.mark.parametrize("bad", [{"": ""}, {"": "x"}, {"release/": "x"}, {"a": "-x"}])
def test_an_empty_or_invalid_label_key_is_invalid_spec_naming_the_field_not_a_crash(kind, example, bad):
    """Regression (issue 15): the schema admits any string key, so ``monitoringLabels: {'': ''}`` reached the
    apply of every monitoring child, which the API server refused (``metadata.labels: Invalid value: ""``) on
    every retry; it is now Ready=False InvalidSpec naming spec.monitoringLabels, and nothing is applied."""
    cluster = cluster_for(kind)
    before = set(cluster.objects)
    outcome = reconcile(KINDS_BY_NAME[kind], body(example, monitoringLabels=bad), cluster, Images())
    ready = next(c for c in outcome.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "spec.monitoringLabels" in ready["message"]
    assert set(cluster.objects) == before, "nothing applied"


def test_an_empty_label_value_is_a_valid_label():
    cluster = cluster_for("AlertRule")
    outcome = reconcile(KINDS_BY_NAME["AlertRule"], body("alertrule-wealth-jump.yaml", monitoringLabels={"team": ""}),
                        cluster, Images())
    assert next(c for c in outcome.status["conditions"] if c["type"] == "Ready")["status"] == "True"
    assert all(c["metadata"]["labels"]["team"] == "" for c in monitoring_children(cluster))
