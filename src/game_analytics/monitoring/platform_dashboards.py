"""The ML-performance, security and platform-performance dashboards the requirements name (docs/analytics.md).

* **ML performance**: the win/draw/loss model quality of each RankingJob (log loss and Brier against the baseline,
  match quality), the churn classifier's ROC AUC, age since each model was refitted, and the distribution of the
  anomaly scores the anomalyScore rules stored.
* **Security**: dead letters by reason, invalid events by field (from the ``dead_letters`` table), detections by
  severity, failed logins (login events with ``payload.success = false``, from PostgreSQL) and flagged subjects.
* **Platform performance**: ingest lag and backlog, database statement latency and rate (pg_stat_statements where
  installed), Redis cache hit rate (redis_exporter), the exporter's refresh time and the detection pass time.

Every metric name comes from :mod:`.names`; the SQL panels use Grafana's PostgreSQL data source as
:mod:`.sql_dashboards` does.
"""

from __future__ import annotations

from typing import Any

from . import names
from .panels import GAME, NS, RATE, _dashboard, distribution_panel, stat_panel, table_panel, timeseries_panel
from .sql_dashboards import _with_sql_variables, sql_table_panel, sql_timeseries_panel

__all__ = ["FAILED_LOGINS_SQL", "INVALID_EVENTS_SQL", "ml_performance", "platform_performance", "security"]


def ml_performance() -> dict[str, Any]:
    """Model quality per RankingJob, churn classifier AUC, forecast backtest error, age since refit, anomaly score
    distribution."""
    return _dashboard("ml", "Game analytics / ML performance", "How good the models are and how fresh.", [
        ("Model quality", [
            stat_panel("Churn classifier ROC AUC", "Held-out time split, 28-day horizon (0.5 = chance).",
                       f"min({names.CHURN_CLASSIFIER_AUC}{{{GAME}}})", unit="percentunit"),
            stat_panel("Best outcome log loss", "Lowest held-out log loss of the RankingJobs' rating models (nats).",
                       f'min({names.RANKING_MODEL_LOG_LOSS}{{{GAME}, model="ratings"}})', unit="none"),
            stat_panel("Log loss gain over baseline", "Baseline minus ratings log loss, summed over RankingJobs "
                       "(above 0: the ratings beat the home-advantage baseline).",
                       f'sum(max by (ranking) ({names.RANKING_MODEL_LOG_LOSS}{{{GAME}, model="baseline"}}) - '
                       f'max by (ranking) ({names.RANKING_MODEL_LOG_LOSS}{{{GAME}, model="ratings"}}))',
                       unit="none"),
            stat_panel("Oldest model fit", "Seconds since the least recently refitted model.",
                       f"time() - min({names.MODEL_FIT_TIMESTAMP}{{{GAME}}})", unit="s", alert_at=86_400),
            timeseries_panel("Outcome model log loss per RankingJob", "Ratings model against the home-advantage "
                             "baseline on the most recent held-out season; lower is better.",
                             [(f"max by (ranking, model) ({names.RANKING_MODEL_LOG_LOSS}{{{GAME}}})",
                               "{{ranking}} {{model}}")], unit="none", span=8, soft_min=None),
            timeseries_panel("Outcome model Brier score per RankingJob", "0 best, 2 worst.",
                             [(f"max by (ranking, model) ({names.RANKING_MODEL_BRIER}{{{GAME}}})",
                               "{{ranking}} {{model}}")], unit="none", span=8, soft_min=None),
            timeseries_panel("Churn classifier ROC AUC", "By game.",
                             [(f"max by (game) ({names.CHURN_CLASSIFIER_AUC}{{{GAME}}})", "{{game}}")],
                             unit="percentunit", span=8, soft_min=None),
            timeseries_panel("Forecast backtest MAPE", "Mean absolute percentage error of the DAU and revenue "
                             "forecasts (ETS) on the last 30 complete days, fitted without them; lower is better.",
                             [(f"max by (game, metric) ({names.FORECAST_MAPE}{{{GAME}}})", "{{game}} {{metric}}")],
                             unit="percentunit", span=24),
        ]),
        ("Freshness and anomalies", [
            timeseries_panel("Age since refit", "Seconds since each model was fitted (the exporter refits the "
                             "customer-value, outcome and forecast models every 10 minutes).",
                             [(f"time() - max by (game, model) ({names.MODEL_FIT_TIMESTAMP}{{{GAME}}})",
                               "{{game}} {{model}}")], unit="s", span=12),
            distribution_panel("Anomaly score distribution", "Isolation Forest scores of the players the "
                               "anomalyScore rules flagged (stored detections, fixed buckets).",
                               f"sum by (le) ({names.ANOMALY_SCORE}_bucket{{{NS}}})", span=12),
            table_panel("Match quality of recent pairings", "Mean normalised outcome entropy of each RankingJob's "
                        "held-out pairings (1 = balanced).",
                        [(f"max by (game, ranking) ({names.RANKING_MATCH_QUALITY}{{{GAME}}})", "")], span=24,
                        height=6),
        ]),
    ])  # fmt: skip


