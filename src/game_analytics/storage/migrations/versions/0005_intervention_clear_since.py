"""Auto-resolve: ``interventions.clear_since``, when the detection worker first found the case's subject no
longer flagged by its rule (NULL while it is flagged, or when the rule has no ``autoResolveAfter``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 05:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("interventions", sa.Column("clear_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("interventions", "clear_since")
