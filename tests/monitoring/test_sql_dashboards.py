"""The SQL panels of the Interventions and Audit dashboards run on the real PostgreSQL schema, with data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, pool, text
from sqlalchemy.orm import Session

from game_analytics.controller.audit import AuditWriter, spec_record
from game_analytics.interventions import service
from game_analytics.interventions.detections import NewDetection, record_detections
from game_analytics.monitoring import dashboards, sql_dashboards

MODELS = {name: dashboards.DASHBOARDS[name]() for name in ("interventions", "audit")}


def test_every_sql_panel_is_listed_and_uses_the_postgres_data_source() -> None:
    queries = {name: sql_dashboards.sql_queries(model) for name, model in MODELS.items()}
    assert len(queries["interventions"]) == 5 and len(queries["audit"]) == 4
    for model in MODELS.values():
        variables = {v["name"]: v for v in model["templating"]["list"]}
        assert variables["pgdatasource"]["query"] == sql_dashboards.PG_TYPE
        for panel in model["panels"]:
            for target in panel.get("targets", []):
                if "rawSql" in target:
                    assert target["datasource"] == {"type": sql_dashboards.PG_TYPE, "uid": "${pgdatasource}"}
                    assert target["format"] in ("table", "time_series") and target["rawQuery"] is True


@pytest.mark.parametrize("priority", ["'1','2','3'", "'1'"])
def test_every_sql_panel_query_runs_on_the_schema(db_dsn: str, priority: str) -> None:
    engine = create_engine(db_dsn, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            for subject, prio in (("a", 1), ("b", 1), ("c", 2)):
                record_detections(conn, f"games/rule-{prio}", "player", "critical", prio,
                                  [NewDetection(subject, subject, 1.0, {"subject": subject})])  # fmt: skip
        with Session(engine) as session:
            assert service.acknowledge(session, 1, service.Actor("alice")).ok
        with Session(engine) as session:
            assert service.resolve(session, [1], "false-positive", "noise", service.Actor("alice"))[0].ok
        rule = {"kind": "AlertRule", "metadata": {"name": "r", "namespace": "games"}}
        AuditWriter(dsn=db_dsn).write(_NoEvents(), rule, [spec_record("AlertRule", rule, None, {"a": 1}, "create")])
        now = datetime.now(UTC)
        results: dict[str, list] = {}
        with engine.connect() as conn:
            for model in MODELS.values():
                for sql in sql_dashboards.sql_queries(model):
                    expanded = sql_dashboards.expand_sql(sql, now - timedelta(days=1), now + timedelta(minutes=1),
                                                         priority=priority)  # fmt: skip
                    assert "$" not in expanded, expanded
                    results[sql] = conn.execute(text(expanded)).all()
        top = results[sql_dashboards.TOP_RULES_SQL]
        assert [(r.rule, r.cases, r.false_positives) for r in top][0] == ("games/rule-1", 2, 1)
        assert len(top) == (2 if priority.count(",") else 1)
        assert {r.metric for r in results[sql_dashboards.BY_SOURCE_SQL]} == {"worker", "cli", "operator"}
        assert {r.actor for r in results[sql_dashboards.ACTIONS_SQL]} == {"detection-worker", "alice",
                                                                           "game-analytics-operator"}  # fmt: skip
        assert len(results[sql_dashboards.LATEST_SQL]) == 6  # 3 opened, ack, resolve, spec create
        queue = results[sql_dashboards.OPEN_QUEUE_SQL]
        assert sum(r.cases for r in queue) == (2 if priority.count(",") else 1)
        assert all(r.age == "< 1h" for r in queue)
        assert [r.resolution for r in results[sql_dashboards.RESOLUTIONS_SQL]] == ["false-positive"]
    finally:
        engine.dispose()


class _NoEvents:
    """A cluster that accepts Events and forgets them."""

    def request(self, *_args, **_kwargs):
        return None


def test_top_subjects_panel_lists_each_rules_open_cases_by_score(db_dsn: str) -> None:
    """The alerts dashboard's SQL panel: who the page's top cases are, at most 5 per rule by score, narrowed by
    the ``rule`` variable (Grafana's regex format of ``games/rule-a``) and the namespace."""
    engine = create_engine(db_dsn, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            for rule in ("games/rule-a", "games/rule-b", "other/rule-a"):
                record_detections(conn, rule, "player", "critical", 1,
                                  [NewDetection(f"p{i}", f"p{i}", float(i), {"subject": f"p{i}"})
                                   for i in range(7)])  # fmt: skip
        now = datetime.now(UTC)

        def rows(rule: str = ".*", namespace: str = ".*") -> list:
            sql = sql_dashboards.expand_sql(sql_dashboards.TOP_SUBJECTS_SQL, now - timedelta(days=1), now,
                                            rule=rule, namespace=namespace)  # fmt: skip
            assert "$" not in sql, sql
            with engine.connect() as conn:
                return conn.execute(text(sql)).all()

        every = rows()
        assert [(r.rule, r.rank) for r in every if r.rule == "games/rule-a"] == [("games/rule-a", k) for k in range(1, 6)]
        assert {r.rule for r in every} == {"games/rule-a", "games/rule-b", "other/rule-a"}
        one = rows(rule=r"games\/rule-a", namespace="games")
        assert [r.subject for r in one] == ["p6", "p5", "p4", "p3", "p2"]
        assert all(r.rule == "games/rule-a" and r.status == "open" and r.intervention for r in one)
        assert {r.rule for r in rows(namespace="games")} == {"games/rule-a", "games/rule-b"}
    finally:
        engine.dispose()
