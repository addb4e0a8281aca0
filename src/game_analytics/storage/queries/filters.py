"""The one filter type of every query over ``events``, its SQL clauses, and query -> DataFrame.

Security rule of the query layer: a filter *value* never becomes part of an SQL string.  The clauses built here
are fixed text chosen from the filter *names* (``e.game = ANY(CAST(:f_games AS text[]))``); the values travel
separately as bound parameters (PostgreSQL extended protocol through psycopg), so a value such as
``'; DROP TABLE events; --`` is just a string that matches no game.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, text

__all__ = ["ALL", "Bind", "Filters", "clauses", "fetch_frame", "player_clause", "where"]

#: what the query functions accept: a connection (the caller's transaction) or an engine (one connection per call)
Bind = Connection | Engine


@dataclass(frozen=True)
class Filters:
    """Which events a query looks at.

    Attributes:
        start, end: half-open range ``[start, end)`` of ``occurred_at`` (timezone-aware); None = unbounded.
        games: only these games (empty = all).
        regions: only these regions (empty = all).
        event_types: only these event types (empty = all).
    """

    start: datetime | None = None
    end: datetime | None = None
    games: Sequence[str] = field(default_factory=tuple)
    regions: Sequence[str] = field(default_factory=tuple)
    event_types: Sequence[str] = field(default_factory=tuple)

    @classmethod
    def of(cls, filters: Any, start: datetime | None = None, end: datetime | None = None) -> Filters:
        """The query filters of anything with ``games``/``regions``/``event_types`` attributes (e.g. a
        ScheduledReport's ``ReportFilters``), restricted to ``[start, end)``."""
        return cls(start, end, tuple(filters.games), tuple(filters.regions), tuple(filters.event_types))

    def between(self, start: datetime | None, end: datetime | None) -> Filters:
        """The same filters over ``[start, end)``."""
        return replace(self, start=start, end=end)


#: no filter: every event with a player
ALL = Filters()

_LISTS = (("game", "games"), ("region", "regions"), ("event_type", "event_types"))


def clauses(filters: Filters, alias: str = "e", *, prefix: str = "f", event_types: bool = True,
            times: bool = True) -> tuple[str, dict[str, Any]]:  # fmt: skip
    """``" AND ..."`` conditions (``""`` when nothing is filtered) restricting rows of ``events`` aliased
    ``alias`` to ``filters``, and their bound parameters (``<prefix>_games``, ``<prefix>_regions``,
    ``<prefix>_event_types`` as text arrays; ``<prefix>_start``, ``<prefix>_end``).

    ``event_types=False`` / ``times=False`` leave those filters out (for callers that choose the types or the
    time range themselves).
    """
    parts: list[str] = []
    params: dict[str, Any] = {}
    if times and filters.start is not None:
        parts.append(f"{alias}.occurred_at >= :{prefix}_start")
        params[f"{prefix}_start"] = filters.start
    if times and filters.end is not None:
        parts.append(f"{alias}.occurred_at < :{prefix}_end")
        params[f"{prefix}_end"] = filters.end
    for column, name in _LISTS:
        values = getattr(filters, name)
        if values and (event_types or name != "event_types"):
            parts.append(f"{alias}.{column} = ANY(CAST(:{prefix}_{name} AS text[]))")
            params[f"{prefix}_{name}"] = list(values)
    return "".join(f" AND {p}" for p in parts), params


def where(filters: Filters, alias: str = "e", *, prefix: str = "f") -> tuple[str, dict[str, Any]]:
    """The whole condition for the events of players (``player_id IS NOT NULL``) matching ``filters``, and its
    parameters: :func:`clauses` behind the player condition."""
    more, params = clauses(filters, alias, prefix=prefix)
    return f"{alias}.player_id IS NOT NULL{more}", params


def player_clause(filters: Filters, column: str) -> tuple[str, dict[str, Any]]:
    """``" AND ..."`` clause keeping rows whose player (``column``, e.g. ``d.player_id``) has at least one event
    matching the ``games`` / ``regions`` filters; for tables without game or region columns (detections,
    ratings).  Returns ``("", {})`` when neither filter is set."""
    clause, params = clauses(filters, "fe", event_types=False, times=False)
    if not clause:
        return "", {}
    return f" AND EXISTS (SELECT 1 FROM events fe WHERE fe.player_id = {column}{clause})", params


def fetch_frame(bind: Bind, sql: str, params: Mapping[str, Any]) -> pd.DataFrame:
    """Run ``sql`` with bound ``params`` and return the rows as a DataFrame (columns in SELECT order).

    ``numeric`` results (``Decimal``, e.g. from ``sum(bigint)`` or ``extract(epoch ...)``) become float64.
    """
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return fetch_frame(conn, sql, params)
    result = bind.execute(text(sql), dict(params))
    columns = list(result.keys())
    # plain tuples: given SQLAlchemy Rows, pandas probes each row's attributes (20 s of a 62 s report over 3.3M
    # purchase days, cProfile)
    frame = pd.DataFrame.from_records([tuple(row) for row in result.fetchall()], columns=columns)
    for column in frame.columns:
        values = frame[column].dropna()
        if len(values) and isinstance(values.iloc[0], Decimal):
            frame[column] = frame[column].astype("float64")
    return frame
