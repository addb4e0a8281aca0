"""Initial schema: events, players, matches, ratings, leaderboards, detections, interventions, reports,
the append-only audit log (with its UPDATE/DELETE/TRUNCATE-rejecting trigger) and dead letters.

Revision ID: 0001
Revises:
Create Date: 2026-11-21 23:35:02.855788
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


AUDIT_FUNCTION = """
CREATE FUNCTION audit_log_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % rejected', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$
"""


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=253), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object_ref", sa.String(length=512), nullable=False),
        sa.Column("before", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("after", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_log_hash")),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("stream", sa.String(length=256), nullable=False),
        sa.Column("stream_id", sa.String(length=64), nullable=False),
        sa.Column("raw_payload", sa.LargeBinary(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("field", sa.String(length=256), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
        sa.UniqueConstraint("stream", "stream_id", name=op.f("uq_dead_letters_stream_stream_id")),
    )
    op.create_index(op.f("ix_dead_letters_received_at"), "dead_letters", ["received_at"], unique=False)
    op.create_table(
        "detections",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("rule", sa.String(length=253), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("player_id", sa.String(length=128), nullable=True),
        sa.Column("score", sa.Double(), nullable=False),
        sa.Column("evidence", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_detections")),
    )
    op.create_index(
        op.f("ix_detections_player_id_detected_at"), "detections", ["player_id", "detected_at"], unique=False
    )
    op.create_index(
        op.f("ix_detections_rule_detected_at"), "detections", ["rule", "detected_at"], unique=False
    )
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("player_id", sa.String(length=128), nullable=True),
        sa.Column("game", sa.String(length=64), nullable=False),
        sa.Column("region", sa.String(length=32), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_events_event_id")),
    )
    op.create_index(
        op.f("ix_events_event_type_occurred_at"), "events", ["event_type", "occurred_at"], unique=False
    )
    op.create_index(op.f("ix_events_game_occurred_at"), "events", ["game", "occurred_at"], unique=False)
    op.create_index(
        op.f("ix_events_player_id_occurred_at"), "events", ["player_id", "occurred_at"], unique=False
    )
    op.create_table(
        "leaderboard_entries",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("board", sa.String(length=253), nullable=False),
        sa.Column("season", sa.String(length=32), nullable=False),
        sa.Column("player_id", sa.String(length=128), nullable=False),
        sa.Column("rating", sa.Double(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("percentile", sa.Double(), nullable=False),
        sa.Column("league", sa.String(length=32), nullable=True),
        sa.Column("computed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leaderboard_entries")),
        sa.UniqueConstraint(
            "board", "season", "player_id", name=op.f("uq_leaderboard_entries_board_season_player_id")
        ),
    )
    op.create_index(
        op.f("ix_leaderboard_entries_board_season_rank"),
        "leaderboard_entries",
        ["board", "season", "rank"],
        unique=False,
    )
    op.create_table(
        "matches",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("match_id", sa.String(length=128), nullable=False),
        sa.Column("game", sa.String(length=64), nullable=False),
        sa.Column("season", sa.String(length=32), nullable=False),
        sa.Column("round", sa.Integer(), nullable=True),
        sa.Column("home_id", sa.String(length=128), nullable=False),
        sa.Column("away_id", sa.String(length=128), nullable=False),
        sa.Column("home_score", sa.Integer(), nullable=False),
        sa.Column("away_score", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_matches")),
        sa.UniqueConstraint("match_id", name=op.f("uq_matches_match_id")),
    )
    op.create_index(
        op.f("ix_matches_away_id_occurred_at"), "matches", ["away_id", "occurred_at"], unique=False
    )
    op.create_index(
        op.f("ix_matches_game_season_occurred_at"), "matches", ["game", "season", "occurred_at"], unique=False
    )
    op.create_index(
        op.f("ix_matches_home_id_occurred_at"), "matches", ["home_id", "occurred_at"], unique=False
    )
    op.create_table(
        "players",
        sa.Column("player_id", sa.String(length=128), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=True),
        sa.Column("region", sa.String(length=32), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("player_id", name=op.f("pk_players")),
    )
    op.create_table(
        "rating_history",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("player_id", sa.String(length=128), nullable=False),
        sa.Column("algorithm", sa.String(length=32), nullable=False),
        sa.Column("period", sa.Integer(), nullable=False),
        sa.Column("rating", sa.Double(), nullable=False),
        sa.Column("rd", sa.Double(), nullable=True),
        sa.Column("volatility", sa.Double(), nullable=True),
        sa.Column("job", sa.String(length=253), nullable=True),
        sa.Column("computed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rating_history")),
    )
    op.create_index(
        op.f("ix_rating_history_player_id_algorithm_period"),
        "rating_history",
        ["player_id", "algorithm", "period"],
        unique=False,
    )
    op.create_table(
        "report_runs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("report_name", sa.String(length=253), nullable=False),
        sa.Column("namespace", sa.String(length=63), nullable=False),
        sa.Column("report_type", sa.String(length=64), nullable=False),
        sa.Column("parameters", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_seconds", sa.Double(), nullable=True),
        sa.Column("outcome", sa.String(length=16), server_default="running", nullable=False),
        sa.Column("artifact_bytes", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_runs")),
    )
    op.create_index(
        op.f("ix_report_runs_namespace_report_name_started_at"),
        "report_runs",
        ["namespace", "report_name", "started_at"],
        unique=False,
    )
    op.create_table(
        "interventions",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("detection_id", sa.BigInteger(), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum("open", "in_progress", "resolved", "dismissed", name="intervention_status"),
            server_default="open",
            nullable=False,
        ),
        sa.Column("assignee", sa.String(length=253), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["detection_id"],
            ["detections.id"],
            name=op.f("fk_interventions_detection_id_detections"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interventions")),
    )
    op.create_index(op.f("ix_interventions_detection_id"), "interventions", ["detection_id"], unique=False)
    op.create_index(
        op.f("ix_interventions_status_priority"), "interventions", ["status", "priority"], unique=False
    )
    # The audit log is append-only in the database too: reject row updates/deletes and TRUNCATE.
    op.execute(AUDIT_FUNCTION)
    op.execute(
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_reject_change()"
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_reject_change()"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_interventions_status_priority"), table_name="interventions")
    op.drop_index(op.f("ix_interventions_detection_id"), table_name="interventions")
    op.drop_table("interventions")
    sa.Enum(name="intervention_status").drop(op.get_bind(), checkfirst=True)
    op.drop_index(op.f("ix_report_runs_namespace_report_name_started_at"), table_name="report_runs")
    op.drop_table("report_runs")
    op.drop_index(op.f("ix_rating_history_player_id_algorithm_period"), table_name="rating_history")
    op.drop_table("rating_history")
    op.drop_table("players")
    op.drop_index(op.f("ix_matches_home_id_occurred_at"), table_name="matches")
    op.drop_index(op.f("ix_matches_game_season_occurred_at"), table_name="matches")
    op.drop_index(op.f("ix_matches_away_id_occurred_at"), table_name="matches")
    op.drop_table("matches")
    op.drop_index(op.f("ix_leaderboard_entries_board_season_rank"), table_name="leaderboard_entries")
    op.drop_table("leaderboard_entries")
    op.drop_index(op.f("ix_events_player_id_occurred_at"), table_name="events")
    op.drop_index(op.f("ix_events_game_occurred_at"), table_name="events")
    op.drop_index(op.f("ix_events_event_type_occurred_at"), table_name="events")
    op.drop_table("events")
    op.drop_index(op.f("ix_detections_rule_detected_at"), table_name="detections")
    op.drop_index(op.f("ix_detections_player_id_detected_at"), table_name="detections")
    op.drop_table("detections")
    op.drop_index(op.f("ix_dead_letters_received_at"), table_name="dead_letters")
    op.drop_table("dead_letters")
    op.drop_table("audit_log")  # drops its triggers
    op.execute("DROP FUNCTION audit_log_reject_change()")
