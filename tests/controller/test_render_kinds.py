"""Render functions of the operator-core kinds, tested without a cluster."""

import json
from pathlib import Path

import pytest
import yaml

from devtools.podsecurity import pod_template, violations
from game_analytics.api.alertrule import AlertRuleSpec
from game_analytics.api.gamedatasource import GameDataSourceSpec
from game_analytics.api.rankingjob import RankingJobSpec
from game_analytics.api.scheduledreport import ScheduledReportSpec
from game_analytics.controller.alertrule import render as alertrule
from game_analytics.controller.common.render import DataSource, Owner
from game_analytics.controller.gamedatasource import render as gamedatasource
from game_analytics.controller.rankingjob import render as rankingjob
from game_analytics.controller.scheduledreport import render as scheduledreport
from game_analytics.monitoring.promql import InvalidPromQL

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def owner(kind, name="demo"):
    return Owner("gameanalytics.io/v1alpha1", kind, name, "games", "uid-123", 4)


def example(name):
    return yaml.safe_load((EXAMPLES / name).read_text())["spec"]


DATA_SOURCE_SPEC = GameDataSourceSpec.model_validate(example("gamedatasource.yaml"))
DATA_SOURCE = DataSource("default", DATA_SOURCE_SPEC, sentinel_master="leaderboards")


def all_rendered():
    yield from alertrule.render(owner("AlertRule", "whale-wealth-jump"),
                                AlertRuleSpec.model_validate(example("alertrule-wealth-jump.yaml")))
    yield from gamedatasource.render(owner("GameDataSource", "default"), DATA_SOURCE_SPEC, image="img:1",
                                     sentinel_master="leaderboards")
    yield from scheduledreport.render(owner("ScheduledReport"),
                                      ScheduledReportSpec.model_validate(example("scheduledreport.yaml")),
                                      image="img:1", data_source=DATA_SOURCE)
    yield from rankingjob.render(owner("RankingJob"), RankingJobSpec.model_validate(example("rankingjob.yaml")),
                                 image="img:1", data_source=DATA_SOURCE)


@pytest.mark.parametrize("child", list(all_rendered()), ids=lambda c: f"{c['kind']}/{c['metadata']['name']}")
def test_every_child_is_owned_labelled_and_restricted(child):
    meta = child["metadata"]
    assert meta["namespace"] == "games"
    (ref,) = meta["ownerReferences"]
    assert ref["uid"] == "uid-123" and ref["controller"] is True
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "game-analytics-operator"
    assert len(meta["name"]) <= 63
    pod = pod_template(child)
    if pod is not None:
        assert violations(pod) == []


def test_alert_rule_children():
    spec = AlertRuleSpec.model_validate(example("alertrule-wealth-jump.yaml"))
    prom, detector, amc = alertrule.render(owner("AlertRule", "whale-wealth-jump"), spec)
    (rule,) = prom["spec"]["groups"][0]["rules"]
    assert rule["alert"] == "WhaleWealthJump"
    assert rule["labels"]["severity"] == "critical" and rule["labels"]["rule"] == "games/whale-wealth-jump"
    assert rule["annotations"]["runbook_url"] == spec.runbook_url
    assert 'rule="games/whale-wealth-jump"' in rule["expr"]
    config = json.loads(detector["data"]["rule.json"])
    assert config["detector"] == "suddenWealthChange" and config["params"]["thresholdRatio"] == 5
    assert detector["metadata"]["labels"]["gameanalytics.io/detector-config"] == "true"
    receivers = {r["name"]: r for r in amc["spec"]["receivers"]}
    assert receivers["oncall-pager"]["pagerdutyConfigs"][0]["routingKey"] == {
        "name": "alerting-secrets", "key": "pagerduty-routing-key"}
    assert [r["receiver"] for r in amc["spec"]["route"]["routes"]] == ["oncall-pager", "economy-slack", "ops-webhook"]
    assert all(r["continue"] for r in amc["spec"]["route"]["routes"])


def test_alert_rule_suspended_has_no_alert_and_no_channels_no_amc():
    spec = AlertRuleSpec.model_validate({**example("alertrule-wealth-jump.yaml"), "suspend": True, "channels": []})
    children = alertrule.render(owner("AlertRule"), spec)
    assert [c["kind"] for c in children] == ["PrometheusRule", "ConfigMap"]
    assert children[0]["spec"]["groups"][0]["rules"] == []
    assert json.loads(children[1]["data"]["rule.json"])["suspended"] is True


def test_bad_promql_renders_nothing():
    spec = AlertRuleSpec.model_validate({"category": "system", "detector": {"promql": {"expr": "rate(x[5m]"}},
                                         "runbookURL": "https://r.example.com"})
    with pytest.raises(InvalidPromQL):
        alertrule.render(owner("AlertRule"), spec)


