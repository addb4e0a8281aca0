"""The exporter's funnel families, from the latest succeeded run of each ``funnel`` ScheduledReport.

Funnels are defined per ScheduledReport (``spec.funnel``), which the exporter does not read; the report worker
records each funnel run's step results in ``report_runs.parameters.funnel.steps`` (:func:`game_analytics.reports.
funnel.funnel_result`), and this section publishes the newest of them per report. Labels are bounded:
``report`` = ``<namespace>/<name>`` (one per ScheduledReport), ``step`` = the step's position ``"1"`` .. ``"10"``
(``spec.funnel`` has 2 to 10 steps) and ``event_type`` the step's event type; never a player.

* ``FUNNEL_STEP_PLAYERS{report, step, event_type}``: players reaching the step within the conversion window;
* ``FUNNEL_STEP_CONVERSION{report, step, event_type}``: their share of the players entering at step 1 (0 .. 1).
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import Connection, text

from game_analytics.monitoring import names

__all__ = ["funnel_families"]

_LATEST_SQL = """
SELECT DISTINCT ON (namespace, report_name) namespace || '/' || report_name, parameters->'funnel'->'steps'
FROM report_runs
WHERE report_type = 'funnel' AND outcome = 'succeeded' AND jsonb_typeof(parameters->'funnel'->'steps') = 'array'
ORDER BY namespace, report_name, started_at DESC, id DESC"""


def funnel_families(conn: Connection, as_of: datetime) -> list[Metric]:
    """The families of the module docstring (``as_of`` unused: a run's figures are those of its own period).

    Both families are declared even when no funnel report has run. Raises SQLAlchemy errors of the query.
    """
    labels = ["report", "step", "event_type"]
    players = GaugeMetricFamily(names.FUNNEL_STEP_PLAYERS, "Players reaching each funnel step within the "
                                "conversion window (latest run of the funnel report).", labels=labels)  # fmt: skip
    conversion = GaugeMetricFamily(names.FUNNEL_STEP_CONVERSION, "Share of the funnel's entrants reaching each step "
                                   "(latest run of the funnel report).", labels=labels)  # fmt: skip
    for report, steps in conn.execute(text(_LATEST_SQL)):
        for step in steps:
            key = [report, str(int(step["step"])), str(step["event_type"])]
            players.add_metric(key, float(step["players"]))
            conversion.add_metric(key, float(step["conversion"]))
    return [players, conversion]
