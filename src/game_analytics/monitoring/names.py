"""Names of every Prometheus metric the workers export: one place, shared by exporters, alert templates and tests.

Naming follows the Prometheus conventions: a ``game_analytics_`` namespace, base units (seconds, bytes),
``_total`` for counters. Labels are bounded: game, region, event type, period, rule, severity, never a player id.
"""

PREFIX = "game_analytics"

# ingest worker
EVENTS_INGESTED = f"{PREFIX}_events_ingested_total"  # counter{game, event_type}
DEAD_LETTERS = f"{PREFIX}_dead_letters_total"  # counter{reason}
INGEST_BATCH_DURATION = f"{PREFIX}_ingest_batch_duration_seconds"  # histogram
INGEST_LAG = f"{PREFIX}_ingest_lag_seconds"  # gauge{stream}

# exporter (analytics aggregates)
ACTIVE_PLAYERS = f"{PREFIX}_active_players"  # gauge{game, period="1h|1d|7d|30d"}
PRICE_INDEX = f"{PREFIX}_economy_price_index"  # gauge{game, currency}
GINI = f"{PREFIX}_economy_gini_ratio"  # gauge{game, currency}
TRADE_VOLUME = f"{PREFIX}_economy_trade_volume"  # gauge{game, currency}

# detection worker
DETECTION_FLAGGED = f"{PREFIX}_detection_flagged_subjects"  # gauge{rule, detector, category, severity}
DETECTIONS = f"{PREFIX}_detections_total"  # counter{rule, category, severity}
#: gauge{rule, rank="1".."5"}: the intervention id (value) of the rule's rank-th flagged subject, highest score
#: first (read by the page description). Bounded: at most TOP_CASES series per rule with fixed label values,
#: never a subject id in a label (who the subjects are is in the interventions table: the alerts dashboard's
#: SQL panel and ``game-analytics interventions show ID``)
DETECTION_TOP_CASE = f"{PREFIX}_detection_top_case_id"
TOP_CASES = 5
DETECTION_ALERTS_SENT = f"{PREFIX}_detection_alerts_sent_total"  # counter{result}: streaming path -> Alertmanager
DETECTION_STREAM_LATENCY = f"{PREFIX}_detection_stream_latency_seconds"  # histogram: XADD id to evaluated
#: recording rule of a DryRun AlertRule (docs/backtest.md): its alert's condition, labels of the alert plus
#: ``alertname``; one series per alert the rule would have (bounded like the alert itself), never sent anywhere
DRY_RUN_CONDITION = "game_analytics:alertrule_dry_run:condition"

# operator
RECONCILES = f"{PREFIX}_operator_reconciles_total"  # counter{kind, result}
RECONCILE_ERRORS = f"{PREFIX}_operator_reconcile_errors_total"  # counter{kind, reason}
RECONCILE_DURATION = f"{PREFIX}_operator_reconcile_duration_seconds"  # histogram{kind}

# exporter: activity (dashboards "activity monitor"); region is one of the game's configured regions (bounded)
ACTIVE_PLAYERS_BY_REGION = f"{PREFIX}_region_active_players"  # gauge{game, region}: distinct players active in the last hour
SESSIONS = f"{PREFIX}_sessions_total"  # counter{game, region}: sessions started
SESSION_DURATION = f"{PREFIX}_session_duration_seconds"  # histogram{game}: length of finished sessions

# exporter: economy. Distributions over players are exported as OpenMetrics *gauge histograms* (``_bucket{le}``,
# ``_gcount``, ``_gsum``) recomputed from the database on every refresh, with the FIXED buckets below, so the
# number of series never depends on the number of players.
PLAYER_WEALTH = f"{PREFIX}_player_wealth"  # gauge histogram{game, currency}: players by total wealth
WEALTH_BUCKETS = (0, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000)

# exporter: rankings (``ranking`` is the RankingJob's name; leagues and ranks are bounded enumerations)
PLAYER_RATING = f"{PREFIX}_player_rating"  # gauge histogram{game, ranking}: players by rating (ordinal)
RATING_BUCKETS = (0, 500, 750, 1_000, 1_250, 1_500, 1_750, 2_000, 2_250, 2_500, 3_000)
LEAGUE_PLAYERS = f"{PREFIX}_league_players"  # gauge{game, ranking, league}
# Top movers as a bounded gauge: the N largest rating changes of the last ranking run, labelled by their rank
# (1..TOP_MOVERS) and direction, never by player id. The table of who moved is in the ranking report.
TOP_MOVER_RATING_CHANGE = f"{PREFIX}_ranking_top_mover_rating_change"  # gauge{game, ranking, rank="1".."10", direction="up|down"}
TOP_MOVERS = 10

