"""Grafana dashboards as code (``grafana-foundation-sdk``), generated into ``grafana_dashboards/``.

Eleven dashboards with stable UIDs: activity, economy, rankings, alerts, interventions and audit (with SQL
panels on Grafana's PostgreSQL data source: :mod:`.sql_dashboards`), operator health, Redis/MongoDB topology, and
ML performance, security and platform performance (:mod:`.platform_dashboards`).
Each has a Prometheus data source variable and the template variables ``namespace``, ``game`` and ``region``. Every query uses metric names from :mod:`game_analytics.monitoring.names` (ours, or the
listed exporters'), which :func:`.dashboard_queries.metric_names_used` extracts from the PromQL syntax tree
for tests and for checks against a live scrape.

Run ``python -m game_analytics.monitoring.dashboards --output grafana_dashboards`` to regenerate:

* ``<name>.json``: the dashboard model (import it in Grafana, or provision it from a file);
* ``configmaps/<name>.yaml``: a ConfigMap labelled ``grafana_dashboard: "1"``, the label the Grafana sidecar of
  kube-prometheus-stack watches by default;
* ``grafana-operator/<name>.yaml``: a ``grafana.integreatly.org/v1beta1`` GrafanaDashboard for grafana-operator.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from . import names
from .kpi_panels import REPORT_VARIABLE
from .panels import (
    CONFIGMAP_LABEL,
    CONFIGMAP_LIMIT_BYTES,  # noqa: F401 - re-exported (tests)
    GAME,
    NS,
    RATE,
    REGION,
    RULE,
    UID_PREFIX,
    _dashboard,
    bargauge_panel,
    distribution_panel,
    rows_heatmap_panel,
    stat_panel,
    table_panel,
    timeseries_panel,
)


def _row(name: str) -> tuple[str, list[Any]]:
    """A row of :mod:`.kpi_panels` (imported here: it builds on this module's panel helpers)."""
    from . import kpi_panels

    return getattr(kpi_panels, name)()


def activity() -> dict[str, Any]:
    """Activity monitor: DAU/WAU/MAU, sessions, events per second, session length, KPIs, DAU forecast, funnels
    (``report`` variable), activity heat map by region."""
    active = names.ACTIVE_PLAYERS
    return _dashboard("activity", "Game analytics / Activity", "Who plays, how much, and where.", [
        ("Active players", [
            stat_panel("DAU", "Distinct players active in the last day.",
                       f'sum({active}{{{GAME}, period="1d"}})'),
            stat_panel("WAU", "Distinct players active in the last 7 days.",
                       f'sum({active}{{{GAME}, period="7d"}})'),
            stat_panel("MAU", "Distinct players active in the last 30 days.",
                       f'sum({active}{{{GAME}, period="30d"}})'),
            stat_panel("DAU / MAU", "Stickiness: the share of monthly players who play on a given day.",
                       f'sum({active}{{{GAME}, period="1d"}}) / sum({active}{{{GAME}, period="30d"}})',
                       unit="percentunit"),
            timeseries_panel("Active players by period", "Hourly, daily, weekly and monthly active players.",
                             [(f"sum by (period) ({active}{{{GAME}}})", "{{period}}")]),
            timeseries_panel("Active players by game (last hour)", "Distinct players active in the last hour.",
                             [(f'sum by (game) ({active}{{{GAME}, period="1h"}})', "{{game}}")]),
        ]),
        ("Sessions and events", [
            timeseries_panel("Sessions started per second", "By game.",
                             [(f"sum by (game) (rate({names.SESSIONS}{{{REGION}}}[{RATE}]))", "{{game}}")],
                             unit="ops", span=8),
            timeseries_panel("Session length", "Median and 90th percentile of finished sessions.", [
                (f"histogram_quantile(0.5, sum by (le) (rate({names.SESSION_DURATION}_bucket{{{GAME}}}[{RATE}])))",
                 "p50"),
                (f"histogram_quantile(0.9, sum by (le) (rate({names.SESSION_DURATION}_bucket{{{GAME}}}[{RATE}])))",
                 "p90"),
            ], unit="s", span=8),
            timeseries_panel("Events ingested per second", "By event type, from the ingest worker.",
                             [(f"sum by (event_type) (rate({names.EVENTS_INGESTED}{{{GAME}}}[{RATE}]))",
                               "{{event_type}}")], unit="ops", span=8),
        ]),
        ("Events", [
            timeseries_panel("Events in the last day", "Stored events of the trailing day by type (the "
                             "exporter's windows end at its evaluation time).",
                             [(f'sum by (event_type) ({names.PERIOD_EVENTS}{{{GAME}, period="1d"}})',
                               "{{event_type}}")], span=12),
            table_panel("Events by period", "Stored events per game and type in the trailing hour, day, week and "
                        "month.", [(f"sum by (game, event_type, period) ({names.PERIOD_EVENTS}{{{GAME}}})", "")]),
        ]),
        _row("activity_kpis"),
        _row("activity_forecast"),
        _row("activity_funnels"),
        ("Regions", [
            rows_heatmap_panel("Activity by region", "Players active in the last hour, one row per region.",
                               f"sum by (region) ({names.ACTIVE_PLAYERS_BY_REGION}{{{REGION}}})", "{{region}}"),
        ]),
    ], variables=[REPORT_VARIABLE])


def economy() -> dict[str, Any]:
    """Economy: wealth distribution, Gini coefficient, inflation (price index), trade volume."""
    wealth = f"{names.PLAYER_WEALTH}_bucket"
    price = names.PRICE_INDEX
    return _dashboard("economy", "Game analytics / Economy", "Wealth, inequality, prices and trade.", [
        ("Wealth", [
            distribution_panel("Players by wealth", "How many players hold each range of total wealth "
                               "(fixed buckets).", f"sum by (le) ({wealth}{{{GAME}}})"),
            timeseries_panel("Wealth percentiles", "Median, 90th and 99th percentile of player wealth.", [
                (f"histogram_quantile({q}, sum by (le) ({wealth}{{{GAME}}}))", f"p{round(q * 100)}")
                for q in (0.5, 0.9, 0.99)
            ]),
            timeseries_panel("Gini coefficient", "Inequality of wealth per currency: 0 equal, 1 one player holds "
                             "everything.", [(f"max by (game, currency) ({names.GINI}{{{GAME}}})",
                                              "{{game}} {{currency}}")], unit="percentunit"),
        ]),
        ("Prices and trade", [
            timeseries_panel("Price index", "The in-game price index per currency.",
                             [(f"max by (game, currency) ({price}{{{GAME}}})", "{{game}} {{currency}}")]),
            timeseries_panel("Inflation (day over day)", "Relative change of the price index against a day before.",
                             [(f"max by (game, currency) ({price}{{{GAME}}}) / "
                               f"max by (game, currency) ({price}{{{GAME}}} offset 1d) - 1",
                               "{{game}} {{currency}}")], unit="percentunit"),
            timeseries_panel("Trade volume", "Traded value per currency.",
                             [(f"sum by (game, currency) ({names.TRADE_VOLUME}{{{GAME}}})", "{{game}} {{currency}}")],
                             span=24),
        ]),
        _row("economy_value"),
        _row("economy_forecast"),
    ])


def rankings() -> dict[str, Any]:
    """Rankings: rating distribution, league sizes, top movers of the last ranking run."""
    rating = f"{names.PLAYER_RATING}_bucket"
    movers = names.TOP_MOVER_RATING_CHANGE
    return _dashboard("rankings", "Game analytics / Rankings", "Skill ratings, leagues and who moved.", [
        ("Ratings", [
            distribution_panel("Players by rating", "Rating distribution of the selected ranking (fixed buckets).",
                               f"sum by (le) ({rating}{{{GAME}}})"),
            timeseries_panel("Rating percentiles", "Median and 90th percentile rating per ranking.", [
                (f"histogram_quantile(0.5, sum by (ranking, le) ({rating}{{{GAME}}}))", "{{ranking}} p50"),
                (f"histogram_quantile(0.9, sum by (ranking, le) ({rating}{{{GAME}}}))", "{{ranking}} p90"),
            ]),
        ]),
        ("Leagues and movers", [
            bargauge_panel("League sizes", "Players per league.",
                           f"sum by (league) ({names.LEAGUE_PLAYERS}{{{GAME}}})", "{{league}}"),
            table_panel("Top movers", f"The {names.TOP_MOVERS} largest rating changes up and down in the last "
                        "ranking run, by rank (player names are in the ranking report).",
                        [(f"max by (ranking, direction, rank) ({movers}{{{GAME}}})", "")]),
        ]),
        _row("ranking_model_quality"),
    ])



#: the alerts dashboard's extra variable: AlertRule ids (``<namespace>/<name>``) that raised an alert in the time
#: range, which is what a page links to (``controller.alertrule.render.page_annotations`` sets ``var-rule``)
RULE_VARIABLE = ("rule", "AlertRule", f'label_values(ALERTS{{{NS}, rule!=""}}, rule)')


def alerts() -> dict[str, Any]:
    """Alerts and interventions: firing alerts, flagged subjects and who they are (SQL, from the interventions
    table), detections, open cases. The ``rule`` variable (set by the page's link) narrows the rule panels."""
    from .sql_dashboards import TOP_SUBJECTS_SQL, _with_sql_variables, sql_table_panel

    model = _dashboard("alerts", "Game analytics / Alerts and interventions", "What the AlertRules find.", [
        ("Alerts", [
            stat_panel("Firing AlertRules", "AlertRule alerts firing now.",
                       f'count(ALERTS{{{RULE}, alertstate="firing", rule!=""}}) or vector(0)', alert_at=1),
            stat_panel("Flagged subjects", "Players or items currently flagged by worker-evaluated rules.",
                       f"sum({names.DETECTION_FLAGGED}{{{RULE}}}) or vector(0)"),
            stat_panel("Open detections", "Detections not yet resolved.",
                       f'sum({names.DETECTIONS_OPEN}{{{NS}, status!="resolved"}}) or vector(0)'),
            stat_panel("Open interventions", "Interventions not yet closed.",
                       f'sum({names.INTERVENTIONS_OPEN}{{{NS}, status!="closed"}}) or vector(0)'),
            timeseries_panel("Flagged subjects by rule", "What each worker-evaluated rule flags.",
                             [(f"max by (rule) ({names.DETECTION_FLAGGED}{{{RULE}}})", "{{rule}}")]),
            timeseries_panel("Detections per hour", "By category and severity.",
                             [(f"sum by (category, severity) (increase({names.DETECTIONS}{{{RULE}}}[1h]))",
                               "{{category}} {{severity}}")]),
            sql_table_panel("Top flagged subjects", "Who the page's top cases are: the open cases of each rule, "
                            "highest score first, at most five per rule (from PostgreSQL; Prometheus holds no "
                            "subject ids).", TOP_SUBJECTS_SQL, span=16),
            table_panel("Top cases by rule", "The page's #rank -> intervention id, as the detection worker "
                        "exports them.",
                        [(f"max by (rule, rank) ({names.DETECTION_TOP_CASE}{{{RULE}}})", "")], span=8),
            table_panel("Detections stored by rule", "Every detection recorded so far, by rule and severity "
                        "(from the database, so it survives worker restarts).",
                        [(f"sum by (rule, category, severity) ({names.DETECTIONS_STORED}{{{RULE}}})", "")], span=24),
        ]),
        ("Cases", [
            table_panel("Detections open", "By status and priority.",
                        [(f"sum by (category, status, priority) ({names.DETECTIONS_OPEN}{{{NS}}})", "")]),
            table_panel("Interventions open", "By action, status and priority.",
                        [(f"sum by (action, status, priority) ({names.INTERVENTIONS_OPEN}{{{NS}}})", "")]),
            timeseries_panel("Open cases by priority", "Open and in-progress cases of the queue, by priority and "
                             "category (game-analytics interventions list).",
                             [(f"max by (priority, category) ({names.CASES_OPEN}{{{NS}}})", "P{{priority}} {{category}}")]),
            timeseries_panel("Oldest open case", "Age of the oldest open case, by priority.",
                             [(f"max by (priority) ({names.CASE_OLDEST_OPEN_AGE}{{{NS}}})", "P{{priority}}")], unit="s"),
        ]),
        ("Audit", [
            stat_panel("Audit chain length", "Entries in the tamper-evident audit log; with the head hash, an anchor "
                       "for `game-analytics audit verify --expect-head`.",
                       f"max({names.AUDIT_CHAIN_LENGTH}{{{NS}}})"),
            stat_panel("Audit chain head", "The first 13 hex digits of the newest entry's hash: the start of "
                       "`game-analytics audit head`'s HASH.", f"max({names.AUDIT_CHAIN_HEAD}{{{NS}}})", unit="hex"),
        ]),
    ], variables=[RULE_VARIABLE])
    return _with_sql_variables(model, priority=False)


def operator_health() -> dict[str, Any]:
    """Operator and workers: reconciles, errors, durations, worker targets, ingest lag and stream backlog,
    scheduled jobs, the exporter's refreshes and errors, the detection worker's passes, rules and errors."""
    return _dashboard("operator", "Game analytics / Operator and workers", "Health of the stack itself.", [
        ("Operator", [
            timeseries_panel("Reconciles per second", "By kind and result.",
                             [(f"sum by (kind, result) (rate({names.RECONCILES}[{RATE}]))", "{{kind}} {{result}}")],
                             unit="ops", span=8),
            timeseries_panel("Reconcile errors per second", "By kind and reason.",
                             [(f"sum by (kind, reason) (rate({names.RECONCILE_ERRORS}[{RATE}]))",
                               "{{kind}} {{reason}}")], unit="ops", span=8),
            timeseries_panel("Reconcile duration p99", "By kind.",
                             [(f"histogram_quantile(0.99, sum by (kind, le) "
                               f"(rate({names.RECONCILE_DURATION}_bucket[{RATE}])))", "{{kind}}")], unit="s", span=8),
        ]),
        ("Workers", [
            timeseries_panel("Worker targets up", "1 while Prometheus scrapes the worker.",
                             [(f'up{{{NS}, container=~"ingest|exporter|detection"}}', "{{pod}}")], span=8),
            timeseries_panel("Ingest lag", "How far the ingest worker is behind each stream.",
                             [(f"max by (stream) ({names.INGEST_LAG}{{{NS}}})", "{{stream}}")], unit="s", span=8),
            timeseries_panel("Dead letters per second", "Rejected events by reason.",
                             [(f"sum by (reason) (rate({names.DEAD_LETTERS}{{{NS}}}[{RATE}]))", "{{reason}}")],
                             unit="ops", span=8),
            timeseries_panel("Ingest batch duration p99", "Time to write one batch of events.",
                             [(f"histogram_quantile(0.99, sum by (le) "
                               f"(rate({names.INGEST_BATCH_DURATION}_bucket{{{NS}}}[{RATE}])))", "p99")], unit="s"),
            timeseries_panel("Scheduled job runs per hour", "Report and ranking runs by outcome.",
                             [(f"sum by (kind, name, outcome) (increase({names.SCHEDULED_RUNS}{{{NS}}}[1h]))",
                               "{{kind}} {{name}} {{outcome}}")]),
            table_panel("Scheduled jobs", "Time since the last successful run.", [
                (f"time() - max by (kind, name) ({names.SCHEDULED_LAST_SUCCESS}{{{NS}}})", ""),
            ]),
            timeseries_panel("Stream entries behind", "Entries not yet delivered to the ingest consumer group "
                             "(XINFO GROUPS lag).",
                             [(f"max by (stream, group) ({names.INGEST_GROUP_LAG}{{{NS}}})", "{{stream}} {{group}}")]),
            timeseries_panel("Stream entries pending", "Entries delivered to the ingest group but not yet "
                             "acknowledged (in flight, or stuck with a dead consumer).",
                             [(f"max by (stream, group) ({names.INGEST_GROUP_PENDING}{{{NS}}})",
                               "{{stream}} {{group}}")]),
        ]),
        ("Exporter", [
            timeseries_panel("Exporter refresh duration", "Time the last refresh of the analytics aggregates "
                             "took (scrapes are served from the cached snapshot meanwhile).",
                             [(f"max by (pod) ({names.EXPORTER_REFRESH_DURATION}{{{NS}}})", "{{pod}}")],
                             unit="s", span=8),
            timeseries_panel("Exporter query errors per second", "Failed aggregate queries by query section.",
                             [(f"sum by (query) (rate({names.EXPORTER_QUERY_ERRORS}{{{NS}}}[{RATE}]))", "{{query}}")],
                             unit="ops", span=8),
            timeseries_panel("Evaluation time behind now", "Now minus the time the exporter's windows end at "
                             "(large for replayed historical data evaluated with --as-of latest).",
                             [(f"time() - max by (pod) ({names.EXPORTER_AS_OF}{{{NS}}})", "{{pod}}")],
                             unit="s", span=8),
        ]),
        ("Detection", [
            timeseries_panel("Detection pass duration", "Time the last pass over all active rules took; it "
                             "should stay well below the pass interval.",
                             [(f"max by (pod) ({names.DETECTION_PASS_DURATION}{{{NS}}})", "{{pod}}")],
                             unit="s", span=8),
            timeseries_panel("Detector rules by state", "Rules the detection worker loaded: active, suspended, "
                             "invalid (invalid rules are logged with the file or ConfigMap at fault).",
                             [(f"max by (state) ({names.DETECTION_RULES}{{{NS}}})", "{{state}}")], span=8),
            timeseries_panel("Rule evaluation errors per second", "Failed rule evaluations by rule.",
                             [(f"sum by (rule) (rate({names.DETECTION_ERRORS}{{{NS}}}[{RATE}]))", "{{rule}}")],
                             unit="ops", span=8),
            timeseries_panel("Streaming path: event to evaluation, p99", "From an event's stream entry to the "
                             "evaluation that saw it (the detection worker's streaming path).",
                             [(f"histogram_quantile(0.99, sum by (le) (rate({names.DETECTION_STREAM_LATENCY}_bucket"
                               f"{{{NS}}}[{RATE}])))", "p99")], unit="s", span=8),
            timeseries_panel("Streaming path: alerts posted per second", "Alerts the detection worker posted to "
                             "Alertmanager's v2 API, by result.",
                             [(f"sum by (result) (rate({names.DETECTION_ALERTS_SENT}{{{NS}}}[{RATE}]))", "{{result}}")],
                             unit="ops", span=8),
        ]),
    ])


def topology() -> dict[str, Any]:
    """Redis (Sentinel) and MongoDB (sharded) topology health, from redis_exporter, mongodb_exporter and
    kube-state-metrics."""
    return _dashboard("topology", "Game analytics / Redis and MongoDB", "Masters, replicas, Sentinels, shards.", [
        ("Redis", [
            stat_panel("Redis masters", "Instances reporting role master (exactly 1 per RedisFailover).",
                       f'count(redis_instance_info{{{NS}, role="master"}}) or vector(0)'),
            stat_panel("Redis instances down", "Instances the exporter cannot query.",
                       f"count(redis_up{{{NS}}} == 0) or vector(0)", alert_at=1),
            stat_panel("Sentinel quorum failures", "Masters whose Sentinels fail CKQUORUM.",
                       f"count(redis_sentinel_master_ckquorum_status{{{NS}}} == 0) or vector(0)", alert_at=1),
            stat_panel("Ready Sentinels", "Ready Sentinel pods over desired.",
                       f'sum(kube_statefulset_status_replicas_ready{{{NS}, statefulset=~".+-sentinel"}}) / '
                       f'sum(kube_statefulset_replicas{{{NS}, statefulset=~".+-sentinel"}})', unit="percentunit"),
            timeseries_panel("Roles", "Instances by role per Service.",
                             [(f"count by (service, role) (redis_instance_info{{{NS}}})", "{{service}} {{role}}")],
                             span=8),
            timeseries_panel("Connected replicas", "Replicas attached to each master.",
                             [(f'redis_connected_slaves * on (namespace, pod) group_left () '
                               f'redis_instance_info{{{NS}, role="master"}}', "{{pod}}")], span=8),
            timeseries_panel("Memory used", "Per instance.",
                             [(f"redis_memory_used_bytes{{{NS}}}", "{{pod}}")], unit="bytes", span=8),
            timeseries_panel("Replication link up", "On replicas: 1 while the link to the master is up.",
                             [(f"redis_master_link_up{{{NS}}}", "{{pod}}")], span=6),
            timeseries_panel("Commands per second", "Per instance.",
                             [(f"rate(redis_commands_processed_total{{{NS}}}[{RATE}])", "{{pod}}")], unit="ops", span=6),
            timeseries_panel("Connected clients", "Per instance.",
                             [(f"redis_connected_clients{{{NS}}}", "{{pod}}")], span=6),
            timeseries_panel("Healthy Sentinels per master", "Sentinels that see the master as up (when an "
                             "exporter scrapes the Sentinels).",
                             [(f"max by (master_name) (redis_sentinel_master_ok_sentinels{{{NS}}})",
                               "{{master_name}}")], span=6),
        ]),
        ("MongoDB", [
            timeseries_panel("mongod / mongos up", "1 while each exporter can ping its server.",
                             [(f"mongodb_up{{{NS}}}", "{{service}} {{pod}}")], span=8),
            timeseries_panel("Shard members up", "Members up per shard Service.",
                             [(f'sum by (service) (mongodb_up{{{NS}, service=~".+-shard-[0-9]+(-headless)?"}})', "{{service}}")],
                             span=8),
            timeseries_panel("Chunks per shard", "Balance of the sharded collections.",
                             [(f"max by (shard) (mongodb_mongos_sharding_shard_chunks_total{{{NS}}})", "{{shard}}")],
                             span=8),
        ]),
    ])


def interventions() -> dict[str, Any]:
    """Interventions (:mod:`.sql_dashboards`): open queue by priority and age, time to ack / resolve, top rules."""
    from .sql_dashboards import interventions as build

    return build()


def audit() -> dict[str, Any]:
    """Audit (:mod:`.sql_dashboards`): actions over time by actor and source, the latest entries, the chain."""
    from .sql_dashboards import audit as build

    return build()


DASHBOARDS: dict[str, Callable[[], dict[str, Any]]] = {
    "activity": activity,
    "economy": economy,
    "rankings": rankings,
    "alerts": alerts,
    "interventions": interventions,
    "audit": audit,
    "operator": operator_health,
    "topology": topology,
    "ml": lambda: _more("ml_performance"),
    "security": lambda: _more("security"),
    "platform": lambda: _more("platform_performance"),
}


def _more(name: str) -> dict[str, Any]:
    """A dashboard of :mod:`.platform_dashboards` (imported here: it builds on the panel helpers)."""
    from . import platform_dashboards

    return getattr(platform_dashboards, name)()


def to_json(dashboard: dict[str, Any]) -> str:
    """Stable JSON text of a dashboard (sorted keys, two-space indent, final newline)."""
    return json.dumps(dashboard, indent=2, sort_keys=True) + "\n"


def config_map(name: str, dashboard: dict[str, Any]) -> dict[str, Any]:
    """A ConfigMap the kube-prometheus-stack Grafana sidecar loads (label ``grafana_dashboard: "1"``)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{UID_PREFIX}{name}-dashboard",
                     "labels": {**CONFIGMAP_LABEL, "app.kubernetes.io/part-of": "game-analytics"}},
        "data": {f"{UID_PREFIX}{name}.json": to_json(dashboard)},
    }


def grafana_dashboard(name: str, dashboard: dict[str, Any]) -> dict[str, Any]:
    """A grafana-operator (v5) GrafanaDashboard for Grafana instances labelled ``dashboards: grafana``."""
    return {
        "apiVersion": "grafana.integreatly.org/v1beta1",
        "kind": "GrafanaDashboard",
        "metadata": {"name": f"{UID_PREFIX}{name}", "labels": {"app.kubernetes.io/part-of": "game-analytics"}},
        "spec": {"instanceSelector": {"matchLabels": {"dashboards": "grafana"}},
                 "folder": "Game analytics", "json": to_json(dashboard)},
    }


def render_files() -> dict[str, str]:
    """Relative path -> content of every generated file (the generator's whole output)."""
    files: dict[str, str] = {}
    for name, build in DASHBOARDS.items():
        model = build()
        files[f"{name}.json"] = to_json(model)
        files[f"configmaps/{name}.yaml"] = yaml.safe_dump(config_map(name, model), sort_keys=False, width=1000)
        files[f"grafana-operator/{name}.yaml"] = yaml.safe_dump(grafana_dashboard(name, model), sort_keys=False,
                                                                width=1000)
    return files


def write(output: Path) -> list[Path]:
    """Write :func:`render_files` under ``output``; returns the paths written."""
    written = []
    for relative, content in render_files().items():
        path = output / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=Path("grafana_dashboards"), help="output directory")
    args = parser.parse_args(argv)
    for path in write(args.output):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
