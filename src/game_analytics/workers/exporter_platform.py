"""The exporter's platform and model-performance families (the ML-performance, security and platform dashboards).

* ``DB_STATEMENTS{statement}`` and ``DB_STATEMENT_SECONDS{statement}`` (counters): statements executed in the
  exporter's database and their execution time, from ``pg_stat_statements`` when the extension is installed
  (``shared_preload_libraries = pg_stat_statements`` and ``CREATE EXTENSION pg_stat_statements``); declared
  without samples otherwise. ``statement`` is the first keyword: ``select`` (``with`` too), ``insert``, ``update``, ``delete``,
  ``copy`` or ``other``: bounded. Mean latency = rate(seconds) / rate(statements).
* ``ANOMALY_SCORE{rule}`` (gauge histogram over :data:`names.ANOMALY_SCORE_BUCKETS`): the scores of the detections
  that anomalyScore rules stored (Isolation Forest scores in (0, 1]; only players above the rule's threshold are
  stored).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
from prometheus_client.core import CounterMetricFamily, GaugeHistogramMetricFamily, Metric
from sqlalchemy import Connection, text

from game_analytics.monitoring import names
from game_analytics.workers.buckets import le_buckets

__all__ = ["STATEMENT_KINDS", "platform_families"]

#: the ``statement`` label values
STATEMENT_KINDS = ("select", "insert", "update", "delete", "copy", "other")

_STATEMENTS_SQL = """
SELECT CASE lower(substring(ltrim(query) FROM '^[A-Za-z]+'))
           WHEN 'select' THEN 'select' WHEN 'with' THEN 'select' WHEN 'insert' THEN 'insert'
           WHEN 'update' THEN 'update' WHEN 'delete' THEN 'delete' WHEN 'copy' THEN 'copy' ELSE 'other' END,
       sum(calls), sum(total_exec_time) / 1000.0
FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
GROUP BY 1 ORDER BY 1"""


def _statements(conn: Connection) -> list[Metric]:
    calls = CounterMetricFamily(names.DB_STATEMENTS, "Statements executed in this database "
                                "(pg_stat_statements), by kind.", labels=["statement"])  # fmt: skip
    seconds = CounterMetricFamily(names.DB_STATEMENT_SECONDS, "Execution time of those statements "
                                  "(pg_stat_statements), by kind.", labels=["statement"])  # fmt: skip
    if conn.execute(text("SELECT to_regclass('pg_stat_statements')")).scalar() is None:
        return [calls, seconds]  # declared, without samples
    try:  # the view errors when the library is not preloaded: roll back to the savepoint, no samples
        with conn.begin_nested():
            rows = conn.execute(text(_STATEMENTS_SQL)).all()
    except Exception:  # noqa: BLE001 - "pg_stat_statements must be loaded via shared_preload_libraries"
        return [calls, seconds]
    for kind, count, total in rows:
        calls.add_metric([kind], float(count))
        seconds.add_metric([kind], float(total))
    return [calls, seconds]


def _anomaly_scores(conn: Connection) -> list[Metric]:
    family = GaugeHistogramMetricFamily(names.ANOMALY_SCORE, "Scores of the detections stored by anomalyScore "
                                        "rules (Isolation Forest, fixed buckets).", labels=["rule"])  # fmt: skip
    rows = conn.execute(text("SELECT rule, array_agg(score) FROM detections "
                             "WHERE evidence->>'detector' = 'anomalyScore' GROUP BY rule ORDER BY rule")).all()
    bounds = np.asarray(names.ANOMALY_SCORE_BUCKETS, dtype=float)
    for rule, scores in rows:
        values = np.asarray([s for s in scores if s is not None], dtype=float)
        per_bucket = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds) + 1)
        family.add_metric([rule], le_buckets(names.ANOMALY_SCORE_BUCKETS, [int(n) for n in np.cumsum(per_bucket)]),
                          gsum_value=float(values.sum()))
    return [family]


def platform_families(conn: Connection, as_of: datetime) -> list[Metric]:
    """The families of the module docstring (``as_of`` unused: both are totals so far).

    Raises SQLAlchemy errors of the detections query.
    """
    return [*_statements(conn), *_anomaly_scores(conn)]
