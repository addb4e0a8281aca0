"""The on-call workflow: audited intervention changes, repeat offences linked to their case, searchable audit log.

- ``audit_log``: optional ``justification``, ``approver``, ``source`` and ``context`` (hashed when not NULL, so
  older rows keep their hashes) and indexes for ``audit search`` (time, actor, action, target).
- ``interventions``: ``version`` (optimistic concurrency), who acknowledged / resolved and when, and the
  occurrence count with first and last seen (existing cases: one occurrence at their creation time).
- ``detections.intervention_id``: the case a detection belongs to (existing detections: the case they opened).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 05:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)
AUDIT_INDEXES = (("at",), ("actor", "at"), ("action", "at"), ("object_ref", "at"))


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("justification", sa.Text(), nullable=True))
    op.add_column("audit_log", sa.Column("approver", sa.String(length=253), nullable=True))
    op.add_column("audit_log", sa.Column("source", sa.String(length=32), nullable=True))
    op.add_column("audit_log", sa.Column("context", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    for columns in AUDIT_INDEXES:
        op.create_index(f"ix_audit_log_{'_'.join(columns)}", "audit_log", list(columns), unique=False)

    op.add_column("interventions", sa.Column("version", sa.Integer(), server_default="1", nullable=False))
    op.add_column("interventions", sa.Column("acknowledged_at", TZ, nullable=True))
    op.add_column("interventions", sa.Column("acknowledged_by", sa.String(length=253), nullable=True))
    op.add_column("interventions", sa.Column("resolved_by", sa.String(length=253), nullable=True))
    op.add_column("interventions", sa.Column("occurrences", sa.Integer(), server_default="1", nullable=False))
    op.add_column("interventions", sa.Column("first_seen_at", TZ, server_default=sa.text("now()"), nullable=False))
    op.add_column("interventions", sa.Column("last_seen_at", TZ, server_default=sa.text("now()"), nullable=False))
    op.execute("UPDATE interventions SET first_seen_at = created_at, last_seen_at = created_at")

    op.add_column("detections", sa.Column("intervention_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_detections_intervention_id_interventions"), "detections", "interventions",
        ["intervention_id"], ["id"], ondelete="RESTRICT",
    )  # fmt: skip
    op.create_index(
        op.f("ix_detections_intervention_id_detected_at"), "detections", ["intervention_id", "detected_at"]
    )
    op.execute("UPDATE detections d SET intervention_id = i.id FROM interventions i WHERE i.detection_id = d.id")


def downgrade() -> None:
    op.drop_index(op.f("ix_detections_intervention_id_detected_at"), table_name="detections")
    op.drop_constraint(op.f("fk_detections_intervention_id_interventions"), "detections", type_="foreignkey")
    op.drop_column("detections", "intervention_id")
    for column in ("last_seen_at", "first_seen_at", "occurrences", "resolved_by", "acknowledged_by",
                   "acknowledged_at", "version"):  # fmt: skip
        op.drop_column("interventions", column)
    for columns in reversed(AUDIT_INDEXES):
        op.drop_index(f"ix_audit_log_{'_'.join(columns)}", table_name="audit_log")
    for column in ("context", "source", "approver", "justification"):
        op.drop_column("audit_log", column)