def test_data_source_workers_share_one_config():
    children = gamedatasource.render(owner("GameDataSource", "default"), DATA_SOURCE_SPEC, image="img:1",
                                     sentinel_master="leaderboards")
    by_kind = {}
    for c in children:
        by_kind.setdefault(c["kind"], []).append(c)
    (config,) = by_kind["ConfigMap"]
    assert config["data"]["GAME_ANALYTICS_REDIS_SENTINELS"] == "leaderboards-sentinel.games.svc:26379"
    assert config["data"]["GAME_ANALYTICS_REDIS_MASTER"] == "leaderboards"
    assert config["data"]["GAME_ANALYTICS_RETENTION"] == "90d"  # spec.retention: the ingest worker drops partitions
    assert config["data"]["GAME_ANALYTICS_PARTITION_INTERVAL"] == "month"
    assert config["data"]["GAME_ANALYTICS_STREAM_SHARDS"] == "1"
    deployments = {d["metadata"]["name"]: d for d in by_kind["Deployment"]}
    assert set(deployments) == {"default-ingest", "default-exporter", "default-detection"}
    assert deployments["default-ingest"]["spec"]["replicas"] == 2
    for d in deployments.values():
        (c,) = d["spec"]["template"]["spec"]["containers"]
        assert c["envFrom"] == [{"configMapRef": {"name": "default-workers"}}]
        assert c["args"][0] == "worker"
    assert deployments["default-detection"]["spec"]["template"]["spec"]["serviceAccountName"] == "default-detection"

    (role,) = by_kind["Role"]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]


def test_cronjobs_follow_the_spec():
    spec = ScheduledReportSpec.model_validate(example("scheduledreport.yaml"))
    cm, cron = scheduledreport.render(owner("ScheduledReport"), spec, image="img:1", data_source=DATA_SOURCE)
    s = cron["spec"]
    assert (s["schedule"], s["timeZone"], s["concurrencyPolicy"]) == ("0 6 * * 1", "Europe/Berlin", "Forbid")
    assert (s["startingDeadlineSeconds"], s["successfulJobsHistoryLimit"], s["failedJobsHistoryLimit"]) == (600, 5, 5)
    env = {e["name"] for e in s["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert {"GAME_ANALYTICS_DSN", "GAME_ANALYTICS_REPORT_WEBHOOK_URL", "GAME_ANALYTICS_REPORT_SMTP_PASSWORD"} <= env
    assert json.loads(cm["data"]["report.json"])["reports"][0] == "playerActivity"

    ranking = RankingJobSpec.model_validate(example("rankingjob.yaml"))
    children = rankingjob.render(owner("RankingJob"), ranking, image="img:1", data_source=DATA_SOURCE)
    assert [c["metadata"]["name"] for c in children] == ["demo-ranking", "demo-ranking", "demo-season-reset"]
    doc = json.loads(children[0]["data"]["ranking.json"])
    assert doc["glicko2"]["tau"] == 0.5 and doc["algorithm"] == "glicko2"
    ranking.season_reset = None
    ranking.suspend = True
    children = rankingjob.render(owner("RankingJob"), ranking, image="img:1", data_source=DATA_SOURCE)
    assert len(children) == 2 and children[1]["spec"]["suspend"] is True


def test_elo_defaults_resolved_into_worker_config():
    spec = RankingJobSpec.model_validate({"source": {"game": "g"}, "algorithm": "elo"})
    doc = rankingjob.ranking_document(owner("RankingJob"), spec)
    assert doc["elo"] == {"kFactor": 20.0, "homeAdvantage": 0.0, "initialRating": 1500.0}


def test_every_worker_pod_migrates_the_schema_first():
    """Without it, ingest on an empty database crash-looped: nothing in the cluster ran the Alembic migrations."""
    children = gamedatasource.render(owner("GameDataSource", "default"), DATA_SOURCE_SPEC, image="img:1")
    for d in (c for c in children if c["kind"] == "Deployment"):
        (init,) = d["spec"]["template"]["spec"]["initContainers"]
        assert init["args"] == ["migrate"] and init["image"] == "img:1"
        assert [e["name"] for e in init["env"]] == ["GAME_ANALYTICS_DSN"]
        assert "livenessProbe" not in init and "readinessProbe" not in init
        assert init["securityContext"]["readOnlyRootFilesystem"] is True


def test_batch_pods_know_their_job_name_at_any_length():
    """Run keys (report delivery, season reset) come from the Job's name; the hostname truncates it past 48."""
    cm, cron = scheduledreport.render(owner("ScheduledReport", "r" * 50),
                                      ScheduledReportSpec.model_validate(example("scheduledreport.yaml")),
                                      image="img:1", data_source=DATA_SOURCE)
    env = {e["name"]: e for e in cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["GAME_ANALYTICS_JOB_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == \
        "metadata.labels['batch.kubernetes.io/job-name']"


def test_detection_workers_learn_the_alertmanagers_of_the_streaming_path():
    """The chart's default Alertmanagers (monitoring.alertmanagerURLs, passed in) reach the workers' ConfigMap;
    the GameDataSource's own spec.workers.detection.alertmanagerURLs win; none: the variable is absent (off)."""
    def env(spec, default=()):
        children = gamedatasource.render(owner("GameDataSource", "default"), spec, image="img:1",
                                         alertmanager_urls=default)
        (config,) = [c for c in children if c["kind"] == "ConfigMap"]
        return config["data"].get("GAME_ANALYTICS_ALERTMANAGER_URLS")

    assert env(DATA_SOURCE_SPEC) is None
    assert env(DATA_SOURCE_SPEC, ("http://am-0:9093", "http://am-1:9093")) == "http://am-0:9093,http://am-1:9093"
    own = example("gamedatasource.yaml")
    own.setdefault("workers", {}).setdefault("detection", {})["alertmanagerURLs"] = ["https://am.example.com"]
    assert env(GameDataSourceSpec.model_validate(own), ("http://am-0:9093",)) == "https://am.example.com"
    own["workers"]["detection"]["alertmanagerURLs"] = ["http://a,b"]  # a comma would split the list
    with pytest.raises(ValueError, match="alertmanagerURLs"):
        GameDataSourceSpec.model_validate(own)
