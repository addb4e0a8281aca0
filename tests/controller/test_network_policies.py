"""NetworkPolicies of the generated workloads (issue 15: "metrics ports open only to Prometheus's namespace, and
Redis only to the workers"), checked by evaluating each rendered policy as the NetworkPolicy API defines it.

Before: no NetworkPolicy at all, so any pod in the cluster could reach Redis, the Sentinels and MongoDB and scrape
every exporter.
"""

from __future__ import annotations

import copy

import pytest

from game_analytics.config import Images, NetworkPolicySettings
from game_analytics.controller.common.netpol import network_policies, pod_templates
from game_analytics.controller.common.render import Owner

from .fake_cluster import FakeCluster
from .test_fuzz_crs import no_sentinel_network  # noqa: F401 - a fixture
from .test_reconcile import body, run

SETTINGS = NetworkPolicySettings(prometheus_namespaces=("monitoring",), operator_namespace="ga-system")
ON = Images(network_policies=SETTINGS, probe_address_annotation=True)
NS = "games"
WORKER = (NS, {"app.kubernetes.io/part-of": "game-analytics", "app.kubernetes.io/component": "ingest-worker"})
STRANGER = (NS, {"app": "debug-shell"})
PROMETHEUS = ("monitoring", {"app.kubernetes.io/name": "prometheus"})
OPERATOR = ("ga-system", {"app.kubernetes.io/name": "game-analytics"})
ELSEWHERE = ("other", {"app.kubernetes.io/part-of": "game-analytics"})


def _matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def admits(policy: dict, source: tuple[str, dict], port: int, namespace: str = NS) -> bool:
    """Whether ``policy`` lets a pod (namespace, labels) reach ``port`` on a pod it selects (the NetworkPolicy
    semantics: a peer with only podSelector means the policy's namespace; both means both must match)."""
    src_ns, src_labels = source
    for rule in policy["spec"].get("ingress") or []:
        if rule.get("ports") and port not in [p["port"] for p in rule["ports"]]:
            continue
        for peer in rule.get("from") or []:
            ns_ok = (_matches(peer["namespaceSelector"], {"kubernetes.io/metadata.name": src_ns})
                     if "namespaceSelector" in peer else src_ns == namespace)
            if ns_ok and _matches(peer.get("podSelector") or {}, src_labels):
                return True
    return False


def reconciled(kind: str, example: str, images: Images = ON) -> tuple[FakeCluster, dict]:
    cluster, obj = FakeCluster(), body(example)
    cluster.add(body("redisfailover.yaml"))
    cluster.preexisting = set(cluster.objects)
    run(kind, obj, cluster, images)
    return cluster, obj


def policies(cluster: FakeCluster) -> list[dict]:
    return [o for o in cluster.created().values() if o["kind"] == "NetworkPolicy"]


def test_redis_only_to_the_workers_and_metrics_only_to_prometheus(no_sentinel_network):  # noqa: F811
    cluster, _ = reconciled("RedisFailover", "redisfailover.yaml")
    (policy,) = policies(cluster)
    assert policy["metadata"]["name"] == "leaderboards-redisfailover"
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["metadata"]["ownerReferences"][0]["kind"] == "RedisFailover"
    for port in (6379, 26379):
        assert admits(policy, WORKER, port)
        assert not admits(policy, STRANGER, port)
        assert not admits(policy, ELSEWHERE, port)
        assert not admits(policy, PROMETHEUS, port)
    assert admits(policy, OPERATOR, 26379)  # the operator probes the Sentinels
    assert admits(policy, PROMETHEUS, 9121)
    for source in (WORKER, STRANGER, ELSEWHERE, OPERATOR):
        assert not admits(policy, source, 9121), source


@pytest.mark.parametrize(("kind", "example", "client_ports", "metrics_ports"), [
    ("RedisFailover", "redisfailover.yaml", [6379, 26379], [9121]),
    ("MongoShardedCluster", "mongoshardedcluster.yaml", [27017], [9216]),
    ("GameDataSource", "gamedatasource.yaml", [], [9102]),
    ("RankingJob", "rankingjob.yaml", [], []),
    ("ScheduledReport", "scheduledreport.yaml", [], []),
])
def test_every_pod_of_an_object_is_selected_and_only_its_ports_open(kind, example, client_ports, metrics_ports,
                                                                   no_sentinel_network):  # noqa: F811
    cluster, obj = reconciled(kind, example)
    (policy,) = policies(cluster)
    owned = [c for c in cluster.created().values() if c["kind"] != "NetworkPolicy"
             and (c["metadata"].get("labels") or {}).get("gameanalytics.io/owner-name") == obj["metadata"]["name"]]
    templates = pod_templates(owned)
    assert templates
    for template in templates:
        assert _matches(policy["spec"]["podSelector"], template["metadata"]["labels"])
    opened = sorted({p["port"] for rule in policy["spec"].get("ingress", []) for p in rule["ports"]})
    assert opened == sorted(client_ports + metrics_ports)
    for port in client_ports:
        assert admits(policy, WORKER, port) and not admits(policy, STRANGER, port)
    for port in metrics_ports:
        assert admits(policy, PROMETHEUS, port) and not admits(policy, WORKER, port)
    if not opened:  # a default deny: these pods serve nothing. No `ingress: []`: the API server drops it, and the
        assert "ingress" not in policy["spec"]  # stored object would differ from the applied one on every resync
        assert policy["spec"]["policyTypes"] == ["Ingress"]


def test_no_pods_no_policy_and_turning_it_off_prunes_it(no_sentinel_network):  # noqa: F811
    cluster, _ = reconciled("AlertRule", "alertrule-wealth-jump.yaml")
    assert policies(cluster) == []
    cluster, obj = reconciled("GameDataSource", "gamedatasource.yaml")
    assert len(policies(cluster)) == 1
    run("GameDataSource", obj, cluster, Images())  # the operator restarted with networkPolicy.enabled=false
    assert policies(cluster) == []
    assert any(method == "delete" and url.endswith("/networkpolicies/default-gamedatasource")
               for method, url in cluster.writes), cluster.writes


def test_no_prometheus_namespace_means_any_namespace_may_scrape():
    cluster, _ = reconciled("GameDataSource", "gamedatasource.yaml",
                            Images(network_policies=NetworkPolicySettings(prometheus_namespaces=())))
    (policy,) = policies(cluster)
    assert admits(policy, ("anywhere", {}), 9102)


def test_a_pod_template_without_the_owner_labels_is_a_renderer_bug():
    owner = Owner("gameanalytics.io/v1alpha1", "GameDataSource", "x", NS, "uid-x", 1)
    deployment = {"kind": "Deployment", "spec": {"template": {"metadata": {"labels": {"app": "x"}},
                                                              "spec": {"containers": []}}}}
    with pytest.raises(ValueError, match="owner labels"):
        network_policies(owner, [copy.deepcopy(deployment)], SETTINGS)
    assert network_policies(owner, [deployment], None) == []


def test_settings_from_the_environment():
    assert NetworkPolicySettings.from_env({}) is None
    assert NetworkPolicySettings.from_env({"GAME_ANALYTICS_NETWORK_POLICIES": "false"}) is None
    on = NetworkPolicySettings.from_env({"GAME_ANALYTICS_NETWORK_POLICIES": "true",
                                         "GAME_ANALYTICS_PROMETHEUS_NAMESPACES": "monitoring, prom ,",
                                         "GAME_ANALYTICS_OPERATOR_NAMESPACE": "ga-system"})
    assert on == NetworkPolicySettings(("monitoring", "prom"), "ga-system")