# exporter: detections and interventions (from the detection worker's tables)
DETECTIONS_OPEN = f"{PREFIX}_detections_open"  # gauge{category, status, priority}
INTERVENTIONS_OPEN = f"{PREFIX}_interventions_open"  # gauge{action="review_<category>", status, priority}
# exporter: the on-call queue and the audit chain (game_analytics.interventions.metrics; categories are the
# AlertRule categories, priorities 1-3: bounded)
CASES_OPEN = f"{PREFIX}_intervention_cases_open"  # gauge{priority, category}: open + in-progress cases
CASE_OLDEST_OPEN_AGE = f"{PREFIX}_intervention_oldest_open_age_seconds"  # gauge{priority}: 0 when none is open
AUDIT_CHAIN_LENGTH = f"{PREFIX}_audit_chain_length"  # gauge: seq of the newest audit entry (an anchor's SEQ)
AUDIT_CHAIN_HEAD = f"{PREFIX}_audit_chain_head_hash_prefix"  # gauge: first 13 hex digits (52 bits) of its hash
CASE_OLDEST_UNACKED_AGE = f"{PREFIX}_intervention_oldest_unacknowledged_age_seconds"  # gauge{priority}: status open, never acknowledged; 0 when none
TIME_TO_ACK = f"{PREFIX}_intervention_time_to_acknowledge_seconds"  # histogram{priority, category}: created -> acknowledged
TIME_TO_RESOLVE = f"{PREFIX}_intervention_time_to_resolve_seconds"  # histogram{priority, category}: created -> resolved
CASE_LATENCY_BUCKETS = (60, 300, 900, 1_800, 3_600, 14_400, 43_200, 86_400, 259_200, 604_800)  # 1 min .. 7 d
DETECTIONS_STORED = f"{PREFIX}_detections_stored"  # gauge{rule, category, severity}: detections recorded

# exporter: scheduled jobs (ScheduledReport and RankingJob CronJobs). Their pods live too briefly to be scraped,
# so the exporter derives these from the runs the jobs record in PostgreSQL. kind = "ScheduledReport" | "RankingJob",
# name = the custom resource's name.
SCHEDULED_RUNS = f"{PREFIX}_scheduled_job_runs_total"  # counter{kind, name, outcome="success|failure"}
SCHEDULED_INTERVAL = f"{PREFIX}_scheduled_job_interval_seconds"  # gauge{kind, name}: seconds between two scheduled runs
SCHEDULED_LAST_SUCCESS = f"{PREFIX}_scheduled_job_last_success_timestamp_seconds"  # gauge{kind, name}: Unix time

# exporter: more activity, the stream seen from Redis, and the exporter itself
PERIOD_EVENTS = f"{PREFIX}_period_events"  # gauge{game, event_type, period="1h|1d|7d|30d"}: events in the window
INGEST_GROUP_LAG = f"{PREFIX}_ingest_group_lag_entries"  # gauge{stream, group}: entries not yet delivered
INGEST_GROUP_PENDING = f"{PREFIX}_ingest_group_pending_entries"  # gauge{stream, group}: delivered, not acked
EXPORTER_AS_OF = f"{PREFIX}_exporter_as_of_timestamp_seconds"  # gauge: Unix time the windows end at
EXPORTER_REFRESH_DURATION = f"{PREFIX}_exporter_refresh_duration_seconds"  # gauge: last refresh of the aggregates
EXPORTER_QUERY_ERRORS = f"{PREFIX}_exporter_query_errors_total"  # counter{query}

# exporter: game KPIs, customer value and churn risk (workers/exporter_value.py; definitions in docs/analytics.md).
# kpi is one of exporter_value.KPI_NAMES and tier one of high|medium|low: bounded.
KPI = f"{PREFIX}_kpi"  # gauge{game, kpi}: the KPIs of the trailing 30 days (ARPDAU, ARPPU, conversion, D1/D7/D30, ...)
PLAYER_CLV = f"{PREFIX}_player_clv_dollars"  # gauge histogram{game}: players by discounted 12-month CLV
CLV_BUCKETS = (0, 5, 10, 20, 50, 100, 200, 500, 1_000, 5_000)
CHURN_RISK_PLAYERS = f"{PREFIX}_churn_risk_players"  # gauge{game, tier="high|medium|low"}
# win/draw/loss model quality per RankingJob (ranking = its board) on the most recent held-out season
RANKING_MODEL_LOG_LOSS = f"{PREFIX}_ranking_model_log_loss"  # gauge{game, ranking, model="ratings|baseline"}: nats
RANKING_MODEL_BRIER = f"{PREFIX}_ranking_model_brier_score"  # gauge{game, ranking, model="ratings|baseline"}
RANKING_MATCH_QUALITY = f"{PREFIX}_ranking_match_quality"  # gauge{game, ranking}: mean over the held-out pairings
# DAU and revenue forecasts (ETS, analytics/forecast.py) per game; metric = dau|revenue, bound = forecast|lower|upper
FORECAST = f"{PREFIX}_forecast"  # gauge{game, metric, bound}: the current UTC day, 95 % interval
FORECAST_30D = f"{PREFIX}_forecast_30d"  # gauge{game, metric}: mean DAU / total revenue of the next 30 days
FORECAST_MAPE = f"{PREFIX}_forecast_backtest_mape"  # gauge{game, metric}: backtest error over 30 days (a share)

