"""SQLAlchemy 2 ORM models: the relational schema of the analytics store (PostgreSQL).

The Alembic migrations in :mod:`game_analytics.storage.migrations` create exactly this schema (a test compares them
with ``alembic.autogenerate.compare_metadata``).  All timestamps are ``timestamptz``; JSON documents are ``jsonb``.

Tables:
    events               raw gameplay/commerce events, partitioned by ``occurred_at`` (see ``storage.partitions``),
                         unique by ``(event_id, occurred_at)`` (idempotent ingest)
    players              one row per player seen, with first/last activity
    matches              match results (home/away participants and scores) feeding the rating workers
    rating_history       rating trajectory per player, algorithm and rating period
    leaderboard_entries  ranked boards per season with percentile and league
    leaderboard_rating_counts  leaderboard rows per (board, season, league, ceil(rating)), kept by triggers
    detections           anomaly / rule detections with their evidence, linked to the case they belong to
    interventions        the human work queue (cases) created from detections
    report_runs          one row per ScheduledReport execution
    audit_log            append-only, hash-chained audit trail (see :mod:`game_analytics.audit`)
    dead_letters         stream entries rejected by the ingest worker, with the reason
    player_balances      running wealth per (game, currency, player), maintained from ``events`` by the exporter
    player_activity      last event time per (game, player), likewise
    aggregate_state      the snapshot up to which those aggregates include ``events`` (see ``Event.xact_id``)
    activity_hourly      events per (game, event type, UTC hour), likewise (storage/derived.py)
    market_hourly        purchases and trades per (game, kind, currency, UTC hour): count, quantity, value
    session_logins       logins per (game, region), all time (storage/derived.py)
    session_lengths      finished sessions per (game, whole seconds of length): count, sum of lengths
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Double,
    Enum,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AggregateState",
    "AuditLogEntry",
    "Base",
    "DeadLetter",
    "Detection",
    "Event",
    "Intervention",
    "InterventionStatus",
    "ActivityHourly",
    "LastActivityHourly",
    "LeaderboardEntry",
    "MarketHourly",
    "Match",
    "Player",
    "PlayerActivity",
    "PlayerBalance",
    "RatingHistory",
    "ReportRun",
    "WealthValue",
]

#: Deterministic constraint names, so that migrations and models agree and can be dropped by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TZ = DateTime(timezone=True)


class Base(DeclarativeBase):
    """Declarative base carrying the shared :class:`~sqlalchemy.MetaData` with the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Event(Base):
    """A validated event (see :mod:`game_analytics.events`); ``payload`` holds the type-specific fields.

    ``xact_id`` is the 64-bit id of the transaction that stored the row (``pg_current_xact_id()``, set by the
    server): the rows committed since a snapshot ``S`` are exactly those with ``xact_id >= pg_snapshot_xmin(S)``
    not visible in ``S``, which lets running aggregates catch up without rescanning the table.

    The primary key ``(event_id, occurred_at)`` holds the partition key (PostgreSQL requires it of a unique key
    on a partitioned table); a replayed event has the same time as its original, so it conflicts in its partition.
    """

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False))  # storing order; not unique by itself
    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime] = mapped_column(TZ, primary_key=True)
    player_id: Mapped[str | None] = mapped_column(String(128))
    game: Mapped[str] = mapped_column(String(64))
    region: Mapped[str | None] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    ingested_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())
    xact_id: Mapped[int] = mapped_column(BigInteger, server_default=text("((pg_current_xact_id())::text)::bigint"))

    # Partitioned by time (storage/partitions.py); each index is named in docs/scaling.md with the query needing it.
    __table_args__ = (
        Index(None, "player_id", "occurred_at"),
        Index(None, "event_type", "occurred_at"),
        Index(None, "xact_id"),
        Index(None, "occurred_at", postgresql_using="brin"),
        {"postgresql_partition_by": "RANGE (occurred_at)"},
    )


