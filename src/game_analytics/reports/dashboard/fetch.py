"""Run a dashboard panel's targets: PromQL against Prometheus' HTTP API, raw SQL against PostgreSQL.

A Prometheus target with ``instant: true`` is one ``/api/v1/query`` at the end of the range; any other target is a
``/api/v1/query_range`` over the range with the panel's step (:class:`~.grafana.QueryWindow`). ``format: table``
turns the result into a table (one column per label, then ``Value`` or ``Value #<refId>``), ``format: heatmap``
turns cumulative ``le`` buckets into per-bucket counts ordered by bound, as Grafana does. A SQL target
(``rawSql``) runs with Grafana's macros substituted (:func:`game_analytics.monitoring.sql_dashboards.expand_sql`);
``format: time_series`` reads columns ``time``, ``metric`` and ``value`` as one series per metric.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .grafana import QueryWindow, legend, substitute

__all__ = ["PanelData", "Prometheus", "QueryError", "Series", "run_targets"]


class QueryError(RuntimeError):
    """A query failed: Prometheus answered an error, could not be reached, or the SQL failed."""


@dataclass
class Series:
    """One series: its legend, labels, Unix times (s) and values (NaN where missing)."""

    name: str
    labels: dict[str, str]
    times: np.ndarray
    values: np.ndarray
    ref: str = "A"


@dataclass
class PanelData:
    """The results of a panel's targets: series (time series, stat, bar gauge, heat map) and/or tables."""

    series: list[Series] = field(default_factory=list)
    tables: list[pd.DataFrame] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """No series with a finite value and no table with a row."""
        return not any(np.isfinite(s.values).any() for s in self.series) and not any(len(t) for t in self.tables)


