"""What every report builder shares: :class:`BuildContext` and the helpers that shape query rows into tables."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, text

from ..api.scheduledreport import FunnelReport, ReportFilters, ReportType
from .compute import bucket_starts
from .model import Report, ReportPeriod

__all__ = ["REPORT_PLANNING", "UNIT_LABEL", "BuildContext", "bucket_series", "naive_utc", "number"]

#: how a report's transaction is planned (:meth:`BuildContext.connect`): memory for the sorts and hashes of a whole
#: period's players (``work_mem``, per node), and random heap fetches costed as if only PostgreSQL's own buffers
#: cached the table (``effective_cache_size`` = ``shared_buffers``): with the default 4GB the planner read a
#: 120-day period's 10M events in player order through the (player_id, occurred_at) index, one heap fetch per row
#: (top performers: 73 s), where a parallel scan and a sort take 24 s (docs/scaling.md, the scale run)
REPORT_PLANNING = ("SELECT set_config('work_mem', '256MB', true), "
                   "set_config('effective_cache_size', current_setting('shared_buffers'), true)")

#: axis label of each bucket unit
UNIT_LABEL = {"day": "Day (UTC)", "week": "Week starting (UTC)", "month": "Month (UTC)"}


@dataclass(frozen=True)
class BuildContext:
    """Inputs shared by all builders.

    Attributes:
        engine: the analytics store.
        period: the reporting period.
        filters: validated filters (see :func:`~game_analytics.reports.model.validate_filters`).
        now: generation time (UTC), written into the report.
        funnel: the ScheduledReport's ``spec.funnel`` (what the ``funnel`` type measures), or None.
    """

    engine: Engine
    period: ReportPeriod
    filters: ReportFilters
    now: datetime
    funnel: FunnelReport | None = None

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection of :attr:`engine` in a transaction planned for whole-period scans
        (:data:`REPORT_PLANNING`, set for this transaction only); rolled back at the end (reports only read)."""
        with self.engine.connect() as conn:
            conn.execute(text(REPORT_PLANNING))
            yield conn

    def params(self, **extra: Any) -> dict[str, Any]:
        """Base SQL parameters: ``start``, ``end``, ``prev_start``, ``top_n`` plus ``extra``."""
        return {
            "start": self.period.start, "end": self.period.end, "prev_start": self.period.previous().start,
            "top_n": self.filters.top_n, **extra,
        }  # fmt: skip

    def new_report(self, report_type: ReportType, title: str) -> Report:
        return Report(report_type, title, self.period, self.filters, self.now)


def number(value: Any) -> float | None:
    """``value`` as a float; None for None and NaN."""
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else float(value)


def naive_utc(series: pd.Series) -> pd.Series:
    """Timestamps as naive UTC (the form the bucket index uses)."""
    s = pd.to_datetime(series, utc=True)
    return s.dt.tz_convert("UTC").dt.tz_localize(None)


def bucket_series(frame: pd.DataFrame, ctx: BuildContext, unit: str, columns: list[str]) -> pd.DataFrame:
    """Reindex a per-bucket frame (column ``bucket``) on every bucket of the period, missing buckets = 0."""
    index = bucket_starts(ctx.period.start, ctx.period.end, unit)
    if frame.empty:
        out = pd.DataFrame(0, index=index, columns=columns)
    else:
        f = frame.assign(bucket=naive_utc(frame["bucket"])).set_index("bucket")[columns]
        f.index = f.index.astype(index.dtype)
        out = f.reindex(index, fill_value=0)
    out.index.name = "bucket"
    return out.reset_index()
