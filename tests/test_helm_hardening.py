"""Chart side of issue 15: aggregated roles for the custom resources, the report allow-lists and the probe
annotation flag reach the operator, and they are what the operator reads."""

from __future__ import annotations

import pytest

from game_analytics.api import KINDS
from game_analytics.config import Images, NetworkPolicySettings
from test_helm import allowed, rules_of, template


def _operator_env(docs) -> dict[str, str]:
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    return {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_aggregated_roles_let_namespace_editors_manage_and_viewers_read_the_kinds():
    """Defect: no aggregated edit/view ClusterRoles, so namespace admins could not manage these kinds."""
    docs = template()
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole"}
    edit = next(r for r in roles.values() if r["metadata"]["labels"].get("rbac.authorization.k8s.io/aggregate-to-edit"))
    view = next(r for r in roles.values() if r["metadata"]["labels"].get("rbac.authorization.k8s.io/aggregate-to-view"))
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    for info in KINDS:
        for verb in ("get", "list", "watch", "create", "update", "patch", "delete"):
            assert allowed(edit["rules"], "gameanalytics.io", info.plural, verb), (info.plural, verb)
        assert allowed(view["rules"], "gameanalytics.io", info.plural, "list")
        assert not allowed(view["rules"], "gameanalytics.io", info.plural, "patch")
    assert not [d for d in template("rbac.aggregateToDefaultRoles=false") if d["kind"] == "ClusterRole"
                and "aggregate-to-edit" in str(d["metadata"]["labels"])]


def test_operator_rights_are_what_the_code_needs():
    """Secrets are only read (existence and webhook URL checks), never listed or written."""
    rules = rules_of(template(), "ClusterRole")
    assert allowed(rules, "", "secrets", "get")
    for verb in ("list", "watch", "create", "patch", "delete"):
        assert not allowed(rules, "", "secrets", verb), verb
    # Events are only created (core/v1: the operator's and Kopf's), status is only patched (Kopf)
    rules = [r for d in template() if d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith("-cluster")
             for r in d["rules"]]  # the operator's own (not the aggregated edit/view roles)
    assert allowed(rules, "", "events", "create")
    assert not allowed(rules, "", "events", "patch") and not allowed(rules, "events.k8s.io", "events", "create")
    for info in KINDS:
        assert allowed(rules, "gameanalytics.io", f"{info.plural}/status", "patch")
        assert not allowed(rules, "gameanalytics.io", f"{info.plural}/status", "get")


def test_report_allow_lists_and_probe_flag_reach_the_operator(monkeypatch: pytest.MonkeyPatch):
    """Defect: reports went to any address or webhook host; the probe-addresses annotation was honoured always."""
    env = _operator_env(template("reports.allowedRecipientDomains={example.com,studio.example.org}",
                                 "reports.allowedWebhookHosts={hooks.slack.com}"))
    assert env["GAME_ANALYTICS_PROBE_ADDRESS_ANNOTATION"] == "false"
    for name, value in env.items():
        if name.startswith("GAME_ANALYTICS_") and value is not None:
            monkeypatch.setenv(name, value)
    images = Images.from_env()
    assert images.allowed_recipient_domains == ("example.com", "studio.example.org")
    assert images.allowed_webhook_hosts == ("hooks.slack.com",)
    assert images.probe_address_annotation is False
    assert Images().probe_address_annotation is False, "off by default"
    on = _operator_env(template("redisFailover.probeAddressAnnotation=true"))
    assert on["GAME_ANALYTICS_PROBE_ADDRESS_ANNOTATION"] == "true"


def _network_policies(docs) -> list[dict]:
    return [d for d in docs if d["kind"] == "NetworkPolicy"]


def test_operator_pod_network_policy_and_the_operator_renders_its_workloads_ones(monkeypatch: pytest.MonkeyPatch):
    """Defect: no NetworkPolicy anywhere; every pod could reach Redis and scrape every metrics port."""
    from game_analytics.config import NetworkPolicySettings

    docs = template("networkPolicy.prometheusNamespaces={monitoring,prom}")
    (policy,) = _network_policies(docs)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": 9090, "protocol": "TCP"}]
    assert [p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in rule["from"]] == [
        "monitoring", "prom"]
    env = _operator_env(docs)
    assert env["GAME_ANALYTICS_NETWORK_POLICIES"] == "true"
    for name, value in env.items():
        if name.startswith("GAME_ANALYTICS_") and value is not None:
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("GAME_ANALYTICS_OPERATOR_NAMESPACE", "analytics")  # the downward API's value
    assert Images.from_env().network_policies == NetworkPolicySettings(("monitoring", "prom"), "analytics",
                                                                       worker_egress=True)
    assert allowed(rules_of(docs, "ClusterRole"), "networking.k8s.io", "networkpolicies", "delete")


def test_network_policies_can_be_turned_off(monkeypatch: pytest.MonkeyPatch):
    docs = template("networkPolicy.enabled=false")
    assert _network_policies(docs) == []
    env = _operator_env(docs)
    assert env["GAME_ANALYTICS_NETWORK_POLICIES"] == "false"
    monkeypatch.setenv("GAME_ANALYTICS_NETWORK_POLICIES", env["GAME_ANALYTICS_NETWORK_POLICIES"])
    assert Images.from_env().network_policies is None


def test_operator_egress_only_to_dns_the_api_server_sentinels_and_prometheus():
    (policy,) = _network_policies(template("networkPolicy.egress.enabled=true",
                                           "networkPolicy.egress.apiServerCIDRs={10.96.0.1/32}",
                                           "networkPolicy.egress.extra[0].ports[0].port=5432"))
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    dns, api, sentinel, prometheus, extra = policy["spec"]["egress"]
    assert {p["port"] for p in dns["ports"]} == {53} and "to" not in dns
    assert api["to"] == [{"ipBlock": {"cidr": "10.96.0.1/32"}}] and [p["port"] for p in api["ports"]] == [443, 6443]
    assert sentinel["ports"] == [{"port": 26379, "protocol": "TCP"}]
    assert sentinel["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "sentinel"
    assert prometheus["to"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert extra == {"ports": [{"port": 5432}]}
    assert "egress" not in _network_policies(template())[0]["spec"], "egress is opt-in"


def test_a_prometheus_namespace_that_is_no_namespace_name_is_refused():
    import subprocess

    with pytest.raises(subprocess.CalledProcessError) as err:
        template("networkPolicy.prometheusNamespaces={Monitoring_NS}")
    assert "prometheusNamespaces" in err.value.stderr


@pytest.mark.parametrize(("sets", "expected"), [
    ((), NetworkPolicySettings(("monitoring",), "analytics", worker_egress=True)),
    (("networkPolicy.workerEgress.postgresPorts={5432,6432}",
      "networkPolicy.workerEgress.apiServerCIDRs={10.0.0.1/32}"),
     NetworkPolicySettings(("monitoring",), "analytics", True, ("10.0.0.1/32",), (5432, 6432))),
    (("networkPolicy.workerEgress.enabled=false",), NetworkPolicySettings(("monitoring",), "analytics")),
])
def test_worker_egress_values_reach_the_operator(sets, expected, monkeypatch: pytest.MonkeyPatch):
    for name, value in _operator_env(template(*sets)).items():
        if name.startswith("GAME_ANALYTICS_") and value is not None:
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("GAME_ANALYTICS_OPERATOR_NAMESPACE", "analytics")  # the downward API's value
    assert Images.from_env().network_policies == expected
