"""SQL helpers for the report builders: filter clauses with bound parameters, and query -> DataFrame.

Security rule of this package: a filter *value* never becomes part of an SQL string.  The clauses built here are
fixed text chosen from the filter *names* (``e.game = ANY(:games)``); the values travel separately as bound
parameters (PostgreSQL extended protocol through psycopg), so a value such as ``'; DROP TABLE events; --`` is just
a string that matches no game.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import Connection, text

from ..api.scheduledreport import ReportFilters

__all__ = ["event_filter_sql", "fetch_frame", "player_filter_sql"]


def event_filter_sql(filters: ReportFilters, alias: str = "e", *, event_types: bool = True) -> tuple[str, dict[str, Any]]:
    """``AND ...`` clauses restricting rows of ``events`` (aliased ``alias``) to the filters, and their parameters.

    Returns ``("", {})`` when no filter is set. Parameter names: ``f_games``, ``f_regions``, ``f_event_types``
    (text arrays).
    """
    clauses, params = [], {}
    if filters.games:
        clauses.append(f"{alias}.game = ANY(CAST(:f_games AS text[]))")
        params["f_games"] = list(filters.games)
    if filters.regions:
        clauses.append(f"{alias}.region = ANY(CAST(:f_regions AS text[]))")
        params["f_regions"] = list(filters.regions)
    if event_types and filters.event_types:
        clauses.append(f"{alias}.event_type = ANY(CAST(:f_event_types AS text[]))")
        params["f_event_types"] = list(filters.event_types)
    return "".join(f" AND {c}" for c in clauses), params


def player_filter_sql(filters: ReportFilters, column: str) -> tuple[str, dict[str, Any]]:
    """``AND ...`` clause keeping rows whose player (``column``, e.g. ``d.player_id``) has at least one event
    matching the ``games`` / ``regions`` filters; for tables without game or region columns (detections, ratings).

    Returns ``("", {})`` when neither filter is set.
    """
    clause, params = event_filter_sql(filters, "fe", event_types=False)
    if not clause:
        return "", {}
    return f" AND EXISTS (SELECT 1 FROM events fe WHERE fe.player_id = {column}{clause})", params


def fetch_frame(conn: Connection, sql: str, params: Mapping[str, Any]) -> pd.DataFrame:
    """Run ``sql`` with bound ``params`` and return the rows as a DataFrame (columns in SELECT order).

    ``numeric`` results (``Decimal``, e.g. from ``sum(bigint)`` or ``extract(epoch ...)``) become float64.
    """
    result = conn.execute(text(sql), dict(params))
    frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    for column in frame.columns:
        values = frame[column].dropna()
        if len(values) and isinstance(values.iloc[0], Decimal):
            frame[column] = frame[column].astype("float64")
    return frame
