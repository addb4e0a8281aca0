"""The security dashboard's SQL panels on the real schema, and the exporter's platform families (pg_stat_statements,
anomaly scores) against independent counts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from prometheus_client.core import Metric
from sqlalchemy import create_engine, pool, text

from game_analytics.interventions.detections import NewDetection, record_detections
from game_analytics.monitoring import dashboards, names, platform_dashboards, sql_dashboards
from game_analytics.workers.exporter_platform import platform_families
from game_analytics.workers.load import copy_events


def _login(player: str, success: bool | None, at: datetime) -> dict:
    payload = {} if success is None else {"success": success}
    return {"event_id": str(uuid.uuid4()), "event_type": "login", "player_id": player, "game": "g1",
            "occurred_at": at.isoformat(), "payload": payload}


def test_security_sql_panels_count_failed_logins_and_invalid_events(db_dsn: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    events = [_login("p1", False, now - timedelta(minutes=m)) for m in (1, 2, 3)]
    events += [_login("p2", False, now - timedelta(minutes=5)), _login("p2", True, now), _login("p3", None, now)]
    loaded = copy_events([*events, {"event_type": "login", "game": "g1"}], db_dsn)  # the last one is invalid
    assert loaded.inserted == 6 and loaded.dead_lettered == 1
    model = dashboards.DASHBOARDS["security"]()
    assert set(sql_dashboards.sql_queries(model)) == {platform_dashboards.INVALID_EVENTS_SQL,
                                                       platform_dashboards.FAILED_LOGINS_SQL,
                                                       platform_dashboards.FAILED_LOGINS_TOP_SQL}
    engine = create_engine(db_dsn, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            def run(sql: str) -> list:
                return conn.execute(text(sql_dashboards.expand_sql(sql, now - timedelta(hours=1),
                                                                   now + timedelta(minutes=1), 60))).all()
            series = run(platform_dashboards.FAILED_LOGINS_SQL)
            assert sum(r.value for r in series) == 4 and {r.metric for r in series} == {"g1"}
            top = run(platform_dashboards.FAILED_LOGINS_TOP_SQL)
            assert [(r.player_id, r.failed_logins) for r in top] == [("p1", 3), ("p2", 1)]
            invalid = run(platform_dashboards.INVALID_EVENTS_SQL)
            stored = conn.execute(text("SELECT count(*) FROM dead_letters")).scalar_one()
            assert sum(r.events for r in invalid) == stored == 1
    finally:
        engine.dispose()


def _samples(families: list[Metric], name: str) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families if f.name == name
            for s in f.samples}  # fmt: skip


def test_platform_families_from_pg_stat_statements_and_detections(db_dsn: str) -> None:
    engine = create_engine(db_dsn, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
            for subject, score in (("a", 0.62), ("b", 0.71), ("c", 0.93)):
                record_detections(conn, "games/anomaly", "player", "warning", 2,
                                  [NewDetection(subject, subject, score, {"subject": subject,
                                                                          "detector": "anomalyScore"})])
            record_detections(conn, "games/jump", "player", "critical", 1,
                              [NewDetection("d", "d", 25_000.0, {"subject": "d", "detector": "suddenWealthChange"})])
            for _ in range(3):
                conn.execute(text("SELECT count(*) FROM events"))
        with engine.connect() as conn:
            families = platform_families(conn, datetime.now(UTC))
            calls = conn.execute(text(
                "SELECT sum(calls) FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database "
                "WHERE datname = current_database()) AND ltrim(query) ILIKE 'select%'")).scalar_one()
    finally:
        engine.dispose()
    statements = _samples(families, names.DB_STATEMENTS.removesuffix("_total"))
    selects = statements[(names.DB_STATEMENTS, (("statement", "select"),))]
    assert selects >= 3 and selects <= float(calls) + 1  # the family's own query may be counted once more
    assert {dict(labels)["statement"] for _, labels in statements} <= {"select", "insert", "update", "delete",
                                                                        "copy", "other"}
    buckets = _samples(families, names.ANOMALY_SCORE)
    rule = (("rule", "games/anomaly"),)
    assert buckets[(f"{names.ANOMALY_SCORE}_bucket", (("le", "0.65"), *rule))] == 1
    assert buckets[(f"{names.ANOMALY_SCORE}_bucket", (("le", "0.75"), *rule))] == 2
    assert buckets[(f"{names.ANOMALY_SCORE}_bucket", (("le", "+Inf"), *rule))] == 3
    assert not any(dict(labels).get("rule") == "games/jump" for _, labels in buckets)
