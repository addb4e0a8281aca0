"""The reconcile core against an in-memory API: children, drift repair, idempotence, bad input, errors."""

import copy
from pathlib import Path

import pytest
import yaml

from game_analytics.api import KINDS_BY_NAME
from game_analytics.config import Images
from game_analytics.controller.common import conditions
from game_analytics.controller.k8s import drifted
from game_analytics.controller.reconcile import TransientError, reconcile

from .fake_cluster import FakeCluster, api_error

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
IMAGES = Images()


def body(example: str, name: str | None = None, generation: int = 1) -> dict:
    doc = yaml.safe_load((EXAMPLES / example).read_text())
    doc["metadata"].update(namespace="games", uid=f"uid-{doc['metadata']['name']}", generation=generation)
    if name:
        doc["metadata"]["name"] = name
    doc["status"] = {}
    return doc


def run(kind: str, obj: dict, cluster: FakeCluster, images: Images = IMAGES):
    """Reconcile and write the status back onto ``obj`` as the handler would."""
    outcome = reconcile(KINDS_BY_NAME[kind], obj, cluster, images)
    obj["status"].update(outcome.status_patch(obj["status"]))
    return outcome


def ready(obj: dict) -> dict:
    return conditions.get(obj["status"]["conditions"], "Ready")


def test_alert_rule_children_then_idle_resync_writes_nothing():
    cluster, rule = FakeCluster(), body("alertrule-wealth-jump.yaml")
    first = run("AlertRule", rule, cluster)
    assert sorted(first.applied.applied) == ["AlertmanagerConfig/whale-wealth-jump", "ConfigMap/whale-wealth-jump-detector",
                                             "PrometheusRule/whale-wealth-jump"]
    assert ready(rule)["status"] == "True" and ready(rule)["observedGeneration"] == 1
    assert rule["status"]["detector"] == "suddenWealthChange"
    writes = len(cluster.writes)
    second = run("AlertRule", rule, cluster)
    assert len(cluster.writes) == writes, "an idle resync must not write children"
    assert second.status_patch(rule["status"]) == {}, "an idle resync must not write status"
    assert second.events == []


def test_drift_is_repaired():
    cluster, rule = FakeCluster(), body("alertrule-wealth-jump.yaml")
    run("AlertRule", rule, cluster)
    prom_path = next(p for p in cluster.objects if "/prometheusrules/" in p)
    cluster.objects[prom_path]["spec"]["groups"][0]["rules"][0]["expr"] = "vector(1)"
    cm_path = next(p for p in cluster.objects if "/configmaps/" in p)
    del cluster.objects[cm_path]
    outcome = run("AlertRule", rule, cluster)
    assert sorted(outcome.applied.applied) == ["ConfigMap/whale-wealth-jump-detector", "PrometheusRule/whale-wealth-jump"]
    assert "vector(1)" not in str(cluster.objects[prom_path])


def test_removed_channels_prune_the_alertmanager_config():
    cluster, rule = FakeCluster(), body("alertrule-wealth-jump.yaml")
    run("AlertRule", rule, cluster)
    rule["spec"]["channels"] = []
    rule["metadata"]["generation"] = 2
    outcome = run("AlertRule", rule, cluster)
    assert outcome.applied.pruned == ["AlertmanagerConfig/whale-wealth-jump"]
    assert not any("/alertmanagerconfigs/" in p for p in cluster.objects)
    assert ready(rule)["observedGeneration"] == 2


def test_unparseable_promql_is_reported_and_creates_nothing():
    cluster, rule = FakeCluster(), body("alertrule-ingest-lag.yaml", name="broken")
    rule["spec"]["detector"] = {"promql": {"expr": "sum(rate(errors_total[5m])"}}
    outcome = run("AlertRule", rule, cluster)
    assert cluster.writes == []
    cond = ready(rule)
    assert (cond["status"], cond["reason"]) == ("False", "InvalidSpec")
    assert cond["message"].startswith("spec.detector.promql.expr: does not parse")
    assert outcome.events and outcome.events[0][0] == "Warning"
    again = run("AlertRule", rule, cluster)
    assert again.events == [] and again.status_patch(rule["status"]) == {}, "no event or status storm on resync"


