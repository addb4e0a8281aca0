"""Per-player running aggregates for the exporter: ``events.xact_id``, ``player_balances``, ``player_activity``,
``aggregate_state``.

``events.xact_id`` is the (64-bit, epoch-extended) id of the transaction that stored the row
(``pg_current_xact_id()``), indexed, so that "rows committed since snapshot S" is an index range scan
(``xact_id >= pg_snapshot_xmin(S) AND NOT pg_visible_in_snapshot(xact_id, S)``) that never misses a row committed
late by a long transaction, unlike a high-water mark on ``id`` or ``ingested_at``.  Existing rows get the
migration's transaction id: the first catch-up processes them all.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

XACT_ID_DEFAULT = "((pg_current_xact_id())::text)::bigint"


def upgrade() -> None:
    op.add_column(
        "events",
        sa.Column("xact_id", sa.BigInteger(), server_default=sa.text(XACT_ID_DEFAULT), nullable=False),
    )
    op.create_index(op.f("ix_events_xact_id"), "events", ["xact_id"], unique=False)
    op.create_table(
        "player_balances",
        sa.Column("game", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=64), nullable=False),
        sa.Column("player_id", sa.String(length=128), nullable=False),
        sa.Column("wealth", sa.Numeric(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("game", "currency", "player_id", name=op.f("pk_player_balances")),
    )
    op.create_table(
        "player_activity",
        sa.Column("game", sa.String(length=64), nullable=False),
        sa.Column("player_id", sa.String(length=128), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("game", "player_id", name=op.f("pk_player_activity")),
    )
    op.create_index(op.f("ix_player_activity_game_last_at"), "player_activity", ["game", "last_at"], unique=False)
    op.create_table(
        "aggregate_state",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("snapshot", sa.Text(), nullable=True),
        sa.Column("events", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_aggregate_state")),
    )
    op.create_index(
        "ix_leaderboard_entries_board_computed_at_season", "leaderboard_entries", ["board", "computed_at", "season"]
    )


def downgrade() -> None:
    op.drop_index("ix_leaderboard_entries_board_computed_at_season", table_name="leaderboard_entries")
    op.drop_table("aggregate_state")
    op.drop_index(op.f("ix_player_activity_game_last_at"), table_name="player_activity")
    op.drop_table("player_activity")
    op.drop_table("player_balances")
    op.drop_index(op.f("ix_events_xact_id"), table_name="events")
    op.drop_column("events", "xact_id")
