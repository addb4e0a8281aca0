"""The Interventions and Audit dashboards: the exporter's queue metrics (Prometheus) plus tables and time series
read straight from PostgreSQL through Grafana's PostgreSQL data source (``grafana-postgresql-datasource``).

The SQL panels use the data source variable ``pgdatasource``, Grafana's time macros (``$__timeFilter(col)``,
``$__timeGroupAlias(col, $__interval)``) and the custom variable ``priority`` (1, 2, 3; multi-value, which Grafana
formats as ``'1','2'`` in SQL). :func:`sql_queries` lists every SQL query of a dashboard and :func:`expand_sql`
substitutes the macros and variables as Grafana does, so the tests run each query against the real schema.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from grafana_foundation_sdk.builders import table, timeseries
from grafana_foundation_sdk.models import dashboard as dbm

from . import names
from .panels import NS, _common, _dashboard, stat_panel, timeseries_panel

__all__ = ["PG_DATASOURCE", "PG_DATASOURCE_VAR", "TOP_SUBJECTS_SQL", "audit", "expand_sql", "interventions",
           "sql_queries"]

PG_DATASOURCE_VAR = "pgdatasource"
PG_TYPE = "grafana-postgresql-datasource"
PG_DATASOURCE = dbm.DataSourceRef(type_val=PG_TYPE, uid=f"${{{PG_DATASOURCE_VAR}}}")
PRIORITY_FILTER = "priority IN ($priority)"


class SqlQuery:
    """A raw-SQL target of the PostgreSQL data source (the SDK has no builder for it): ``build()`` is its JSON."""

    def __init__(self, sql: str, ref: str = "A", fmt: str = "table") -> None:
        self.sql, self.ref, self.fmt = sql, ref, fmt

    def build(self) -> dict[str, Any]:
        """The target as Grafana stores it (code editor mode, raw SQL, ``table`` or ``time_series`` format)."""
        return {"datasource": {"type": PG_TYPE, "uid": f"${{{PG_DATASOURCE_VAR}}}"}, "editorMode": "code",
                "format": self.fmt, "rawQuery": True, "rawSql": self.sql, "refId": self.ref}  # fmt: skip


def sql_table_panel(title: str, description: str, sql: str, *, span: int = 12, height: int = 8) -> table.Panel:
    """A table of one SQL query (columns as the query names them)."""
    panel = _common(table.Panel(), title, description, "short", span, height).datasource(PG_DATASOURCE)
    return panel.with_target(SqlQuery(sql))


def sql_timeseries_panel(title: str, description: str, sql: str, *, unit: str = "short", span: int = 12,
                         height: int = 8) -> timeseries.Panel:
    """A time series of one SQL query returning ``time``, ``metric`` (the series name) and ``value``."""
    panel = _common(timeseries.Panel(), title, description, unit, span, height).datasource(PG_DATASOURCE)
    return panel.with_target(SqlQuery(sql, fmt="time_series"))


def _with_sql_variables(model: dict[str, Any], *, priority: bool) -> dict[str, Any]:
    """``model`` with the ``pgdatasource`` variable (and, with ``priority``, the ``priority`` one) appended."""
    variables = [{"type": "datasource", "name": PG_DATASOURCE_VAR, "label": "PostgreSQL", "query": PG_TYPE,
                  "includeAll": False, "multi": False, "skipUrlSync": False}]  # fmt: skip
    if priority:
        options = [{"selected": False, "text": t, "value": v} for v, t in (("1", "critical"), ("2", "warning"),
                                                                            ("3", "info"))]  # fmt: skip
        variables.append({"type": "custom", "name": "priority", "label": "Priority", "query": "1,2,3",
                          "options": options, "multi": True, "includeAll": True, "allValue": "1,2,3",
                          "current": {"selected": True, "text": "All", "value": "$__all"},
                          "skipUrlSync": False})  # fmt: skip
    model["templating"]["list"] += variables
    return model


_AGE = """CASE WHEN now() - created_at < interval '1 hour' THEN '< 1h'
                WHEN now() - created_at < interval '1 day' THEN '1h - 1d'
                WHEN now() - created_at < interval '7 days' THEN '1d - 7d' ELSE '> 7d' END"""

OPEN_QUEUE_SQL = f"""SELECT priority, category, {_AGE} AS age, count(*) AS cases,
       count(*) FILTER (WHERE acknowledged_at IS NULL) AS unacknowledged
