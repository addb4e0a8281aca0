"""Egress of a GameDataSource's workers (issue 15, ``networkPolicy.workerEgress``), checked by evaluating the rendered
policy as the NetworkPolicy API defines egress: a connection is allowed when some rule's ports hold the
destination port and (no ``to``, or) some peer matches the destination.

Before: the workers' egress was unrestricted (any port, any address).
"""

from __future__ import annotations

import copy
import dataclasses
import ipaddress

import pytest

from game_analytics.config import Images, NetworkPolicySettings
from game_analytics.controller.common import netpol

from .fake_cluster import FakeCluster
from .test_fuzz_crs import no_sentinel_network  # noqa: F401 - a fixture
from .test_network_policies import NS, policies, reconciled
from .test_reconcile import body, run

EGRESS = NetworkPolicySettings(prometheus_namespaces=("monitoring",), operator_namespace="ga-system",
                               worker_egress=True)
PRODUCT = {"app.kubernetes.io/part-of": "game-analytics"}
#: a destination: (namespace or None for an address outside the cluster, pod labels, IP address)
REDIS_POD = (NS, PRODUCT, "10.244.0.7")
OTHER_POD = (NS, {"app": "debug-shell"}, "10.244.0.8")
OTHER_NS_POD = ("other", PRODUCT, "10.244.1.9")
OUTSIDE = (None, {}, "203.0.113.10")
API_SERVER = (None, {}, "10.0.0.1")


def _in_cidr(ip: str, cidr: str) -> bool:
    return ipaddress.ip_address(ip) in ipaddress.ip_network(cidr)


def allows(policy: dict, dest: tuple, port: int, protocol: str = "TCP") -> bool:
    """Whether ``policy`` lets a pod it selects (namespace ``NS``) connect to ``dest`` on ``port``."""
    if "Egress" not in policy["spec"]["policyTypes"]:
        return True
    ns, labels, ip = dest
    for rule in policy["spec"].get("egress") or []:
        if rule.get("ports") and (port, protocol) not in [(p["port"], p["protocol"]) for p in rule["ports"]]:
            continue
        if "to" not in rule:
            return True
        for peer in rule["to"]:
            if "ipBlock" in peer and _in_cidr(ip, peer["ipBlock"]["cidr"]):
                return True
            if "podSelector" in peer and ns is not None:
                ns_ok = ns == NS if "namespaceSelector" not in peer else True
                if ns_ok and all(labels.get(k) == v for k, v in peer["podSelector"].get("matchLabels", {}).items()):
                    return True
    return False


def _policy(settings: NetworkPolicySettings = EGRESS, **spec) -> dict:
    images = Images(network_policies=settings, alertmanager_urls=("http://alertmanager-operated.monitoring:9093",))
    cluster, obj = reconciled("GameDataSource", "gamedatasource.yaml", images)
    if spec:  # a variant of the example
        obj = copy.deepcopy(body("gamedatasource.yaml"))
        obj["spec"].update(spec)
        cluster = FakeCluster()
        cluster.add(body("redisfailover.yaml"))
        cluster.preexisting = set(cluster.objects)
        run("GameDataSource", obj, cluster, images)
    (policy,) = [p for p in policies(cluster) if p["metadata"]["name"] == "default-gamedatasource"]
    return policy


def test_workers_reach_dns_redis_postgres_alertmanager_and_the_api_server_only(no_sentinel_network):  # noqa: F811
    policy = _policy()
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert allows(policy, OUTSIDE, 53, "UDP") and allows(policy, OUTSIDE, 53, "TCP")
    for port in (6379, 26379):  # Redis and the Sentinels: the RedisFailover's pods in the namespace only
        assert allows(policy, REDIS_POD, port)
        assert not allows(policy, OTHER_POD, port)
        assert not allows(policy, OTHER_NS_POD, port)
        assert not allows(policy, OUTSIDE, port)
    assert allows(policy, OUTSIDE, 5432)  # PostgreSQL: its host is in a Secret's DSN
    assert allows(policy, OUTSIDE, 9093)  # the operator's default Alertmanager URL's port
    assert allows(policy, API_SERVER, 443) and allows(policy, API_SERVER, 6443)  # the detector ConfigMap list
    for port in (22, 80, 443 + 1, 3306, 8080, 25, 27017):
        assert not allows(policy, OUTSIDE, port), port


def test_the_api_server_rule_narrows_to_its_cidrs(no_sentinel_network):  # noqa: F811
    policy = _policy(dataclasses.replace(EGRESS, api_server_cidrs=("10.0.0.1/32",)))
    assert allows(policy, API_SERVER, 443)
    assert not allows(policy, OUTSIDE, 443) and not allows(policy, OUTSIDE, 6443)


def test_alertmanager_urls_of_the_spec_open_their_ports(no_sentinel_network):  # noqa: F811
    workers = {"detection": {"alertmanagerURLs": ["https://am.example.com", "http://am2.monitoring:19093"]}}
    policy = _policy(workers=workers)
    assert allows(policy, OUTSIDE, 443) and allows(policy, OUTSIDE, 19093)
    assert not allows(policy, OUTSIDE, 9093)  # the spec's URLs win over the operator's default


def test_redis_by_url_opens_its_port_anywhere(no_sentinel_network):  # noqa: F811
    policy = _policy(redis={"urlSecretRef": {"name": "analytics-postgres", "key": "dsn"}})
    assert allows(policy, OUTSIDE, 6379)
    assert not allows(policy, OUTSIDE, 26379)


@pytest.mark.parametrize("settings", [NetworkPolicySettings(), None])
def test_egress_stays_open_without_the_setting(settings, no_sentinel_network):  # noqa: F811
    images = Images(network_policies=settings)
    cluster, _ = reconciled("GameDataSource", "gamedatasource.yaml", images)
    for policy in policies(cluster):
        assert policy["spec"]["policyTypes"] == ["Ingress"] and "egress" not in policy["spec"]


@pytest.mark.parametrize(("kind", "example"), [("RedisFailover", "redisfailover.yaml"),
                                               ("ScheduledReport", "scheduledreport.yaml"),
                                               ("RankingJob", "rankingjob.yaml")])
def test_only_a_gamedatasources_pods_get_egress_rules(kind, example, no_sentinel_network):  # noqa: F811
    cluster, _ = reconciled(kind, example, Images(network_policies=EGRESS))
    for policy in policies(cluster):
        assert "Egress" not in policy["spec"]["policyTypes"]


def test_the_egress_rules_come_from_the_rendered_environment():
    env = {"GAME_ANALYTICS_REDIS_SENTINELS": "a-sentinel.games.svc:26379,b:26380", "GAME_ANALYTICS_DSN": ""}
    rules = netpol.worker_egress(env, EGRESS)
    assert rules[1] == {"to": [{"podSelector": {"matchLabels": PRODUCT}}],
                        "ports": [{"port": p, "protocol": "TCP"} for p in (6379, 26379, 26380)]}
    assert rules[2] == {"ports": [{"port": 5432, "protocol": "TCP"}]}
