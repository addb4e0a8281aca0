"""Questions about ``events`` as a whole: the newest event time (the clock of replayed data)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, text

from game_analytics.events import EVENT_TYPES

from .filters import ALL, Bind, Filters, clauses

__all__ = ["latest_event_time"]


def latest_event_time(bind: Bind, filters: Filters = ALL) -> datetime | None:
    """Newest ``occurred_at`` (UTC) of the events matching ``filters`` (events without a player included), or
    None when there is none.  One index probe per event type (index ``event_type, occurred_at``)."""
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return latest_event_time(conn, filters)
    more, params = clauses(filters, "e", event_types=False)
    types = list(filters.event_types) or list(EVENT_TYPES)
    sql = f"""SELECT max(t) FROM (SELECT (SELECT max(e.occurred_at) FROM events e WHERE e.event_type = et{more})
                                  AS t FROM unnest(CAST(:types AS text[])) AS et) AS per_type"""
    latest = bind.execute(text(sql), {**params, "types": types}).scalar_one()
    return None if latest is None else latest.astimezone(UTC)