FROM interventions WHERE status IN ('open', 'in_progress') AND {PRIORITY_FILTER}
GROUP BY 1, 2, 3 ORDER BY 1, 2, min(created_at)"""

OLDEST_CASES_SQL = f"""SELECT i.id, i.priority, i.category, d.rule, i.status::text AS status, i.assignee,
       i.occurrences, extract(epoch FROM now() - i.created_at) AS age_seconds
FROM interventions i JOIN detections d ON d.id = i.detection_id
WHERE i.status IN ('open', 'in_progress') AND i.{PRIORITY_FILTER}
ORDER BY i.priority, i.created_at LIMIT 20"""

TOP_RULES_SQL = f"""SELECT d.rule, count(*) AS cases,
       count(*) FILTER (WHERE i.status IN ('open', 'in_progress')) AS open,
       count(*) FILTER (WHERE i.resolution = 'false-positive') AS false_positives,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM i.resolved_at - i.created_at))
           AS median_resolve_seconds
FROM interventions i JOIN detections d ON d.id = i.detection_id
WHERE $__timeFilter(i.created_at) AND i.{PRIORITY_FILTER}
GROUP BY d.rule ORDER BY cases DESC, d.rule LIMIT 10"""

OPENED_SQL = f"""SELECT $__timeGroupAlias(created_at, $__interval), 'P' || priority AS metric, count(*) AS value
FROM interventions WHERE $__timeFilter(created_at) AND {PRIORITY_FILTER}
GROUP BY 1, 2 ORDER BY 1"""

#: the alerts dashboard's top subjects: the open cases of each rule (``$rule``, ``$namespace``: the page links set
#: them), highest score first, at most 5 per rule, as the page's ``#rank`` lists their intervention ids. Prometheus
#: never holds a subject id (``names.DETECTION_TOP_CASE`` is ranked by intervention id), so who they are is read here.
TOP_SUBJECTS_SQL = """SELECT rule, rank, subject, intervention, status, score, occurrences, last_seen
FROM (SELECT d.rule, coalesce(d.player_id, d.evidence->>'subject') AS subject, i.id AS intervention,
             i.status::text AS status, d.score, i.occurrences, i.last_seen_at AS last_seen,
             row_number() OVER (PARTITION BY d.rule ORDER BY d.score DESC, i.id) AS rank
      FROM interventions i JOIN detections d ON d.id = i.detection_id
      WHERE i.status IN ('open', 'in_progress') AND d.rule ~ '^(${rule:regex})\\Z'
        AND d.rule ~ '^(${namespace:regex})/') AS ranked
