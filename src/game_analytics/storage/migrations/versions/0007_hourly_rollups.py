"""Hourly rollups of ``events``: ``activity_hourly`` and ``market_hourly`` (maintained by the catch-up in
:mod:`game_analytics.storage.derived`).

They are back-filled from exactly the events the derived tables already include (those visible in
``aggregate_state.snapshot``), so the next catch-up adds the rest once; with no snapshot yet the first catch-up
fills them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 06:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INCLUDED = """e.xact_id < pg_snapshot_xmin(s.snapshot::pg_snapshot)::text::bigint
    OR pg_visible_in_snapshot(e.xact_id::text::xid8, s.snapshot::pg_snapshot)"""
_HOUR = "date_trunc('hour', e.occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"

BACKFILL = f"""
INSERT INTO activity_hourly (game, event_type, hour, events)
SELECT e.game, e.event_type, {_HOUR}, count(*)
FROM events e JOIN aggregate_state s ON s.name = 'players' AND s.snapshot IS NOT NULL
WHERE {_INCLUDED} GROUP BY 1, 2, 3;
INSERT INTO market_hourly (game, kind, currency, hour, events, quantity, value)
SELECT e.game, e.event_type,
       CASE e.event_type WHEN 'purchase' THEN coalesce(e.payload->>'currency', 'USD') ELSE 'item' END, {_HOUR},
       count(*), sum((e.payload->>'quantity')::float8),
       sum(CASE e.event_type WHEN 'purchase' THEN (e.payload->>'amount')::float8
                             ELSE coalesce((e.payload->>'value')::float8, 0) END)
FROM events e JOIN aggregate_state s ON s.name = 'players' AND s.snapshot IS NOT NULL
WHERE e.event_type IN ('purchase', 'trade') AND ({_INCLUDED}) GROUP BY 1, 2, 3, 4
"""


def upgrade() -> None:
    op.create_table(
        "activity_hourly",
        sa.Column("game", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("game", "event_type", "hour", name=op.f("pk_activity_hourly")),
    )
    op.create_table(
        "market_hourly",
        sa.Column("game", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=64), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.Double(), nullable=True),
        sa.Column("value", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("game", "kind", "currency", "hour", name=op.f("pk_market_hourly")),
    )
    for statement in BACKFILL.strip().split(";\n"):
        op.execute(statement)


def downgrade() -> None:
    op.drop_table("market_hourly")
    op.drop_table("activity_hourly")
