"""Bounded metrics of the on-call queue and the audit chain, for the exporter's registry.

- ``CASES_OPEN{priority, category}``: open and in-progress cases (priorities 1-3 x the AlertRule categories);
- ``CASE_OLDEST_OPEN_AGE{priority}``: age in seconds of the oldest open or in-progress case (0 when none);
- ``CASE_OLDEST_UNACKED_AGE{priority}``: age of the oldest case still ``open`` and never acknowledged (0 when
  none): the stack alert ``GameAnalyticsCriticalCaseUnacknowledged`` watches priority 1;
- ``TIME_TO_ACK{priority, category}`` and ``TIME_TO_RESOLVE{priority, category}``: histograms in seconds
  (buckets ``names.CASE_LATENCY_BUCKETS``) from a case's creation to its acknowledgement / resolution, over every
  acknowledged / resolved case in the table (a reopened case leaves them until it is acknowledged or resolved
  again, which Prometheus sees as a counter reset);
- ``AUDIT_CHAIN_LENGTH`` and ``AUDIT_CHAIN_HEAD``: the newest audit entry's seq and the first 13 hex digits of its
  hash as an integer (exact in a float), so that an outside system (Prometheus' own storage) keeps an anchor to
  compare with ``game-analytics audit head`` / ``audit verify --expect-head``.

The queries read the ``(status, priority)`` index and the newest audit row; they run at most once per ``ttl``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine, text

from game_analytics.interventions.service import PRIORITY_OF_SEVERITY
from game_analytics.monitoring import names
from game_analytics.workers.buckets import le_buckets

__all__ = ["QueueCollector"]

log = logging.getLogger(__name__)

#: the ``priority`` label values (bounded: one per severity)
PRIORITIES = tuple(str(p) for p in sorted(PRIORITY_OF_SEVERITY.values()))

_BOUNDS = ", ".join(f"count(*) FILTER (WHERE d <= {b})" for b in names.CASE_LATENCY_BUCKETS)
#: (priority, category, cumulative counts per bound, count, sum of seconds) of the acknowledged / resolved cases
LATENCY_SQL = """
    SELECT priority, category, ARRAY[{bounds}], count(*), coalesce(sum(d), 0)
    FROM (SELECT priority, category, greatest(extract(epoch FROM {end} - created_at), 0) AS d
          FROM interventions WHERE {end} IS NOT NULL) AS cases
    GROUP BY 1, 2 ORDER BY 1, 2"""


def _histogram(conn: Connection, name: str, doc: str, end: str) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=["priority", "category"])
    for priority, category, cumulative, count, total in conn.execute(text(LATENCY_SQL.format(bounds=_BOUNDS,
                                                                                             end=end))):
        buckets = le_buckets(names.CASE_LATENCY_BUCKETS, [*cumulative, count])
        family.add_metric([str(priority), category], buckets, sum_value=float(total))
    return family


class QueueCollector(Collector):
    """Collector of the queue and audit-chain gauges on ``engine``, cached for ``ttl`` seconds.

    A failed refresh is logged and the previous values (nothing before the first success) are served.
    """

    def __init__(self, engine: Engine, ttl: float = 15.0) -> None:
        self.engine = engine
        self.ttl = ttl
        self._lock = threading.Lock()
        self._cached: list[Metric] = []
        self._expires = float("-inf")

    def describe(self) -> Iterable[Metric]:
        """Nothing: registering must not run the queries."""
        return []

    def collect(self) -> Iterable[Metric]:
        """The gauges, refreshed when older than ``ttl``."""
        with self._lock:
            if time.monotonic() >= self._expires:
                try:
                    self._cached = self.refresh()
                except Exception:  # noqa: BLE001 - keep serving the last values while the database is away
                    log.exception("queue metrics refresh failed")
                self._expires = time.monotonic() + self.ttl
            return list(self._cached)

    def refresh(self) -> list[Metric]:
        """Run the queries and build the families (raises SQLAlchemy errors)."""
        cases = GaugeMetricFamily(names.CASES_OPEN, "Open and in-progress intervention cases.",
                                  labels=["priority", "category"])  # fmt: skip
        oldest = GaugeMetricFamily(names.CASE_OLDEST_OPEN_AGE, "Age of the oldest open or in-progress case.",
                                   labels=["priority"])  # fmt: skip
        length = GaugeMetricFamily(names.AUDIT_CHAIN_LENGTH, "Seq of the newest audit log entry.")
        head = GaugeMetricFamily(names.AUDIT_CHAIN_HEAD, "First 13 hex digits of the newest audit entry's hash.")
        unacked = GaugeMetricFamily(names.CASE_OLDEST_UNACKED_AGE, "Age of the oldest open case never "
                                    "acknowledged.", labels=["priority"])  # fmt: skip
        ages, unacked_ages = dict.fromkeys(PRIORITIES, 0.0), dict.fromkeys(PRIORITIES, 0.0)
        with self.engine.connect() as conn:
            for priority, category, count, age in conn.execute(text("""
                    SELECT priority, category, count(*), extract(epoch FROM now() - min(created_at))
                    FROM interventions WHERE status IN ('open', 'in_progress')
                    GROUP BY 1, 2 ORDER BY 1, 2""")):  # fmt: skip
                cases.add_metric([str(priority), category], count)
                ages[str(priority)] = max(ages.get(str(priority), 0.0), float(age))
            for priority, age in conn.execute(text("""
                    SELECT priority, extract(epoch FROM now() - min(created_at)) FROM interventions
                    WHERE status = 'open' AND acknowledged_at IS NULL GROUP BY 1""")):  # fmt: skip
                unacked_ages[str(priority)] = max(unacked_ages.get(str(priority), 0.0), float(age))
            to_ack = _histogram(conn, names.TIME_TO_ACK, "Seconds from a case's creation to its acknowledgement.",
                                "acknowledged_at")  # fmt: skip
            to_resolve = _histogram(conn, names.TIME_TO_RESOLVE, "Seconds from a case's creation to its "
                                    "resolution.", "resolved_at")  # fmt: skip
            newest = conn.execute(text("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")).first()
        for priority, age in ages.items():
            oldest.add_metric([priority], age)
        for priority, age in unacked_ages.items():
            unacked.add_metric([priority], age)
        length.add_metric([], newest[0] if newest else 0)
        head.add_metric([], int(newest[1][:13], 16) if newest else 0)
        return [cases, oldest, unacked, to_ack, to_resolve, length, head]
