"""The operator's audit trail on the in-memory API: Events always, the audit table (real PostgreSQL) with a DSN."""

from __future__ import annotations

import copy

from sqlalchemy import create_engine, pool, text

from game_analytics.audit import AuditLog
from game_analytics.controller import audit
from game_analytics.controller.audit import AuditWriter, outcome_records, reconcile_records, spec_record

from .fake_cluster import FakeCluster
from .test_reconcile import body, run


class EventCluster(FakeCluster):
    """A FakeCluster that keeps the Events it is asked to create in ``events``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.events: list[dict] = []

    def create(self, manifest):
        if manifest["kind"] == "Event":
            self.events.append(copy.deepcopy(manifest))
            return manifest
        return super().create(manifest)


def handle(cluster: EventCluster, writer: AuditWriter, rule: dict, cause: str, old=None, new=None):
    """What handlers.py does for one handled reconcile: reconcile, then audit the outcome."""
    outcome = run("AlertRule", rule, cluster)
    records = outcome_records("AlertRule", rule, outcome, cause, old, new)
    writer.write(cluster, rule, records)
    return records


def test_apply_change_and_delete_of_an_alert_rule_are_audited(db_dsn: str) -> None:
    cluster, writer = EventCluster(), AuditWriter(dsn=db_dsn)
    rule = body("alertrule-wealth-jump.yaml")
    ref = "AlertRule/games/whale-wealth-jump"

    created = handle(cluster, writer, rule, "create")
    assert [r.action for r in created] == ["operator.spec.create", "operator.children.apply"]
    assert created[0].before is None and created[0].after == rule["spec"]
    assert created[1].after == {"applied": ["AlertmanagerConfig/whale-wealth-jump",
                                            "ConfigMap/whale-wealth-jump-detector",
                                            "PrometheusRule/whale-wealth-jump"]}  # fmt: skip
    assert handle(cluster, writer, rule, None) == []  # an idle resync audits nothing

    old = copy.deepcopy(rule["spec"])
    rule["spec"]["severity"], rule["spec"]["channels"] = "warning", []  # also drops the AlertmanagerConfig
    rule["metadata"]["generation"] = 2
    changed = handle(cluster, writer, rule, "update", old, copy.deepcopy(rule["spec"]))
    assert [r.action for r in changed] == ["operator.spec.update", "operator.children.apply",
                                           "operator.children.prune"]  # fmt: skip
    assert changed[0].before == old and changed[0].after["severity"] == "warning"
    assert changed[0].summary == "spec changed: channels, severity"
    assert changed[2].after == {"pruned": ["AlertmanagerConfig/whale-wealth-jump"]}

    deleted = spec_record("AlertRule", rule, rule["spec"], None, "delete")
    writer.write(cluster, rule, [deleted])

    # Events: one per record, on the AlertRule, reason Audit
    assert [e["action"] for e in cluster.events] == [r.action for r in created + changed + [deleted]]
    assert {e["reason"] for e in cluster.events} == {"Audit"}
    assert cluster.events[0]["involvedObject"] == {"apiVersion": "gameanalytics.io/v1alpha1", "kind": "AlertRule",
                                                   "name": "whale-wealth-jump", "namespace": "games",
                                                   "uid": "uid-whale-wealth-jump"}  # fmt: skip
    assert cluster.events[3]["message"].startswith("operator.children.apply: applied ConfigMap/")
    assert all(len(e["message"]) <= audit.EVENT_MESSAGE_LIMIT for e in cluster.events)

    # the audit table: the same entries, chained
    engine = create_engine(db_dsn, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT actor, action, object_ref, source, before, after, context "
                                     "FROM audit_log ORDER BY seq")).all()  # fmt: skip
        assert [r.action for r in rows] == [e["action"] for e in cluster.events]
        assert {(r.actor, r.object_ref, r.source) for r in rows} == {(audit.OPERATOR_ACTOR, ref, "operator")}
        assert rows[2].before == old and rows[2].after["severity"] == "warning"
        assert rows[5].before["severity"] == "warning" and rows[5].after is None
        assert rows[2].context == {"kind": "AlertRule", "namespace": "games", "uid": "uid-whale-wealth-jump",
                                   "generation": 2, "cause": "update"}  # fmt: skip
        assert AuditLog(engine).verify().ok
    finally:
        engine.dispose()


def test_without_a_dsn_only_events_and_a_dead_database_does_not_fail() -> None:
    cluster, rule = EventCluster(), body("alertrule-wealth-jump.yaml")
    handle(cluster, AuditWriter(dsn=""), rule, "create")
    assert len(cluster.events) == 2
    dead = AuditWriter(dsn="postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
    dead.write(cluster, rule, [spec_record("AlertRule", rule, None, rule["spec"], "create")])  # logged, not raised
    assert len(cluster.events) == 3


def test_rolling_restart_steps_and_unaudited_kinds() -> None:
    failover = {"kind": "RedisFailover", "metadata": {"name": "lb", "namespace": "games", "uid": "u", "generation": 3}}
    steps = reconcile_records("RedisFailover", failover, [], [], "failover away from master lb-redis-0 before "
                              "restarting it")  # fmt: skip
    assert [(r.action, r.object_ref, r.after) for r in steps] == [
        ("operator.redis.failover", "RedisFailover/games/lb",
         {"step": "failover away from master lb-redis-0 before restarting it"})]  # fmt: skip
    (restart,) = reconcile_records("RedisFailover", failover, [], [], "restart Pod/lb-redis-1 to apply revision r2")
    assert restart.action == "operator.redis.restart"
    assert spec_record("RedisFailover", failover, {"a": 1}, {"a": 2}, "update") is None  # only the 3 kinds
    assert spec_record("AlertRule", failover, {"a": 1}, {"a": 1}, "update") is None  # nothing changed


def _redis_pod(index: int, revision: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": f"leaderboards-redis-{index}", "namespace": "games", "labels": {
            "gameanalytics.io/owner-kind": "RedisFailover", "gameanalytics.io/owner-name": "leaderboards",
            "app.kubernetes.io/component": "redis", "controller-revision-hash": revision}}}  # fmt: skip


def test_a_rolling_restart_step_and_the_sentinel_failover_are_audited(db_dsn: str, monkeypatch) -> None:
    """The real RedisFailover reconcile (healthy Sentinels, an outdated StatefulSet revision): its restart step and
    its controlled failover, through what handlers.py does with the outcome, reach the audit table."""
    from game_analytics.controller.redisfailover import sentinel

    from .test_reconcile import _healthy_view

    host = "leaderboards-redis-{}.leaderboards-redis-headless.games.svc:6379"
    monkeypatch.setattr(sentinel, "probe",
                        lambda *a, **k: _healthy_view(host.format(0), [host.format(1), host.format(2)]))
    failovers: list[tuple] = []
    monkeypatch.setattr(sentinel, "failover", lambda *a, **k: failovers.append(a))
    cluster, writer, failover = EventCluster(), AuditWriter(dsn=db_dsn), body("redisfailover.yaml")

    def reconcile(cause: str | None) -> list:
        outcome = run("RedisFailover", failover, cluster)
        records = outcome_records("RedisFailover", failover, outcome, cause)
        writer.write(cluster, failover, records)
        return records

    assert [r.action for r in reconcile("create")] == ["operator.children.apply"]  # RedisFailover: no spec audit
    sts = next(p for p in cluster.objects if p.endswith("/statefulsets/leaderboards-redis"))
    cluster.objects[sts]["status"] = {"updateRevision": "rev-2"}
    for index, revision in enumerate(["rev-1", "rev-1", "rev-2"]):
        cluster.add(_redis_pod(index, revision))
    restart = [r for r in reconcile(None) if r.action.startswith("operator.redis.")]
    assert [(r.action, r.after) for r in restart] == [
        ("operator.redis.restart", {"step": "restart Pod/leaderboards-redis-1 to apply revision rev-2"})]
    cluster.add(_redis_pod(1, "rev-2"))  # the StatefulSet recreated it at the new revision
    cluster.add(_redis_pod(2, "rev-2"))
    steps = [r for r in reconcile(None) if r.action.startswith("operator.redis.")]
    assert failovers and [r.action for r in steps] == ["operator.redis.failover"]
    assert steps[0].after["step"].startswith("failover away from master leaderboards-redis-0")

    engine = create_engine(db_dsn, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT actor, action, object_ref, source, after, context FROM audit_log "
                                     "WHERE action LIKE 'operator.redis.%' ORDER BY seq")).all()  # fmt: skip
        assert [(r.action, r.object_ref, r.source, r.actor) for r in rows] == [
            ("operator.redis.restart", "RedisFailover/games/leaderboards", "operator", audit.OPERATOR_ACTOR),
            ("operator.redis.failover", "RedisFailover/games/leaderboards", "operator", audit.OPERATOR_ACTOR)]
        assert rows[1].after == steps[0].after and rows[1].context["cause"] == "resync"
        assert AuditLog(engine).verify().ok
    finally:
        engine.dispose()
    assert [e["action"] for e in cluster.events if e["action"].startswith("operator.redis.")] == [
        "operator.redis.restart", "operator.redis.failover"]
