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

# operator
RECONCILES = f"{PREFIX}_operator_reconciles_total"  # counter{kind, result}
RECONCILE_ERRORS = f"{PREFIX}_operator_reconcile_errors_total"  # counter{kind, reason}
RECONCILE_DURATION = f"{PREFIX}_operator_reconcile_duration_seconds"  # histogram{kind}