# exporter: funnels (workers/exporter_funnel.py), from the latest succeeded run of each funnel ScheduledReport;
# report = <namespace>/<name>, step = the step's position "1".."10" (spec.funnel has 2 to 10), event_type its type
FUNNEL_STEP_PLAYERS = f"{PREFIX}_funnel_step_players"  # gauge{report, step, event_type}: players reaching the step
FUNNEL_STEP_CONVERSION = f"{PREFIX}_funnel_step_conversion_ratio"  # gauge{report, step, event_type}: share of step 1

# exporter: model performance and the platform (workers/exporter_platform.py, exporter_value.py; labels bounded)
CHURN_CLASSIFIER_AUC = f"{PREFIX}_churn_classifier_roc_auc"  # gauge{game}: held-out ROC AUC (time split)
MODEL_FIT_TIMESTAMP = f"{PREFIX}_model_fit_timestamp_seconds"  # gauge{game, model="customer_value|outcome|forecast"}
ANOMALY_SCORE = f"{PREFIX}_anomaly_score"  # gauge histogram{rule}: scores of the anomalyScore detections stored
ANOMALY_SCORE_BUCKETS = (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9, 1.0)
# from pg_stat_statements when the extension is installed; statement = select|insert|update|delete|copy|other
DB_STATEMENTS = f"{PREFIX}_db_statements_total"  # counter{statement}: statements executed in this database
DB_STATEMENT_SECONDS = f"{PREFIX}_db_statement_seconds_total"  # counter{statement}: their execution time

# detection worker: passes and the anomaly model
DETECTION_PASS_DURATION = f"{PREFIX}_detection_pass_duration_seconds"  # gauge: last evaluation pass
DETECTION_RULES = f"{PREFIX}_detection_rules"  # gauge{state="active|suspended|invalid"}: rules loaded
DETECTION_ERRORS = f"{PREFIX}_detection_errors_total"  # counter{rule}: failed rule evaluations

#: every metric family the project itself exports (a histogram counts once, by its base name)
OWN_METRICS = frozenset(
    value for key, value in dict(globals()).items()
    if key.isupper() and isinstance(value, str) and value.startswith(PREFIX + "_")
)

# Metrics of third-party exporters that alert rules and dashboards use. Kept here so that every name a query
# uses is listed in one file; a live scrape of each exporter can check these sets.
PROMETHEUS = frozenset({"up", "ALERTS"})  # synthesized by Prometheus: per target, and per pending/firing alert
# oliver006/redis_exporter (names checked against its exporter/exporter.go and exporter/sentinels.go);
# the redis_sentinel_* families appear only when the exporter scrapes a Sentinel.
REDIS_EXPORTER = frozenset({
    "redis_up", "redis_instance_info", "redis_connected_clients", "redis_connected_slaves", "redis_master_link_up",
    "redis_memory_used_bytes", "redis_commands_processed_total", "redis_keyspace_hits_total",
    "redis_keyspace_misses_total",
    "redis_sentinel_master_ckquorum_status", "redis_sentinel_master_ok_sentinels",
})
# percona/mongodb_exporter (v0.4x, the sidecar MongoShardedCluster renders; names from its README and collector
# documentation): metric -> (the flag that switches its collector on, None = always on; which server it needs:
# "any" or "mongos"). The renderer passes every flag listed here to the sidecars of the servers named, and a test
# checks every mongodb_* name an alert or a panel uses is in this table.
MONGODB_EXPORTER: dict[str, tuple[str | None, str]] = {
    # general collector: 1 when the exporter's ping of its server works (no topology labels)
    "mongodb_up": (None, "any"),
    # shards collector, read from the config database through mongos: chunks per shard{shard}
    "mongodb_mongos_sharding_shard_chunks_total": ("--collector.shards", "mongos"),
}
# kubernetes/kube-state-metrics v2
KUBE_STATE_METRICS = frozenset({
    "kube_job_status_failed", "kube_job_owner", "kube_cronjob_next_schedule_time", "kube_cronjob_spec_suspend",
    "kube_statefulset_status_replicas_ready", "kube_statefulset_replicas", "kube_deployment_status_replicas_available",
})
EXTERNAL_METRICS = PROMETHEUS | REDIS_EXPORTER | frozenset(MONGODB_EXPORTER) | KUBE_STATE_METRICS

#: suffixes Prometheus adds to the series of a histogram (gauge histograms use _gcount and _gsum)
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum", "_gcount", "_gsum")


def family(series_name: str) -> str:
    """The metric family a series name belongs to: ``foo_seconds_bucket`` -> ``foo_seconds`` when that family is ours
    or external; otherwise the name itself."""
    known = OWN_METRICS | EXTERNAL_METRICS
    if series_name in known:
        return series_name
    for suffix in HISTOGRAM_SUFFIXES:
        if series_name.endswith(suffix) and series_name.removesuffix(suffix) in known:
            return series_name.removesuffix(suffix)
    return series_name


def is_known(series_name: str) -> bool:
    """Whether a series name belongs to a family listed in this module (ours or a known exporter's)."""
    return family(series_name) in OWN_METRICS | EXTERNAL_METRICS
