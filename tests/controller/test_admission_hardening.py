"""Input that used to be accepted silently now ends Ready=False naming the user's field (issue 15, admission half).

Each test names the defect it covers. The schema/CEL side of the same defects is checked on the real API server in
tests/e2e/test_bad_input.py.
"""

from __future__ import annotations

import json

import pytest

from game_analytics.api.alertrule import AlertRuleSpec
from game_analytics.api.gamedatasource import GameDataSourceSpec
from game_analytics.api.scheduledreport import ScheduledReportSpec
from game_analytics.config import Images

from .fake_cluster import EXAMPLE_SECRETS, FakeCluster, secret
from .test_reconcile import body, ready, run


def test_a_missing_channel_secret_is_reported_then_ready_once_it_appears():
    """Defect: Secrets that do not exist were accepted silently (Ready=True)."""
    cluster, rule = FakeCluster(secrets=False), body("alertrule-inflation.yaml")
    run("AlertRule", rule, cluster)
    cond = ready(rule)
    assert (cond["status"], cond["reason"]) == ("False", "SecretNotFound")
    assert cond["message"] == ("spec.channels[0].discord.webhookURLSecretRef: Secret games/alerting-secrets "
                               "does not exist")
    assert not cluster.created(), "nothing is created while a Secret is missing"
    cluster.add(secret("alerting-secrets", {"other": "x"}))
    run("AlertRule", rule, cluster)
    assert ready(rule)["message"].endswith("has no key 'discord-webhook-url'")
    cluster.add(secret("alerting-secrets", EXAMPLE_SECRETS["alerting-secrets"]))
    run("AlertRule", rule, cluster)  # what the resync timer does every GAME_ANALYTICS_RESYNC_SECONDS
    assert (ready(rule)["status"], ready(rule)["reason"]) == ("True", "Reconciled")


@pytest.mark.parametrize("value", ["not a url", "ftp://files.example.com/x", "https://", "http://a b.example.com/"])
def test_a_webhook_secret_that_is_not_an_http_url_is_reported(value):
    """Defect: a webhook Secret whose value is not a URL was accepted silently."""
    cluster, rule = FakeCluster(), body("alertrule-anomaly.yaml")
    cluster.add(secret("alerting-secrets", {**EXAMPLE_SECRETS["alerting-secrets"], "pager-webhook-url": value}))
    run("AlertRule", rule, cluster)
    cond = ready(rule)
    assert (cond["status"], cond["reason"]) == ("False", "SecretValueInvalid")
    assert cond["message"].startswith("spec.channels[0].webhook.urlSecretRef: ")
    assert value not in cond["message"], "a Secret's value never appears in status"


def test_an_alert_rule_whose_data_source_does_not_exist_is_reported():
    """Defect: an AlertRule whose GameDataSource does not exist was Ready=True (RankingJob and ScheduledReport
    already checked this)."""
    cluster, rule = FakeCluster(data_source=False), body("alertrule-inflation.yaml")
    run("AlertRule", rule, cluster)
    assert ready(rule)["reason"] == "DataSourceNotFound"
    assert ready(rule)["message"].startswith("spec.dataSourceRef.name: ")


