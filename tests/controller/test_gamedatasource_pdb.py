"""GameDataSource: a PodDisruptionBudget per worker Deployment with more than one replica (owned, pruned), the
recommended app.kubernetes.io labels, and the pod settings (pull secrets, scheduling, priority, affinity)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from game_analytics.api.gamedatasource import GameDataSourceSpec
from game_analytics.controller.common.render import Owner
from game_analytics.controller.gamedatasource import plan, render

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gamedatasource.yaml"
OWNER = Owner("gameanalytics.io/v1alpha1", "GameDataSource", "default", "games", "uid-1")


def _children(**replicas: int) -> list[dict]:
    doc = yaml.safe_load(EXAMPLE.read_text())["spec"]
    for worker, count in replicas.items():
        doc.setdefault("workers", {}).setdefault(worker, {})["replicas"] = count
    return render.render(OWNER, GameDataSourceSpec.model_validate(doc), image="img:1", sentinel_master="m")


def test_a_pdb_selects_the_pods_of_each_deployment_with_more_than_one_replica() -> None:
    children = _children(ingest=3, exporter=1, detection=2)
    pdbs = {c["metadata"]["name"]: c for c in children if c["kind"] == "PodDisruptionBudget"}
    deployments = {c["metadata"]["name"]: c for c in children if c["kind"] == "Deployment"}
    assert set(pdbs) == {"default-ingest", "default-detection"}
    for name, pdb in pdbs.items():
        template = deployments[name]["spec"]["template"]["metadata"]["labels"]
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert selector == deployments[name]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= template.items() and pdb["spec"]["maxUnavailable"] == 1
        assert pdb["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


def test_one_replica_has_no_pdb_and_the_type_is_pruned() -> None:
    assert not [c for c in _children(ingest=1, exporter=1, detection=1) if c["kind"] == "PodDisruptionBudget"]
    assert ("policy/v1", "PodDisruptionBudget") in plan.CHILD_TYPES  # so that a scale-down to 1 deletes it


def test_recommended_labels() -> None:
    from game_analytics import __version__

    deployment = next(c for c in _children() if c["kind"] == "Deployment")
    labels = deployment["metadata"]["labels"]
    assert {k: v for k, v in labels.items() if k.startswith("app.kubernetes.io/")} == {
        "app.kubernetes.io/name": "game-analytics-ingest-worker", "app.kubernetes.io/instance": "default",
        "app.kubernetes.io/component": "ingest-worker", "app.kubernetes.io/part-of": "game-analytics",
        "app.kubernetes.io/managed-by": "game-analytics-operator", "app.kubernetes.io/version": __version__}
    # name and version never select pods: an upgrade must not orphan a Deployment's ReplicaSets
    assert not {"app.kubernetes.io/name", "app.kubernetes.io/version"} & set(deployment["spec"]["selector"]["matchLabels"])


def test_pod_settings_reach_every_worker_pod() -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())["spec"]
    doc["workers"] = {**doc.get("workers", {}), "imagePullSecrets": [{"name": "registry"}],
                      "nodeSelector": {"pool": "analytics"}, "priorityClassName": "analytics-high",
                      "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "analytics",
                                       "effect": "NoSchedule"}]}
    children = render.render(OWNER, GameDataSourceSpec.model_validate(doc), image="img:1", sentinel_master="m")
    pods = [c["spec"]["template"]["spec"] for c in children if c["kind"] == "Deployment"]
    assert len(pods) == 3
    for pod in pods:
        assert pod["imagePullSecrets"] == [{"name": "registry"}] and pod["nodeSelector"] == {"pool": "analytics"}
        assert pod["priorityClassName"] == "analytics-high"
        assert pod["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "analytics",
                                       "effect": "NoSchedule"}]
    plain = next(c for c in _children() if c["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert not {"imagePullSecrets", "nodeSelector", "tolerations", "priorityClassName"} & set(plain)
    assert "affinity" not in plain


def test_affinity_reaches_every_worker_pod_as_written_without_empty_lists() -> None:
    """The rendered affinity equals what the user wrote: the model's empty-list defaults (``values`` of an Exists
    requirement, the CRD defaults them too) are left out, since the API server drops empty lists and the Deployment
    would otherwise read back as drifted on every resync."""
    affinity = {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "pool", "operator": "Exists", "values": []}]}]}},
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": {
            "topologyKey": "kubernetes.io/hostname", "namespaces": [],
            "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "default"}, "matchExpressions": []}}}]},
    }
    doc = yaml.safe_load(EXAMPLE.read_text())["spec"]
    doc["workers"] = {**doc.get("workers", {}), "affinity": affinity}
    children = render.render(OWNER, GameDataSourceSpec.model_validate(doc), image="img:1", sentinel_master="m")
    pods = [c["spec"]["template"]["spec"] for c in children if c["kind"] == "Deployment"]
    assert len(pods) == 3
    for pod in pods:
        assert pod["affinity"] == {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "pool", "operator": "Exists"}]}]}},
            "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100,
                "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                    "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "default"}}}}]},
        }


def test_affinity_typos_bad_label_keys_and_weights_are_refused_naming_the_field() -> None:
    doc = yaml.safe_load(EXAMPLE.read_text())["spec"]
    for affinity, field in [({"nodeAffinty": {}}, "workers.affinity.nodeAffinty"),
                            ({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{}]}},
                             "workers.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution.0"
                             ".topologyKey"),
                            ({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                                {"topologyKey": "zone", "labelSelector": {"matchLabels": {"bad key": "x"}}}]}},
                             "workers.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution.0"
                             ".labelSelector.matchLabels"),
                            ({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                                {"weight": 0, "preference": {}}]}},
                             "workers.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution.0"
                             ".weight")]:
        doc["workers"] = {"affinity": affinity}
        with pytest.raises(ValidationError) as err:
            GameDataSourceSpec.model_validate(doc)
        assert ".".join(str(p) for p in err.value.errors()[0]["loc"]).startswith(field)  # a label key: the key too
