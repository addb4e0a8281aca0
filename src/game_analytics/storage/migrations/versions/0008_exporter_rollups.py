"""The exporter's per-player reads replaced by counts kept by the catch-up (:mod:`game_analytics.storage.derived`):

* ``last_activity_hourly``: players per (game, UTC hour of their newest event); the active players per period are
  sums over it instead of a scan of one ``player_activity`` row per player;
* ``wealth_values``: players per (game, currency, wealth); the Gini and the wealth histogram read one row per
  distinct balance instead of one per player (with a partial index on the values no one holds, which the catch-up
  deletes);
* ``player_activity.prev_at``: the time an update of ``last_at`` replaced, returned by the catch-up's upsert, so
  that moving a player between hours needs no second lookup of its row.

Both are back-filled from the derived tables they count (``player_activity``, ``player_balances``), which hold
exactly the events of ``aggregate_state.snapshot``, so the next catch-up goes on from there.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 14:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL = """
INSERT INTO last_activity_hourly (game, hour, players)
SELECT game, date_trunc('hour', last_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', count(*)
FROM player_activity WHERE last_at IS NOT NULL GROUP BY 1, 2;
INSERT INTO wealth_values (game, currency, wealth, players)
SELECT game, currency, wealth, count(*) FROM player_balances WHERE wealth IS NOT NULL GROUP BY 1, 2, 3
"""


def upgrade() -> None:
    op.create_table(
        "last_activity_hourly",
        sa.Column("game", sa.String(length=64), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("players", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("game", "hour", name=op.f("pk_last_activity_hourly")),
    )
    op.create_table(
        "wealth_values",
        sa.Column("game", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=64), nullable=False),
        sa.Column("wealth", sa.Numeric(), nullable=False),
        sa.Column("players", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("game", "currency", "wealth", name=op.f("pk_wealth_values")),
    )
    op.create_index("ix_wealth_values_unheld", "wealth_values", ["game"], postgresql_where=sa.text("players = 0"))
    op.add_column("player_activity", sa.Column("prev_at", sa.DateTime(timezone=True), nullable=True))
    for statement in BACKFILL.strip().split(";\n"):
        op.execute(statement)


def downgrade() -> None:
    op.drop_column("player_activity", "prev_at")
    op.drop_index("ix_wealth_values_unheld", table_name="wealth_values")
    op.drop_table("wealth_values")
    op.drop_table("last_activity_hourly")