def test_one_bad_rule_does_not_block_another():
    cluster = FakeCluster()
    bad = body("alertrule-ingest-lag.yaml", name="bad")
    bad["spec"]["detector"] = {"promql": {"expr": "((("}}
    good = body("alertrule-inflation.yaml")
    run("AlertRule", bad, cluster)
    run("AlertRule", good, cluster)
    assert ready(bad)["status"] == "False" and ready(good)["status"] == "True"


def test_schema_violation_names_the_field():
    cluster, report = FakeCluster(), body("scheduledreport.yaml")
    report["spec"]["formats"] = ["docx"]
    run("ScheduledReport", report, cluster)
    assert ready(report)["reason"] == "InvalidSpec" and ready(report)["message"].startswith("spec.formats.0")


def test_missing_data_source_waits_then_reconciles():
    cluster, report = FakeCluster(data_source=False), body("scheduledreport.yaml")
    run("ScheduledReport", report, cluster)
    assert ready(report)["reason"] == "DataSourceNotFound"
    assert "spec.dataSourceRef.name" in ready(report)["message"]
    cluster.add(body("gamedatasource.yaml"))
    run("ScheduledReport", report, cluster)
    assert ready(report)["status"] == "True"
    assert any(p.endswith("/cronjobs/weekly-studio-report-report") for p in cluster.objects)


