"""``event_ids``: one row per stored ``event_id``, so that an event is stored once whatever its ``occurred_at``.

The primary key of the partitioned ``events`` must hold the partition key, ``(event_id, occurred_at)``, so an
``event_id`` re-sent with another time (a publisher that stamps the time again on retry, seconds against
milliseconds) was a second row. ``event_ids`` is not partitioned: its primary key ``event_id`` is global. The
ingest path (``workers/batches.py``) writes it in the same transaction as ``events`` and stores only the events
whose id it inserted; the retention (``storage/partitions.py``) deletes the ids of the dropped times, by the BRIN
index on ``occurred_at``. Back-filled from ``events``: the first stored row (lowest ``id``) of each ``event_id``;
ids stored twice before this migration keep both rows.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 18:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL = """
INSERT INTO event_ids (event_id, occurred_at)
SELECT DISTINCT ON (event_id) event_id, occurred_at FROM events ORDER BY event_id, id
"""


def upgrade() -> None:
    op.create_table(
        "event_ids",
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_event_ids")),
    )
    op.create_index(op.f("ix_event_ids_occurred_at"), "event_ids", ["occurred_at"], postgresql_using="brin")
    op.execute(BACKFILL)


def downgrade() -> None:
    op.drop_index(op.f("ix_event_ids_occurred_at"), table_name="event_ids", postgresql_using="brin")
    op.drop_table("event_ids")
