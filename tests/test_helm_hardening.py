"""Chart side of issue 15: aggregated roles for the custom resources, the report allow-lists and the probe
annotation flag reach the operator, and they are what the operator reads."""

from __future__ import annotations

import pytest

from game_analytics.api import KINDS
from game_analytics.config import Images
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
