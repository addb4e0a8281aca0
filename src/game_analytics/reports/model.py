"""The report data model: periods, filters, key figures, tables, chart specifications (pure, no I/O).

A :class:`Report` is what a builder (see :mod:`game_analytics.reports.builders`) returns and what every output format
(:mod:`game_analytics.reports.render`) and delivery channel (:mod:`game_analytics.reports.delivery`) consumes:

* ``figures``: the headline numbers, each with a label and unit (``players``, ``USD``, ``%`` ...);
* ``tables``: named :class:`pandas.DataFrame` objects (one CSV file each);
* ``charts``: declarative :class:`ChartSpec` objects that point at a table's columns, drawn by
  :mod:`game_analytics.reports.charts`;
* ``notes``: caveats about the data (e.g. "timestamps have day resolution");
* ``pages``: whole pages drawn by the report itself (:class:`Page`; the ``dashboard`` type's panel grids), shown
  after the key figures in HTML and PDF.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from ..api.common import parse_duration
from ..api.scheduledreport import ReportFilters, ReportType

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure

__all__ = [
    "MAX_FILTER_VALUE_LENGTH",
    "ChartSpec",
    "Figure",
    "Page",
    "Report",
    "ReportPeriod",
    "Table",
    "bucket_unit",
    "parse_duration",
    "validate_filters",
]

#: Longest accepted filter value, in characters (the widest filtered column, ``events.game``, holds 64).
MAX_FILTER_VALUE_LENGTH = 128

@dataclass(frozen=True)
class ReportPeriod:
    """A half-open time range ``[start, end)`` in UTC.

    Raises:
        ValueError: naive datetimes, or ``end <= start``.
    """

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("report period bounds must be timezone-aware")
        object.__setattr__(self, "start", self.start.astimezone(UTC))
        object.__setattr__(self, "end", self.end.astimezone(UTC))
        if self.end <= self.start:
            raise ValueError(f"report period end {self.end.isoformat()} is not after start {self.start.isoformat()}")

    @classmethod
    def lookback(cls, end: datetime, duration: str | timedelta) -> ReportPeriod:
        """The period of length ``duration`` (a timedelta or a duration string) ending at ``end``."""
        delta = parse_duration(duration) if isinstance(duration, str) else duration
        return cls(end - delta, end)

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    def previous(self) -> ReportPeriod:
        """The period of the same length immediately before this one (for churn)."""
        return ReportPeriod(self.start - self.length, self.start)

    def label(self) -> str:
        """``2024-01-01 00:00 – 2024-01-08 00:00 UTC`` (end exclusive)."""
        return f"{self.start:%Y-%m-%d %H:%M} – {self.end:%Y-%m-%d %H:%M} UTC"


def bucket_unit(period: ReportPeriod) -> Literal["day", "week", "month"]:
    """Time bucket for series and cohorts: ``day`` up to 31 days, ``week`` up to 26 weeks, else ``month``."""
    if period.length <= timedelta(days=31):
        return "day"
    if period.length <= timedelta(weeks=26):
        return "week"
    return "month"


def validate_filters(filters: ReportFilters) -> ReportFilters:
    """Check every filter value beyond what the pydantic model checks, and return the filters unchanged.

    Values may contain any printable characters (quotes, semicolons ...): they are always bound as SQL parameters,
    so they can only ever match (or not match) stored values. Rejected are values PostgreSQL cannot store in
    ``text`` or that could never match a stored column.

    Raises:
        ValueError: naming the filter (``filters.games[2]``) for an empty value, a value longer than
            :data:`MAX_FILTER_VALUE_LENGTH` characters, or one containing control characters (e.g. NUL).
    """
    for name in ("games", "regions", "event_types"):
        for i, value in enumerate(getattr(filters, name)):
            where = f"filters.{name}[{i}]"
            if not value:
                raise ValueError(f"{where}: empty value")
            if len(value) > MAX_FILTER_VALUE_LENGTH:
                raise ValueError(f"{where}: longer than {MAX_FILTER_VALUE_LENGTH} characters")
            if any(ord(c) < 32 or ord(c) == 127 for c in value):
                raise ValueError(f"{where}: contains control characters")
    return filters


@dataclass(frozen=True)
class Figure:
    """A headline number: ``value`` (int, float, str or None when undefined) with a label and a unit."""

    key: str
    label: str
    value: int | float | str | None
    unit: str = ""

    def formatted(self) -> str:
        """Human-readable value with unit: ``12,345 players``, ``23.4 %``, ``n/a``."""
        v = self.value
        if v is None:
            text = "n/a"
        elif isinstance(v, bool) or isinstance(v, str):
            text = str(v)
        elif isinstance(v, int):
            text = f"{v:,}"
        else:
            text = f"{v:,.3f}" if abs(v) < 1 else f"{v:,.2f}" if abs(v) < 10 else f"{v:,.1f}"
        return f"{text} {self.unit}".strip() if v is not None else text


@dataclass(frozen=True)
class Table:
    """A named result table; ``name`` is a file-name-safe identifier (``top_spenders``).

    ``percent_columns`` hold shares in [0, 1] that the HTML view shows as percentages (CSV/JSON keep the shares).
    """

    name: str
    title: str
    frame: pd.DataFrame
    description: str = ""
    percent_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChartSpec:
    """A chart drawn from one table.

    Attributes:
        kind: ``line`` (x numeric/time, one line per ``y`` column), ``bar`` (one bar per row of ``x``, first ``y``
            column; ``horizontal`` for long labels), ``heatmap`` (``x`` = column holding the row labels, ``y`` =
            the value columns, values in [0, 1] shown as percent).
        table: name of the source table in the same report.
        x: column for the x axis (or the row labels of a heatmap).
        y: value columns.
        xlabel, ylabel: axis labels including units, e.g. ``"Day (UTC)"``, ``"Players"``.
        diagonal: draw the line of equality y = x (Lorenz curves).
        percent: format the y axis (or heatmap cells) as percentages of 1.
        zero_based: start the value axis of a bar chart at 0; False zooms to the data (e.g. ratings near 1500).
    """

    name: str
    title: str
    kind: Literal["line", "bar", "heatmap"]
    table: str
    x: str
    y: tuple[str, ...]
    xlabel: str
    ylabel: str
    horizontal: bool = False
    diagonal: bool = False
    percent: bool = False
    zero_based: bool = True


@dataclass(frozen=True)
class Page:
    """A whole page the report draws itself: ``draw()`` returns a new A4-landscape matplotlib figure."""

    title: str
    draw: Callable[[], MplFigure]


@dataclass
class Report:
    """A finished report (see the module docstring)."""

    report_type: ReportType
    title: str
    period: ReportPeriod
    filters: ReportFilters
    generated_at: datetime
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    charts: list[ChartSpec] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    pages: list[Page] = field(default_factory=list)

    def table(self, name: str) -> pd.DataFrame:
        """The frame of table ``name``. Raises KeyError if there is none."""
        for t in self.tables:
            if t.name == name:
                return t.frame
        raise KeyError(name)

    def figure(self, key: str) -> Any:
        """The value of figure ``key``. Raises KeyError if there is none."""
        for f in self.figures:
            if f.key == key:
                return f.value
        raise KeyError(key)