WHERE rank <= 5 ORDER BY rule, rank"""

RESOLUTIONS_SQL = f"""SELECT coalesce(resolution, '(none)') AS resolution, resolved_by, count(*) AS cases
FROM interventions WHERE status IN ('resolved', 'dismissed') AND $__timeFilter(resolved_at) AND {PRIORITY_FILTER}
GROUP BY 1, 2 ORDER BY cases DESC LIMIT 20"""


def interventions() -> dict[str, Any]:
    """Interventions: the open queue by priority and age, time to acknowledge and resolve, top rules."""
    quantile = "histogram_quantile({q}, sum by (priority, le) (max without (pod, instance) " \
               "(increase({name}_bucket{{{ns}}}[1d]))))"
    model = _dashboard("interventions", "Game analytics / Interventions", "The on-call queue: what waits, for how "
                       "long, how fast it is worked, and which rules fill it.", [
        ("Queue", [
            stat_panel("Open critical cases", "Open and in-progress cases of priority 1.",
                       f'sum({names.CASES_OPEN}{{{NS}, priority="1"}}) or vector(0)', alert_at=1),
            stat_panel("Oldest unacknowledged critical case", "Age of the oldest priority 1 case nobody "
                       "acknowledged (GameAnalyticsCriticalCaseUnacknowledged pages after 15 min).",
                       f'max({names.CASE_OLDEST_UNACKED_AGE}{{{NS}, priority="1"}})', unit="s", alert_at=900),
            stat_panel("Open cases", "Open and in-progress cases, every priority.",
                       f"sum({names.CASES_OPEN}{{{NS}}}) or vector(0)"),
            stat_panel("Oldest open case", "Age of the oldest open or in-progress case.",
                       f"max({names.CASE_OLDEST_OPEN_AGE}{{{NS}}})", unit="s"),
            timeseries_panel("Open cases by priority and category", "game-analytics interventions list.",
                             [(f"max by (priority, category) ({names.CASES_OPEN}{{{NS}}})",
                               "P{{priority}} {{category}}")], span=8),
            timeseries_panel("Oldest open and unacknowledged case", "By priority.", [
                (f"max by (priority) ({names.CASE_OLDEST_OPEN_AGE}{{{NS}}})", "open P{{priority}}"),
                (f"max by (priority) ({names.CASE_OLDEST_UNACKED_AGE}{{{NS}}})", "unacknowledged P{{priority}}"),
            ], unit="s", span=8),
            sql_table_panel("Open queue by age", "Open and in-progress cases by priority, category and age "
                            "(from PostgreSQL).", OPEN_QUEUE_SQL, span=8),
        ]),
        ("Time to acknowledge and resolve", [
            timeseries_panel("Time to acknowledge", "Median and 90th percentile of the seconds from a case's "
                             "creation to its acknowledgement, by priority, over the cases acknowledged in the "
                             "trailing day.", [
                (quantile.format(q=q, name=names.TIME_TO_ACK, ns=NS), f"p{round(q * 100)} P{{{{priority}}}}")
                for q in (0.5, 0.9)], unit="s"),
            timeseries_panel("Time to resolve", "Median and 90th percentile of the seconds from a case's creation "
                             "to its resolution, by priority, over the cases resolved in the trailing day.", [
                (quantile.format(q=q, name=names.TIME_TO_RESOLVE, ns=NS), f"p{round(q * 100)} P{{{{priority}}}}")
                for q in (0.5, 0.9)], unit="s"),
        ]),
        ("Rules and cases", [
            sql_table_panel("Top rules", "The rules that opened the most cases in the time range: open now, "
                            "false positives, median seconds to resolve.", TOP_RULES_SQL),
            sql_table_panel("Oldest open cases", "The 20 most urgent open cases (interventions show ID).",
                            OLDEST_CASES_SQL),
            sql_timeseries_panel("Cases opened", "New cases per interval, by priority.", OPENED_SQL),
            sql_table_panel("Resolutions", "Cases resolved in the time range by resolution and by whom "
                            "(detection-worker: auto-cleared).", RESOLUTIONS_SQL),
        ]),
    ])  # fmt: skip
    return _with_sql_variables(model, priority=True)


BY_ACTOR_SQL = """SELECT $__timeGroupAlias(at, $__interval), actor AS metric, count(*) AS value
FROM audit_log WHERE $__timeFilter(at) GROUP BY 1, 2 ORDER BY 1"""

BY_SOURCE_SQL = """SELECT $__timeGroupAlias(at, $__interval), coalesce(source, '(none)') AS metric,
       count(*) AS value