class Prometheus:
    """A minimal client of Prometheus' HTTP API (``base_url`` such as ``http://prometheus:9090``)."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        body = urllib.parse.urlencode(params).encode()
        request = urllib.request.Request(f"{self.base_url}{path}", data=body, method="POST",
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                document = json.loads(response.read())
        except urllib.error.HTTPError as exc:  # 400/422/503 carry the error document
            try:
                document = json.loads(exc.read())
            except ValueError:
                raise QueryError(f"{self.base_url}{path}: HTTP {exc.code}") from None
        except (OSError, ValueError) as exc:
            raise QueryError(f"{self.base_url}{path}: {exc}") from None
        if document.get("status") != "success":
            raise QueryError(f"{document.get('errorType', 'error')}: {document.get('error', document)}")
        return document["data"]

    def query(self, expr: str, at: float) -> dict[str, Any]:
        """``/api/v1/query`` at Unix time ``at``: the ``data`` object (``resultType``, ``result``).

        Raises:
            QueryError: the server answered an error or could not be reached.
        """
        return self._get("/api/v1/query", {"query": expr, "time": f"{at:.3f}"})

    def query_range(self, expr: str, start: float, end: float, step: float) -> dict[str, Any]:
        """``/api/v1/query_range``: the ``data`` object (``resultType`` matrix).

        Raises:
            QueryError: the server answered an error or could not be reached.
        """
        return self._get("/api/v1/query_range", {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                                 "step": f"{step:g}"})  # fmt: skip


def _float(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _series(data: dict[str, Any], fmt: str | None, ref: str) -> list[Series]:
    kind, result = data["resultType"], data["result"]
    if kind == "scalar":
        return [Series(fmt or "value", {}, np.array([float(result[0])]), np.array([_float(result[1])]), ref)]
    out = []
    for item in result:
        points = item["values"] if kind == "matrix" else [item["value"]]
        metric = item.get("metric", {})
        out.append(Series(legend(fmt, metric), metric, np.array([float(t) for t, _ in points]),
                          np.array([_float(v) for _, v in points]), ref))  # fmt: skip
    return out


def _table(series: list[Series], ref: str, several: bool) -> pd.DataFrame:
    labels = sorted({k for s in series for k in s.labels if k != "__name__"})
    value = f"Value #{ref}" if several else "Value"
    rows = [{**{k: s.labels.get(k, "") for k in labels}, value: s.values[-1] if len(s.values) else math.nan}
            for s in series]  # fmt: skip
    return pd.DataFrame(rows, columns=[*labels, value])


def _buckets(series: list[Series]) -> list[Series]:
    """Cumulative ``le`` buckets -> per-bucket counts (ordered by bound; legend = the bucket's upper bound)."""
    from .grafana import format_value

    ordered = sorted((s for s in series if "le" in s.labels), key=lambda s: _float(s.labels["le"]))
    out, previous = [], None
    for s in ordered:
        values = s.values if previous is None else s.values - previous
        bound = _float(s.labels["le"])
        name = s.name
        if name == s.labels["le"] and math.isfinite(bound):  # the legend is the bare bound: "≤ 100 K"
            name = "≤ " + format_value(bound, "short")
        out.append(Series(name, s.labels, s.times, np.clip(values, 0, None), s.ref))
        previous = s.values
    return out


def _sql(engine: Any, sql: str, fmt: str, ref: str) -> tuple[list[Series], list[pd.DataFrame]]:
    from sqlalchemy import text

    try:
        with engine.connect() as conn:
            result = conn.execute(text(sql))
            frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    except Exception as exc:  # noqa: BLE001 - every database error is the panel's error
        raise QueryError(f"SQL: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    if fmt != "time_series":
        return [], [frame]
    if not {"time", "value"} <= set(frame.columns):
        raise QueryError("SQL time_series target must return columns time and value (and metric)")
    frame["time"] = pd.to_numeric(frame["time"], errors="coerce")
    groups = frame.groupby("metric", sort=True) if "metric" in frame.columns else [("value", frame)]
    return [Series(str(name), {"metric": str(name)}, g["time"].to_numpy(float), g["value"].to_numpy(float), ref)
            for name, g in groups], []  # fmt: skip


def run_targets(panel: dict[str, Any], window: QueryWindow, variables: dict[str, tuple[list[str], dict]], *,
                prometheus: Prometheus | None, engine: Any = None) -> PanelData:
    """Run every target of ``panel`` (see the module docstring).

    Raises:
        QueryError: a target failed, or needs a data source that is not configured (no Prometheus URL, no
            database for SQL).
    """
    from game_analytics.monitoring.sql_dashboards import expand_sql

    data = PanelData()
    targets = [t for t in panel.get("targets") or [] if not t.get("hide")]
    prom_targets = [t for t in targets if t.get("expr")]
    start, end = window.aligned()
    for target in targets:
        ref = target.get("refId", "A")
        if target.get("rawSql"):
            if engine is None:
                raise QueryError("SQL panel: no PostgreSQL database configured (--dsn)")
            # the macros first (they take $__interval as an argument), then the variables
            sql = expand_sql(target["rawSql"], window.start, window.end,
                             interval_seconds=max(1, round(window.interval)), priority="$priority")
            sql = substitute(sql, variables, window, sql=True)
            data.queries.append(sql)
            series, tables = _sql(engine, sql, target.get("format", "table"), ref)
            data.series += series
            data.tables += tables
            continue
        if not target.get("expr"):
            continue
        if prometheus is None:
            raise QueryError("Prometheus panel: no Prometheus URL configured")
        expr = substitute(target["expr"], variables, window)
        data.queries.append(expr)
        if target.get("instant"):
            result = prometheus.query(expr, window.end.timestamp())
        else:
            result = prometheus.query_range(expr, start, end, window.step)
        series = _series(result, target.get("legendFormat"), ref)
        fmt = target.get("format")
        if fmt == "table":
            data.tables.append(_table(series, ref, len(prom_targets) > 1))
        elif fmt == "heatmap":
            data.series += _buckets(series)
        else:
            data.series += series
    return data