def test_two_alert_rules_with_the_same_alert_name_the_second_is_reported():
    """Defect: two AlertRules rendering the same Prometheus alert name (``x-1`` and ``x1`` are both ``X1``)."""
    cluster = FakeCluster()
    first, second = body("alertrule-inflation.yaml", name="spend-1"), body("alertrule-inflation.yaml", name="spend1")
    first["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    second["metadata"]["creationTimestamp"] = "2026-01-02T00:00:00Z"
    for obj in (first, second):
        cluster.add(obj)
    run("AlertRule", first, cluster)
    run("AlertRule", second, cluster)
    assert ready(first)["status"] == "True"
    cond = ready(second)
    assert (cond["status"], cond["reason"]) == ("False", "DuplicateAlertName")
    assert cond["message"].startswith("metadata.name: the alert name Spend1 is already used by AlertRule games/spend-1")


def test_a_missing_postgres_secret_is_reported_on_the_data_source():
    """Defect: Secrets that do not exist (GameDataSource's dsnSecretRef)."""
    cluster, source = FakeCluster(secrets=False), body("gamedatasource.yaml")
    cluster.add(body("redisfailover.yaml"))
    run("GameDataSource", source, cluster)
    assert (ready(source)["reason"], ready(source)["message"]) == (
        "SecretNotFound", "spec.postgres.dsnSecretRef: Secret games/analytics-postgres does not exist")


def test_a_missing_redis_auth_secret_is_reported_on_the_failover():
    """Defect: Secrets that do not exist (RedisFailover's authSecretRef)."""
    cluster, failover = FakeCluster(secrets=False), body("redisfailover.yaml")
    run("RedisFailover", failover, cluster)
    assert ready(failover)["reason"] == "SecretNotFound"
    assert ready(failover)["message"].startswith("spec.authSecretRef: ")


def test_report_delivery_secrets_and_allow_lists():
    """Defects: missing report Secrets; reports sent to any address or webhook host (no allow-list)."""
    cluster, report = FakeCluster(secrets=False), body("scheduledreport.yaml")
    run("ScheduledReport", report, cluster)
    assert ready(report)["message"].startswith("spec.delivery.webhook.urlSecretRef: Secret games/reporting-secrets")
    cluster.add(secret("reporting-secrets", EXAMPLE_SECRETS["reporting-secrets"]))
    run("ScheduledReport", report, cluster)
    assert ready(report)["status"] == "True"
    strict = Images(allowed_recipient_domains=("studio.example.org",))
    run("ScheduledReport", report, cluster, strict)
    cronjob = next(o for p, o in cluster.objects.items() if p.endswith("/cronjobs/weekly-studio-report-report"))
    assert cronjob["spec"]["suspend"] is True, "a report that may not be delivered stops running"
    assert (ready(report)["reason"], ready(report)["message"]) == (
        "RecipientNotAllowed", "spec.delivery.email.to[0]: domain example.com is not in the operator's allowed "
                               "recipient domains (studio.example.org)")
    hosts = Images(allowed_recipient_domains=("example.com",), allowed_webhook_hosts=("chat.example.org",))
    run("ScheduledReport", report, cluster, hosts)
    assert ready(report)["reason"] == "SecretValueInvalid"
    assert ready(report)["message"].startswith("spec.delivery.webhook.urlSecretRef: ")
    assert "hooks.slack.example.com, which is not in the operator's allowed webhook hosts" in ready(report)["message"]
    run("ScheduledReport", report, cluster, Images(allowed_webhook_hosts=("example.com",)))  # subdomains count
    assert ready(report)["status"] == "True"


@pytest.mark.parametrize("model,data,field", [
    (AlertRuleSpec, {"category": "system", "detector": {"ingestLag": {"maxLagSeconds": 5}},
                     "runbookURL": "https://r.example.com", "channels": [{"name": "mail", "email": {
                         "to": "oncall.example.com", "from": "a@example.com", "smarthost": "smtp:25"}}]},
     "channels.0.email.to"),
    (AlertRuleSpec, {"category": "system", "detector": {"ingestLag": {"maxLagSeconds": 5}},
                     "runbookURL": "https://r.example.com", "channels": [{"name": "mail", "email": {
                         "to": "oncall@example.com", "from": "alerts", "smarthost": "smtp:25"}}]},
     "channels.0.email.from"),
    (ScheduledReportSpec, {"reports": ["retention"], "schedule": "0 6 * * 1",
                           "delivery": {"email": {"to": ["leads"], "from": "r@example.com",
                                                  "smtp": {"host": "smtp"}}}}, "delivery.email.to.0"),
    (GameDataSourceSpec, {"games": ["cdnow,bundesliga"], "postgres": {"dsnSecretRef": {"name": "p", "key": "d"}},
                          "redis": {"urlSecretRef": {"name": "r", "key": "u"}}}, "games.0"),
    (ScheduledReportSpec, {"reports": ["retention"], "schedule": "0 6 * * 1", "filters": {"games": ["a,b"]}},
     "filters.games.0"),
])
def test_schema_patterns_refuse_addresses_without_at_and_games_with_commas(model, data, field):
    """Defects: e-mail addresses without ``@``; a game name with a comma (split into two games downstream)."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as err:
        model.model_validate(data)
    assert ".".join(str(p) for p in err.value.errors()[0]["loc"]) == field


def test_apply_sends_utf8_not_ascii_escapes():
    """Defect: an emoji in any text field failed every apply (``invalid Unicode character escape code``): the
    apply body was ASCII-escaped JSON sent as YAML. The e2e tier applies such text to the real API server."""
    import httpx2
    from lightkube import Client, KubeConfig

    from game_analytics.controller.k8s import FIELD_MANAGER, Cluster

    sent = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        return httpx2.Response(200, json=json.loads(request.content))

    config = KubeConfig.from_dict({
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}], "current-context": "c"})
    client = Client(config, transport=httpx2.MockTransport(answer))
    text = "🎮 לוח מובילים e\u0301"
    live = Cluster(client).apply({"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"name": "c", "namespace": "games", "annotations": {"note": text}}})
    (request,) = sent
    assert text.encode() in request.content and b"\\u" not in request.content
    assert request.headers["Content-Type"] == "application/apply-patch+yaml"
    assert (request.method, request.url.path) == ("PATCH", "/api/v1/namespaces/games/configmaps/c")
    assert dict(request.url.params) == {"fieldManager": FIELD_MANAGER, "force": "true"}
    assert live["metadata"]["annotations"]["note"] == text


def test_an_immutable_statefulset_refusal_names_the_spec_field():
    """Defect: resizing ``spec.redis.storage.size`` reported the StatefulSet's immutable spec. Admission refuses it
    (CEL, e2e); an object that got past an older CRD gets the spec field first in its Ready message."""
    from .fake_cluster import api_error

    class Refusing(FakeCluster):
        def apply(self, manifest):
            if manifest["kind"] == "StatefulSet":
                raise api_error(422, 'StatefulSet.apps "leaderboards-redis" is invalid: spec: Forbidden: updates to '
                                     "statefulset spec for fields other than 'replicas', ... are forbidden")
            return super().apply(manifest)

    cluster, failover = Refusing(), body("redisfailover.yaml")
    run("RedisFailover", failover, cluster, Images(probe_address_annotation=True))
    cond = ready(failover)
    assert (cond["status"], cond["reason"]) == ("False", "ApplyRejected")
    assert cond["message"].startswith("spec.redis.storage: cannot be changed after creation (StatefulSet/")