class EventId(Base):
    """Each stored ``event_id`` once, with the ``occurred_at`` it was stored under (migration 0010).

    ``events`` cannot hold a unique key on ``event_id`` alone (a partitioned table's unique keys contain its
    partition key), so this unpartitioned table does: the ingest path stores an event only if its id is new here
    (:func:`game_analytics.workers.batches.write_batch`), so an id re-sent with another time is a duplicate, not
    a second row. The retention deletes the ids older than the cutoff with their partitions.
    """

    __tablename__ = "event_ids"

    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(TZ)

    __table_args__ = (Index(None, "occurred_at", postgresql_using="brin"),)


class Player(Base):
    """A player (or team, for team sports data) with the time span of its activity."""

    __tablename__ = "players"

    player_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    display_name: Mapped[str | None] = mapped_column(String(256))
    region: Mapped[str | None] = mapped_column(String(32))
    first_seen_at: Mapped[datetime | None] = mapped_column(TZ)
    last_seen_at: Mapped[datetime | None] = mapped_column(TZ)
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())


class Match(Base):
    """A finished match between a home and an away participant; ``match_id`` is the source event id."""

    __tablename__ = "matches"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    match_id: Mapped[str] = mapped_column(String(128), unique=True)
    game: Mapped[str] = mapped_column(String(64))
    season: Mapped[str] = mapped_column(String(32))
    round: Mapped[int | None] = mapped_column(Integer)
    home_id: Mapped[str] = mapped_column(String(128))
    away_id: Mapped[str] = mapped_column(String(128))
    home_score: Mapped[int] = mapped_column(Integer)
    away_score: Mapped[int] = mapped_column(Integer)
    occurred_at: Mapped[datetime] = mapped_column(TZ)

    __table_args__ = (
        Index(None, "game", "season", "occurred_at"),
        Index(None, "home_id", "occurred_at"),
        Index(None, "away_id", "occurred_at"),
    )


class RatingHistory(Base):
    """A player's rating after rating period ``period`` (an ordinal such as a season year) under ``algorithm``.

    ``rd`` (rating deviation) and ``volatility`` are Glicko-2 quantities (Glickman 2013); for other algorithms
    ``rd`` holds the uncertainty (e.g. OpenSkill sigma) and ``volatility`` may be NULL.
    """

    __tablename__ = "rating_history"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    player_id: Mapped[str] = mapped_column(String(128))
    algorithm: Mapped[str] = mapped_column(String(32))
    period: Mapped[int] = mapped_column(Integer)
    rating: Mapped[float] = mapped_column(Double)
    rd: Mapped[float | None] = mapped_column(Double)
    volatility: Mapped[float | None] = mapped_column(Double)
    job: Mapped[str | None] = mapped_column(String(253))
    computed_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())

    __table_args__ = (Index(None, "player_id", "algorithm", "period"),)


class LeaderboardEntry(Base):
    """One ranked row of leaderboard ``board`` for ``season``; ``percentile`` in [0, 100], 100 = best."""

    __tablename__ = "leaderboard_entries"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    board: Mapped[str] = mapped_column(String(253))
    season: Mapped[str] = mapped_column(String(32))
    player_id: Mapped[str] = mapped_column(String(128))
    rating: Mapped[float] = mapped_column(Double)
    rank: Mapped[int] = mapped_column(Integer)
    percentile: Mapped[float] = mapped_column(Double)
    league: Mapped[str | None] = mapped_column(String(32))
    computed_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())

    __table_args__ = (
        UniqueConstraint("board", "season", "player_id"),
        Index(None, "board", "season", "rank"),
        Index(None, "board", "computed_at", "season"),
    )