INVALID_EVENTS_SQL = """SELECT coalesce(field, '(whole entry)') AS field, count(*) AS events,
       max(received_at) AS latest, min(reason) AS example_reason
FROM dead_letters WHERE $__timeFilter(received_at) GROUP BY 1 ORDER BY events DESC LIMIT 20"""

FAILED_LOGINS_SQL = """SELECT $__timeGroupAlias(occurred_at, $__interval), game AS metric, count(*) AS value
FROM events WHERE event_type = 'login' AND payload->>'success' = 'false' AND $__timeFilter(occurred_at)
GROUP BY 1, 2 ORDER BY 1"""

FAILED_LOGINS_TOP_SQL = """SELECT player_id, game, count(*) AS failed_logins, max(occurred_at) AS latest
FROM events WHERE event_type = 'login' AND payload->>'success' = 'false' AND $__timeFilter(occurred_at)
GROUP BY 1, 2 ORDER BY failed_logins DESC, player_id LIMIT 10"""


def security() -> dict[str, Any]:
    """Dead letters by reason, invalid events, detections by severity, failed logins."""
    model = _dashboard("security", "Game analytics / Security", "Rejected input, detections and failed logins.", [
        ("Rejected input", [
            stat_panel("Dead letters (1 h)", "Entries the ingest worker rejected in the last hour.",
                       f"sum(increase({names.DEAD_LETTERS}{{{NS}}}[1h])) or vector(0)", alert_at=1, span=8),
            stat_panel("Critical detections", "Critical detections recorded so far.",
                       f'sum({names.DETECTIONS_STORED}{{{NS}, severity="critical"}}) or vector(0)', alert_at=1,
                       span=8),
            stat_panel("Flagged subjects", "Players or items flagged by worker-evaluated rules now.",
                       f"sum({names.DETECTION_FLAGGED}{{{NS}}}) or vector(0)", span=8),
            timeseries_panel("Dead letters by reason", "Rejected entries per second, by reason kind.",
                             [(f"sum by (reason) (rate({names.DEAD_LETTERS}{{{NS}}}[{RATE}]))", "{{reason}}")],
                             unit="ops", span=12),
            sql_table_panel("Invalid events by field", "Dead letters in the time range by the field at fault "
                            "(from PostgreSQL's dead_letters).", INVALID_EVENTS_SQL, span=12),
        ]),
        ("Detections and logins", [
            timeseries_panel("Detections by severity", "Detections recorded so far, by severity.",
                             [(f"sum by (severity) ({names.DETECTIONS_STORED}{{{NS}}})", "{{severity}}")], span=8),
            timeseries_panel("Flagged subjects by severity", "What the worker-evaluated rules flag now.",
                             [(f"sum by (severity) ({names.DETECTION_FLAGGED}{{{NS}}})", "{{severity}}")], span=8),
            sql_timeseries_panel("Failed logins", "Login events with payload.success = false per interval, by game "
                                 "(from PostgreSQL).", FAILED_LOGINS_SQL, span=8),
            sql_table_panel("Players with the most failed logins", "In the time range.", FAILED_LOGINS_TOP_SQL,
                            span=24, height=7),
        ]),
    ])  # fmt: skip
    return _with_sql_variables(model, priority=False)