def test_data_source_resolves_the_redis_failover():
    cluster, source = FakeCluster(), body("gamedatasource.yaml")
    run("GameDataSource", source, cluster)
    assert ready(source)["reason"] == "RedisFailoverNotFound"
    cluster.add(body("redisfailover.yaml"))
    run("GameDataSource", source, cluster)
    assert ready(source)["status"] == "True"
    config = next(o for p, o in cluster.objects.items() if p.endswith("/configmaps/default-workers"))
    assert config["data"]["GAME_ANALYTICS_REDIS_MASTER"] == "leaderboards"
    deployment = next(o for p, o in cluster.objects.items() if p.endswith("/deployments/default-ingest"))
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["GAME_ANALYTICS_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "leaderboards-redis"
    assert env["GAME_ANALYTICS_REDIS_SENTINEL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "leaderboards-sentinel"
    assert "PASSWORD" not in repr(config["data"])



def test_ranking_workers_get_the_redis_failover_password():
    """The rating CronJob's pods publish leaderboards through the same password-protected RedisFailover as the
    Deployments of the data source (they failed with NOAUTH when the password was missing)."""
    cluster, job = FakeCluster(), body("rankingjob.yaml")
    cluster.add(body("gamedatasource.yaml"))
    cluster.add(body("redisfailover.yaml"))
    run("RankingJob", job, cluster)
    assert ready(job)["status"] == "True", ready(job)
    cron = next(o for p, o in cluster.objects.items() if p.endswith("/cronjobs/bundesliga-glicko2-ranking"))
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["GAME_ANALYTICS_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "leaderboards-redis"
    assert env["GAME_ANALYTICS_REDIS_SENTINEL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "leaderboards-sentinel"


def test_batch_workers_wait_for_the_redis_failover():
    cluster, job = FakeCluster(), body("rankingjob.yaml")
    cluster.add(body("gamedatasource.yaml"))
    run("RankingJob", job, cluster)
    assert ready(job)["reason"] == "RedisFailoverNotFound"
    assert "redisFailoverRef" in ready(job)["message"]

def test_without_prometheus_operator_alert_rules_are_not_ready():
    cluster, rule = FakeCluster(served_groups=()), body("alertrule-inflation.yaml")
    run("AlertRule", rule, cluster)
    assert ready(rule)["reason"] == "MissingAPI"
    assert [k for k in cluster.created()] == ["/api/v1/namespaces/games/configmaps/currency-inflation-detector"]


@pytest.mark.parametrize("status,delay", [(500, 10.0), (409, 10.0), (403, 60.0)])
def test_transient_api_errors_are_retried_later(status, delay):
    cluster, rule = FakeCluster(), body("alertrule-inflation.yaml")
    cluster.fail_next = api_error(status)
    with pytest.raises(TransientError) as err:
        run("AlertRule", rule, cluster)
    assert err.value.delay == delay


def test_rejected_apply_is_reported_not_retried():
    cluster, rule = FakeCluster(), body("alertrule-inflation.yaml")
    cluster.fail_next = api_error(422, "spec.groups[0].rules[0].for: invalid")
    run("AlertRule", rule, cluster)
    assert ready(rule)["reason"] == "ApplyRejected" and "invalid" in ready(rule)["message"]


def test_condition_transition_time_is_kept_while_status_holds():
    first = conditions.merge([], [conditions.condition("Ready", True, "Reconciled", "ok", 1)])
    later = conditions.merge(copy.deepcopy(first), [conditions.condition("Ready", True, "Reconciled", "ok", 1)])
    assert later == first
    flipped = conditions.merge(first, [conditions.condition("Ready", False, "InvalidSpec", "bad", 2)])
    assert flipped[0]["status"] == "False" and flipped[0]["observedGeneration"] == 2


@pytest.mark.parametrize("desired,live,expected", [
    ({"a": 1}, {"a": 1, "b": 2}, False),
    ({"a": 1}, {"a": 2}, True),
    ({"a": [1, 2]}, {"a": [1]}, True),
    ({"a": {"b": "x"}}, {"a": {"b": "x", "c": "default"}}, False),
    ({"replicas": 1}, {"replicas": 1.0}, False),
    ({"suspend": False}, {"suspend": 0}, True),
    ({"a": None}, {}, False),
    ({"resources": {"requests": {"cpu": "0.5", "memory": "1G"}}},
     {"resources": {"requests": {"cpu": "500m", "memory": "1G"}}}, False),
    ({"resources": {"limits": {"memory": "1024Mi"}}}, {"resources": {"limits": {"memory": "1Gi"}}}, False),
    ({"resources": {"limits": {"memory": "1Gi"}}}, {"resources": {"limits": {"memory": "2Gi"}}}, True),
    ({"emptyDir": {"sizeLimit": "1000M"}}, {"emptyDir": {"sizeLimit": "1G"}}, False),
    ({"labels": {"tier": "0.5"}}, {"labels": {"tier": "500m"}}, True),  # only quantity fields are normalised
])
def test_drifted(desired, live, expected):
    assert drifted(desired, live) is expected


def test_redis_failover_reports_unreachable_sentinels_honestly():
    cluster, failover = FakeCluster(), body("redisfailover.yaml")
    failover["metadata"]["annotations"] = {"gameanalytics.io/probe-addresses": "127.0.0.1:1"}
    run("RedisFailover", failover, cluster, Images(probe_address_annotation=True))
    assert ready(failover)["status"] == "True"
    by_type = {c["type"]: c for c in failover["status"]["conditions"]}
    assert {"MasterElected", "SentinelQuorum", "ReplicasInSync", "SplitBrain"} <= set(by_type)
    assert by_type["MasterElected"]["status"] == "Unknown"
    assert by_type["MasterElected"]["reason"] == "SentinelsUnreachable"
    assert failover["status"]["sentinelsReachable"] == 0
    again = run("RedisFailover", failover, cluster, Images(probe_address_annotation=True))
    assert again.status_patch(failover["status"]) == {}, "a stable probe result must not rewrite status"


def test_mongo_cluster_bootstrap_progress_follows_its_job():
    from .mongoshardedcluster.recorded import bootstrap_pod

    cluster, mongo = FakeCluster(), body("mongoshardedcluster.yaml")
    run("MongoShardedCluster", mongo, cluster)
    assert (ready(mongo)["status"], ready(mongo)["reason"]) == ("False", "Bootstrapping")
    boot = conditions.get(mongo["status"]["conditions"], "Bootstrapped")
    assert (boot["status"], boot["reason"]) == ("Unknown", "BootstrapPending")
    assert "replicaSets" not in mongo["status"]  # nothing observed yet: nothing guessed
    job_path = next(p for p in cluster.objects if "/jobs/" in p)
    cluster.objects[job_path]["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    cluster.add(bootstrap_pod("telemetry", cluster.objects[job_path]["metadata"]["name"]))
    run("MongoShardedCluster", mongo, cluster)
    boot = conditions.get(mongo["status"]["conditions"], "Bootstrapped")
    assert (boot["status"], boot["reason"]) == ("True", "Complete")
    assert ready(mongo)["status"] == "True"
    assert [(rs["initialized"], rs["addedAsShard"]) for rs in mongo["status"]["replicaSets"]] == [
        (True, False), (True, True), (True, True)]


def _healthy_view(master: str, replicas: list[str]):
    from game_analytics.controller.redisfailover.sentinel import ReplicaState, SentinelReport, SentinelView

    reports = tuple(SentinelReport(f"s{i}:26379", master=master, master_flags=("master",), known_sentinels=3,
                                   quorum=2, ckquorum_ok=True, ckquorum="OK 3 usable Sentinels",
                                   replicas=tuple(ReplicaState(r, master=master) for r in replicas))
                    for i in range(3))
    return SentinelView("leaderboards", reports)


def test_redis_rolling_restart_replicas_first_then_failover(monkeypatch):
    from game_analytics.controller.redisfailover import sentinel

    host = "leaderboards-redis-{}.leaderboards-redis-headless.games.svc:6379"
    monkeypatch.setattr(sentinel, "probe",
                        lambda *a, **k: _healthy_view(host.format(0), [host.format(1), host.format(2)]))
    failovers = []
    monkeypatch.setattr(sentinel, "failover", lambda *a, **k: failovers.append(a))
    cluster, failover = FakeCluster(), body("redisfailover.yaml")
    run("RedisFailover", failover, cluster)  # creates the StatefulSet
    sts_path = next(p for p in cluster.objects if p.endswith("/statefulsets/leaderboards-redis"))
    cluster.objects[sts_path]["status"] = {"updateRevision": "rev-2"}
    for i, rev in enumerate(["rev-1", "rev-1", "rev-2"]):
        cluster.add({"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": f"leaderboards-redis-{i}", "namespace": "games", "labels": {
                "gameanalytics.io/owner-kind": "RedisFailover", "gameanalytics.io/owner-name": "leaderboards",
                "app.kubernetes.io/component": "redis", "controller-revision-hash": rev}}})
    outcome = run("RedisFailover", failover, cluster)
    assert "restart Pod/leaderboards-redis-1 to apply revision rev-2" in outcome.applied.applied
    assert not any(p.endswith("/pods/leaderboards-redis-1") for p in cluster.objects)
    assert failovers == [], "the master is left for last"
    cluster.objects[next(p for p in cluster.objects if p.endswith("/pods/leaderboards-redis-2"))]["metadata"][
        "labels"]["controller-revision-hash"] = "rev-2"
    outcome = run("RedisFailover", failover, cluster)  # only the master is outdated now
    assert failovers and outcome.applied.applied[-1].startswith("failover away from master leaderboards-redis-0")
    pod0 = cluster.objects[next(p for p in cluster.objects if p.endswith("/pods/leaderboards-redis-0"))]
    assert pod0["metadata"]["labels"]["gameanalytics.io/redis-role"] == "master"


def test_no_restart_while_unhealthy(monkeypatch):
    from game_analytics.controller.redisfailover import sentinel

    host = "leaderboards-redis-{}.leaderboards-redis-headless.games.svc:6379"
    view = _healthy_view(host.format(0), [host.format(1)])  # one replica short of spec.redis.replicas - 1
    monkeypatch.setattr(sentinel, "probe", lambda *a, **k: view)
    cluster, failover = FakeCluster(), body("redisfailover.yaml")
    run("RedisFailover", failover, cluster)
    sts_path = next(p for p in cluster.objects if p.endswith("/statefulsets/leaderboards-redis"))
    cluster.objects[sts_path]["status"] = {"updateRevision": "rev-2"}
    cluster.add({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "leaderboards-redis-1", "namespace": "games",
                 "labels": {"gameanalytics.io/owner-kind": "RedisFailover", "gameanalytics.io/owner-name": "leaderboards",
                            "app.kubernetes.io/component": "redis", "controller-revision-hash": "rev-1"}}})
    outcome = run("RedisFailover", failover, cluster)
    assert not any("restart" in a for a in outcome.applied.applied)
    assert any(p.endswith("/pods/leaderboards-redis-1") for p in cluster.objects)


def test_scheduled_report_status_follows_its_runs():
    cluster, report = FakeCluster(), body("scheduledreport.yaml")
    cluster.add(body("gamedatasource.yaml"))
    run("ScheduledReport", report, cluster)
    assert report["status"]["consecutiveFailures"] == 0 and "lastOutcome" not in report["status"]
    cron = next(o for p, o in cluster.objects.items() if p.endswith("/cronjobs/weekly-studio-report-report"))
    cron["status"] = {"lastScheduleTime": "2026-11-23T05:00:00Z", "lastSuccessfulTime": "2026-11-16T05:03:10Z"}
    labels = {"gameanalytics.io/owner-kind": "ScheduledReport", "gameanalytics.io/owner-name": "weekly-studio-report",
              "app.kubernetes.io/component": "report"}
    for created, outcome in [("2026-11-16T05:00:00Z", "Complete"), ("2026-11-23T05:00:00Z", "Failed"),
                             ("2026-11-23T06:00:00Z", "Failed")]:
        cluster.add({"apiVersion": "batch/v1", "kind": "Job", "metadata": {
            "name": f"run-{created[8:10]}-{created[11:13]}", "namespace": "games", "labels": labels,
            "creationTimestamp": created}, "status": {"conditions": [{"type": outcome, "status": "True"}]}})
    run("ScheduledReport", report, cluster)
    status = report["status"]
    assert (status["lastOutcome"], status["consecutiveFailures"]) == ("Failed", 2)
    assert status["lastScheduleTime"] == "2026-11-23T05:00:00Z"
    assert status["lastSuccessfulTime"] == "2026-11-16T05:03:10Z"


def test_the_operator_probes_with_the_sentinel_password_only(monkeypatch):
    """The probe and the controlled failover authenticate with spec.sentinel.authSecretRef's value; the Redis
    password is never handed to them (issue 15: the Redis password went to the Sentinels)."""
    from game_analytics.controller.redisfailover import sentinel

    seen = []
    host = "leaderboards-redis-{}.leaderboards-redis-headless.games.svc:6379"
    monkeypatch.setattr(sentinel, "probe", lambda addrs, master, password=None, timeout=2.0: seen.append(password)
                        or _healthy_view(host.format(0), [host.format(1), host.format(2)]))
    cluster, failover = FakeCluster(), body("redisfailover.yaml")
    run("RedisFailover", failover, cluster)
    assert ready(failover)["status"] == "True", ready(failover)
    assert seen == ["sentinel-hunter2"]
    failover["spec"]["sentinel"].pop("authSecretRef")
    run("RedisFailover", failover, cluster)
    assert seen[-1] is None  # no Sentinel password: unauthenticated, still not the Redis one
    failover["spec"]["sentinel"]["authSecretRef"] = {"name": "missing-sentinel", "key": "password"}
    run("RedisFailover", failover, cluster)
    assert ready(failover)["reason"] == "SecretNotFound"
    assert ready(failover)["message"].startswith("spec.sentinel.authSecretRef: ")