class Detection(Base):
    """A detection produced by an AlertRule / anomaly rule; ``evidence`` holds the figures that triggered it.

    ``intervention_id`` is the case the detection belongs to: the case it opened, or the already open case of the
    same rule and subject it repeats (an occurrence; see :mod:`game_analytics.interventions.service`).
    """

    __tablename__ = "detections"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    rule: Mapped[str] = mapped_column(String(253))
    category: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    player_id: Mapped[str | None] = mapped_column(String(128))
    score: Mapped[float] = mapped_column(Double)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    detected_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())
    intervention_id: Mapped[int | None] = mapped_column(
        ForeignKey("interventions.id", ondelete="RESTRICT", use_alter=True)
    )

    __table_args__ = (
        Index(None, "rule", "detected_at"),
        Index(None, "player_id", "detected_at"),
        Index(None, "intervention_id", "detected_at"),
    )


class InterventionStatus(enum.StrEnum):
    """Life cycle of an intervention: open -> in_progress (acknowledged) -> resolved; a resolved case can be
    reopened.  ``dismissed`` is kept for older rows (the CLI resolves as ``false-positive`` instead)."""

    OPEN = "open"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    DISMISSED = "dismissed"


class Intervention(Base):
    """A case of the work queue, opened by the detection ``detection_id``; lower ``priority`` numbers first.

    ``occurrences`` counts the detections linked to the case (``detections.intervention_id``), seen from
    ``first_seen_at`` to ``last_seen_at``.  ``version`` grows by one with every change (optimistic concurrency:
    ``--if-version``); every change is audited (see :mod:`game_analytics.interventions.service`).
    """

    __tablename__ = "interventions"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    detection_id: Mapped[int] = mapped_column(ForeignKey("detections.id", ondelete="RESTRICT"))
    priority: Mapped[int] = mapped_column(SmallInteger)
    category: Mapped[str] = mapped_column(String(64))
    status: Mapped[InterventionStatus] = mapped_column(
        Enum(
            InterventionStatus,
            name="intervention_status",
            values_callable=lambda members: [m.value for m in members],
        ),
        server_default=InterventionStatus.OPEN.value,
    )
    assignee: Mapped[str | None] = mapped_column(String(253))
    resolution: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())
    resolved_at: Mapped[datetime | None] = mapped_column(TZ)
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    acknowledged_at: Mapped[datetime | None] = mapped_column(TZ)
    acknowledged_by: Mapped[str | None] = mapped_column(String(253))
    resolved_by: Mapped[str | None] = mapped_column(String(253))
    occurrences: Mapped[int] = mapped_column(Integer, server_default="1")
    first_seen_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())
    #: When the detection worker first found the subject no longer flagged (auto-resolve; NULL while flagged).
    clear_since: Mapped[datetime | None] = mapped_column(TZ)

    __table_args__ = (
        Index(None, "status", "priority"),
        Index(None, "detection_id"),
    )


class ReportRun(Base):
    """One execution of a ScheduledReport; ``outcome`` is ``running``, ``succeeded`` or ``failed``."""

    __tablename__ = "report_runs"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    report_name: Mapped[str] = mapped_column(String(253))
    namespace: Mapped[str] = mapped_column(String(63))
    report_type: Mapped[str] = mapped_column(String(64))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    started_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(TZ)
    duration_seconds: Mapped[float | None] = mapped_column(Double)
    outcome: Mapped[str] = mapped_column(String(16), server_default="running")
    artifact_bytes: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index(None, "namespace", "report_name", "started_at"),)