def platform_performance() -> dict[str, Any]:
    """Ingest lag, database statement latency, Redis cache hit rate, exporter refresh time."""
    latency = (f"sum by (statement) (rate({names.DB_STATEMENT_SECONDS}{{{NS}}}[{RATE}])) / "
               f"sum by (statement) (rate({names.DB_STATEMENTS}{{{NS}}}[{RATE}]))")
    hits = f"sum(rate(redis_keyspace_hits_total{{{NS}}}[{RATE}]))"
    misses = f"sum(rate(redis_keyspace_misses_total{{{NS}}}[{RATE}]))"
    return _dashboard("platform", "Game analytics / Platform performance", "How fast the stack is.", [
        ("Ingest", [
            stat_panel("Ingest lag", "Seconds the ingest worker is behind its streams (the worst stream).",
                       f"max({names.INGEST_LAG}{{{NS}}})", unit="s", alert_at=60, span=8),
            stat_panel("Exporter refresh", "Duration of the exporter's last refresh.",
                       f"max({names.EXPORTER_REFRESH_DURATION}{{{NS}}})", unit="s", span=8),
            stat_panel("Redis cache hit rate", "Keyspace hits over lookups (redis_exporter).",
                       f"{hits} / ({hits} + {misses})", unit="percentunit", span=8),
            timeseries_panel("Ingest lag by stream", "Seconds behind, per stream.",
                             [(f"max by (stream) ({names.INGEST_LAG}{{{NS}}})", "{{stream}}")], unit="s", span=12),
            timeseries_panel("Stream backlog", "Entries not yet delivered and delivered but not acknowledged.", [
                (f"max by (stream) ({names.INGEST_GROUP_LAG}{{{NS}}})", "behind {{stream}}"),
                (f"max by (stream) ({names.INGEST_GROUP_PENDING}{{{NS}}})", "pending {{stream}}"),
            ], span=12),
        ]),
        ("Database and caches", [
            timeseries_panel("Database statement latency", "Mean execution time per statement kind "
                             "(pg_stat_statements, where installed).", [(latency, "{{statement}}")], unit="s",
                             span=8),
            timeseries_panel("Database statements per second", "By kind (pg_stat_statements).",
                             [(f"sum by (statement) (rate({names.DB_STATEMENTS}{{{NS}}}[{RATE}]))", "{{statement}}")],
                             unit="ops", span=8),
            timeseries_panel("Redis cache hit rate", "Per Redis instance (redis_exporter).",
                             [(f"rate(redis_keyspace_hits_total{{{NS}}}[{RATE}]) / (rate(redis_keyspace_hits_total"
                               f"{{{NS}}}[{RATE}]) + rate(redis_keyspace_misses_total{{{NS}}}[{RATE}]))", "{{pod}}")],
                             unit="percentunit", span=8),
            timeseries_panel("Exporter refresh duration", "The analytics aggregates' refresh; scrapes are served "
                             "from the cached snapshot meanwhile.",
                             [(f"max by (pod) ({names.EXPORTER_REFRESH_DURATION}{{{NS}}})", "{{pod}}")], unit="s"),
            timeseries_panel("Ingest batch duration p99", "Time to write one batch of events.",
                             [(f"histogram_quantile(0.99, sum by (le) "
                               f"(rate({names.INGEST_BATCH_DURATION}_bucket{{{NS}}}[{RATE}])))", "p99")], unit="s"),
        ]),
    ])  # fmt: skip
