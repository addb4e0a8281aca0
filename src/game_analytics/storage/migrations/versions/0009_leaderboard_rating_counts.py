"""The exporter's rating buckets from counts kept at write time instead of a scan of every leaderboard row.

``leaderboard_rating_counts`` holds, per (board, season, league, ``ceil(rating)``), how many leaderboard rows there
are and the exact sum of their ratings.  Statement-level triggers on ``leaderboard_entries`` (with transition
tables: one grouped upsert per statement, not per row) keep it equal to the table whatever writes it - the ranking
worker's ``leaderboard.write_entries``, a restore, a hand-made fix - and a ``TRUNCATE`` empties it too.  The
exporter's ``rating_buckets`` then reads a few thousand count rows per board instead of 1M entries at 1M players.

Why ``ceil(rating)``: for an integer bound ``b``, ``rating <= b`` exactly when ``ceil(rating) <= b``, so every
integer-bounded bucket set (``monitoring.names.RATING_BUCKETS``) is a sum of these counts and the bounds stay in one
place, the exporter's.  The sum is ``numeric``: a double cast to numeric is always the same value, so adding a row
and removing it later cancels exactly (a double sum would drift over many ranking runs).  The league is ``''`` for
rows without one (a primary key column cannot be NULL).

Back-filled from the existing ``leaderboard_entries``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ADD = """
    INSERT INTO leaderboard_rating_counts AS c (board, season, league, rating_ceil, players, rating_sum)
    SELECT board, season, coalesce(league, ''), ceil(rating), {sign} count(*), {sign} sum(rating::numeric)
    FROM {rows} GROUP BY 1, 2, 3, 4
    ON CONFLICT (board, season, league, rating_ceil) DO UPDATE
    SET players = c.players + EXCLUDED.players, rating_sum = c.rating_sum + EXCLUDED.rating_sum;"""

_PRUNE = """
    DELETE FROM leaderboard_rating_counts c USING (SELECT DISTINCT board, season FROM {rows}) AS t
    WHERE c.board = t.board AND c.season = t.season AND c.players = 0;"""

FUNCTION = f"""
CREATE FUNCTION leaderboard_rating_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        TRUNCATE leaderboard_rating_counts;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN{_ADD.format(sign="-", rows="old_rows")}
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN{_ADD.format(sign="", rows="new_rows")}
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN  -- only a subtraction leaves a count at 0{_PRUNE.format(rows="old_rows")}
    END IF;
    RETURN NULL;
END $$
"""

TRIGGERS = {
    "insert": "AFTER INSERT ON leaderboard_entries REFERENCING NEW TABLE AS new_rows",
    "update": "AFTER UPDATE ON leaderboard_entries REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "delete": "AFTER DELETE ON leaderboard_entries REFERENCING OLD TABLE AS old_rows",
}

BACKFILL = """
INSERT INTO leaderboard_rating_counts (board, season, league, rating_ceil, players, rating_sum)
SELECT board, season, coalesce(league, ''), ceil(rating), count(*), sum(rating::numeric)
FROM leaderboard_entries GROUP BY 1, 2, 3, 4
"""


def upgrade() -> None:
    op.create_table(
        "leaderboard_rating_counts",
        sa.Column("board", sa.String(length=253), nullable=False),
        sa.Column("season", sa.String(length=32), nullable=False),
        sa.Column("league", sa.String(length=32), nullable=False),
        sa.Column("rating_ceil", sa.Double(), nullable=False),
        sa.Column("players", sa.BigInteger(), nullable=False),
        sa.Column("rating_sum", sa.Numeric(), nullable=False),
        sa.PrimaryKeyConstraint("board", "season", "league", "rating_ceil", name=op.f("pk_leaderboard_rating_counts")),
    )
    op.execute(FUNCTION)
    for event, clause in TRIGGERS.items():
        op.execute(f"CREATE TRIGGER leaderboard_rating_counts_{event} {clause} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION leaderboard_rating_counts_apply()")
    op.execute("CREATE TRIGGER leaderboard_rating_counts_truncate AFTER TRUNCATE ON leaderboard_entries "
               "FOR EACH STATEMENT EXECUTE FUNCTION leaderboard_rating_counts_apply()")
    # CREATE TRIGGER holds a SHARE ROW EXCLUSIVE lock on leaderboard_entries until the migration commits: no write
    # falls between the triggers and the back-fill
    op.execute(BACKFILL)


def downgrade() -> None:
    for event in (*TRIGGERS, "truncate"):
        op.execute(f"DROP TRIGGER leaderboard_rating_counts_{event} ON leaderboard_entries")
    op.execute("DROP FUNCTION leaderboard_rating_counts_apply()")
    op.drop_table("leaderboard_rating_counts")