class AuditLogEntry(Base):
    """A row of the append-only, hash-chained audit log (written only through :mod:`game_analytics.audit`).

    ``hash`` = SHA-256 (hex) over the canonical JSON of the row content and ``prev_hash``; a database trigger
    created by the migration rejects UPDATE, DELETE and TRUNCATE.  ``object_ref`` is the target (e.g.
    ``intervention/42``); ``source`` is ``cli``, ``worker`` or ``operator``; ``context`` the request context.
    """

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(TZ)
    actor: Mapped[str] = mapped_column(String(253))
    action: Mapped[str] = mapped_column(String(64))
    object_ref: Mapped[str] = mapped_column(String(512))
    before: Mapped[Any | None] = mapped_column(JSONB)
    after: Mapped[Any | None] = mapped_column(JSONB)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    justification: Mapped[str | None] = mapped_column(Text)
    approver: Mapped[str | None] = mapped_column(String(253))
    source: Mapped[str | None] = mapped_column(String(32))
    context: Mapped[Any | None] = mapped_column(JSONB)

    __table_args__ = (
        Index(None, "at"),
        Index(None, "actor", "at"),
        Index(None, "action", "at"),
        Index(None, "object_ref", "at"),
    )


class DeadLetter(Base):
    """A rejected stream entry: the raw bytes, why it was rejected and, when known, the offending field."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    stream: Mapped[str] = mapped_column(String(256))
    stream_id: Mapped[str] = mapped_column(String(64))
    raw_payload: Mapped[bytes] = mapped_column(LargeBinary)
    reason: Mapped[str] = mapped_column(Text)
    field: Mapped[str | None] = mapped_column(String(256))
    received_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())

    __table_args__ = (
        UniqueConstraint("stream", "stream_id"),
        Index(None, "received_at"),
    )


class PlayerBalance(Base):
    """Running wealth of a player in a (game, currency): the exact (``numeric``) sum of the ``purchase.amount`` and
    ``currency_change.delta`` flows of the ``events`` included so far, and how many such events there were.

    Maintained incrementally (see :mod:`game_analytics.storage.queries.economy`); the wealth definition is the one of
    ``economy.wealth_sql``.
    """

    __tablename__ = "player_balances"

    game: Mapped[str] = mapped_column(String(64), primary_key=True)
    currency: Mapped[str] = mapped_column(String(64), primary_key=True)
    player_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    wealth: Mapped[Any] = mapped_column(Numeric)
    events: Mapped[int] = mapped_column(BigInteger)


class PlayerActivity(Base):
    """Time of the newest event of a player in a game among the ``events`` included so far."""

    __tablename__ = "player_activity"

    game: Mapped[str] = mapped_column(String(64), primary_key=True)
    player_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    last_at: Mapped[datetime] = mapped_column(TZ)
    #: ``last_at`` before the catch-up that last changed this row (NULL until then): how the catch-up moves the
    #: player between hours of ``last_activity_hourly`` without a second lookup
    prev_at: Mapped[datetime | None] = mapped_column(TZ)

    __table_args__ = (Index(None, "game", "last_at"),)


class AggregateState(Base):
    """Bookkeeping of the running aggregates: ``snapshot`` (a ``pg_snapshot`` as text; NULL = nothing included
    yet) is the snapshot whose visible ``events`` they include; ``events`` counts the rows included so far."""

    __tablename__ = "aggregate_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    snapshot: Mapped[str | None] = mapped_column(Text)
    events: Mapped[int] = mapped_column(BigInteger, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(TZ, server_default=func.now())


class ActivityHourly(Base):
    """Hourly rollup of ``events``: how many events of ``event_type`` a game had in the UTC hour starting at
    ``hour``.  Maintained by the catch-up (:mod:`game_analytics.storage.derived`); outlives the retention."""

    __tablename__ = "activity_hourly"

    game: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    hour: Mapped[datetime] = mapped_column(TZ, primary_key=True)
    events: Mapped[int] = mapped_column(BigInteger)


class LastActivityHourly(Base):
    """How many players of a game have their newest event (``player_activity.last_at``) in the UTC hour starting at
    ``hour``; a newer event moves a player to a later hour.  Maintained by the catch-up; read by the exporter's
    active players per period (:func:`game_analytics.storage.queries.rollups.active_players_by_period`)."""

    __tablename__ = "last_activity_hourly"

    game: Mapped[str] = mapped_column(String(64), primary_key=True)
    hour: Mapped[datetime] = mapped_column(TZ, primary_key=True)
    players: Mapped[int] = mapped_column(BigInteger)


class LeaderboardRatingCount(Base):
    """How many ``leaderboard_entries`` rows of a (board, season, league) have ``ceil(rating) = rating_ceil``, and
    the exact sum of their ratings.  Kept equal to ``leaderboard_entries`` by statement triggers on it (migration
    0009); read by the exporter's rating buckets (:func:`game_analytics.storage.queries.ratings.rating_buckets`),
    whose integer bounds are sums of these rows.  ``league`` is ``''`` for rows without one."""

    __tablename__ = "leaderboard_rating_counts"

    board: Mapped[str] = mapped_column(String(253), primary_key=True)
    season: Mapped[str] = mapped_column(String(32), primary_key=True)
    league: Mapped[str] = mapped_column(String(32), primary_key=True)
    rating_ceil: Mapped[float] = mapped_column(Double, primary_key=True)
    players: Mapped[int] = mapped_column(BigInteger)
    rating_sum: Mapped[Any] = mapped_column(Numeric)


class SessionLogins(Base):
    """How many ``login`` events a game had in a region (``'unknown'`` for events without one), all time.
    Maintained by the catch-up (migration 0011); read by the exporter's ``sessions_total``
    (:func:`game_analytics.storage.queries.sessions.logins_by_region`)."""

    __tablename__ = "session_logins"

    game: Mapped[str] = mapped_column(String(64), primary_key=True)
    region: Mapped[str] = mapped_column(String(32), primary_key=True)
    logins: Mapped[int] = mapped_column(BigInteger)


class SessionLengths(Base):
    """Finished sessions (``logout`` events with a numeric ``session_seconds``) of a game whose length rounds up to
    ``seconds_ceil`` whole seconds, and the sum of their lengths (seconds), all time.  Maintained by the catch-up
    (migration 0011); read by the exporter's session-length histogram, whose integer bounds are sums of these rows
    (:func:`game_analytics.storage.queries.sessions.logout_seconds_buckets`)."""

    __tablename__ = "session_lengths"

    game: Mapped[str] = mapped_column(String(64), primary_key=True)
    seconds_ceil: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    sessions: Mapped[int] = mapped_column(BigInteger)
    seconds: Mapped[float] = mapped_column(Double)


class WealthValue(Base):
    """The balances of ``player_balances`` counted by value: how many players of a (game, currency) hold exactly
    ``wealth``.  Maintained by the catch-up (a changed balance moves its player from the old value to the new one;
    values no one holds are deleted); read by the exporter's Gini and wealth histogram
    (:func:`game_analytics.storage.queries.economy.wealth_distribution`)."""

    __tablename__ = "wealth_values"

    game: Mapped[str] = mapped_column(String(64), primary_key=True)
    currency: Mapped[str] = mapped_column(String(64), primary_key=True)
    wealth: Mapped[Any] = mapped_column(Numeric, primary_key=True)
    players: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_wealth_values_unheld", "game", postgresql_where=text("players = 0")),)


class MarketHourly(Base):
    """Hourly rollup of the economy: ``kind`` ``purchase`` (``currency`` = the purchase currency, ``quantity`` and
    ``value`` = the sums of ``payload.quantity`` and ``payload.amount``) or ``trade`` (``currency`` = ``item``,
    ``value`` = the sum of ``payload.value``); ``events`` counts them.  Sums are float8, like the queries over raw
    payloads they replace.  Maintained by the catch-up; read by the exporter's price index and trade volume."""

    __tablename__ = "market_hourly"

    game: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    currency: Mapped[str] = mapped_column(String(64), primary_key=True)
    hour: Mapped[datetime] = mapped_column(TZ, primary_key=True)
    events: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[float | None] = mapped_column(Double)
    value: Mapped[float | None] = mapped_column(Double)