FROM audit_log WHERE $__timeFilter(at) GROUP BY 1, 2 ORDER BY 1"""

ACTIONS_SQL = """SELECT actor, coalesce(source, '(none)') AS source, action, count(*) AS entries, max(at) AS latest
FROM audit_log WHERE $__timeFilter(at) GROUP BY 1, 2, 3 ORDER BY entries DESC LIMIT 50"""

LATEST_SQL = """SELECT seq, at, actor, action, object_ref AS target, source, approver, justification
FROM audit_log WHERE $__timeFilter(at) ORDER BY seq DESC LIMIT 100"""


def audit() -> dict[str, Any]:
    """Audit: actions over time by actor and source, who did what, the latest entries, the chain's head."""
    model = _dashboard("audit", "Game analytics / Audit", "Who changed what, when, from where; the tamper-evident "
                       "chain's head.", [
        ("Chain", [
            stat_panel("Audit chain length", "Entries in the audit log (seq of the newest); record it with the "
                       "head for `game-analytics audit verify --expect-head`.",
                       f"max({names.AUDIT_CHAIN_LENGTH}{{{NS}}})", span=12),
            stat_panel("Audit chain head", "The first 13 hex digits of the newest entry's hash: the start of "
                       "`game-analytics audit head`'s HASH.", f"max({names.AUDIT_CHAIN_HEAD}{{{NS}}})", unit="hex",
                       span=12),
        ]),
        ("Actions", [
            sql_timeseries_panel("Actions by actor", "Audit entries per interval, by actor.", BY_ACTOR_SQL),
            sql_timeseries_panel("Actions by source", "Audit entries per interval, by source (cli, worker, "
                                 "operator).", BY_SOURCE_SQL),
            sql_table_panel("Who did what", "Entries in the time range by actor, source and action.", ACTIONS_SQL,
                            span=24),
            sql_table_panel("Latest entries", "The newest 100 entries in the time range (audit search).",
                            LATEST_SQL, span=24, height=10),
        ]),
    ])  # fmt: skip
    return _with_sql_variables(model, priority=False)


def sql_queries(dashboard: dict[str, Any]) -> list[str]:
    """Every raw SQL query of the dashboard's panels, as written (with macros and variables)."""
    return [t["rawSql"] for p in dashboard.get("panels", []) for inner in [p, *p.get("panels", [])]
            for t in inner.get("targets", []) if t.get("rawSql")]  # fmt: skip


def expand_sql(sql: str, start: datetime, end: datetime, interval_seconds: int = 3600,
               priority: str = "'1','2','3'", rule: str | None = None, namespace: str | None = None) -> str:
    """``sql`` with Grafana's PostgreSQL macros and this module's variables substituted as Grafana would
    (``$__timeFilter(c)`` -> ``c BETWEEN '<start>' AND '<end>'``, ``$__timeGroupAlias(c, $__interval)`` ->
    ``floor(extract(epoch FROM c)/N)*N AS "time"``, ``$priority`` -> ``priority``, ``${rule:regex}`` and
    ``${namespace:regex}`` -> ``rule`` and ``namespace``, already regex-escaped as Grafana's ``regex`` format
    does, ``.*`` being the variables' All value; None leaves them for
    :func:`game_analytics.reports.dashboard.grafana.substitute`); times must be aware."""
    iso = {"start": start.isoformat(), "end": end.isoformat()}
    sql = re.sub(r"\$__timeFilter\(([^)]+)\)",
                 lambda m: f"{m[1]} BETWEEN '{iso['start']}' AND '{iso['end']}'", sql)  # fmt: skip
    sql = re.sub(r"\$__timeGroupAlias\(([^,]+),\s*\$__interval\)",
                 lambda m: f'floor(extract(epoch FROM {m[1]})/{interval_seconds})*{interval_seconds} AS "time"',
                 sql)  # fmt: skip
    for name, value in (("rule", rule), ("namespace", namespace)):
        if value is not None:
            sql = sql.replace(f"${{{name}:regex}}", value)
    return sql.replace("$priority", priority)
