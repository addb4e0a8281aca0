"""Time partitions of ``events`` (PostgreSQL declarative RANGE partitioning on ``occurred_at``), managed by the
product: partitions created ahead, retention by detaching and dropping whole partitions.

Layout:
    events                 the partitioned parent (no rows of its own)
    events_pYYYYMM         one partition per month (``interval="month"``, the default) ...
    events_pYYYYMMDD       ... or per UTC day (``interval="day"``, for ~1B events/day: see docs/scaling.md)
    events_default         the DEFAULT partition: any event outside the partitions created so far (historic
                           back-fills, far-future clocks), so ingest never fails for lack of a partition

Idempotency: the primary key is ``(event_id, occurred_at)`` (a unique key of a partitioned table must contain the
partition key).  A replayed event carries the same ``occurred_at`` as the original (it is the same stream entry or
the same source row), so it lands in the same partition and conflicts there.  :func:`ensure_partition` moves rows
out of the default partition into a new partition in one transaction, so the key stays unique when an event
crosses from ``events_default`` into ``events_p...`` (tested).

Who runs it: the ingest worker runs :func:`maintain` at start and then every ``MAINTAIN_EVERY_S`` seconds (each
replica; concurrent runs serialise on an advisory lock), and ``game-analytics partitions maintain`` does the same
once (for a CronJob or by hand).  Retention detaches a partition (``DETACH ... CONCURRENTLY`` is refused while a
default partition exists, so a plain DETACH: an exclusive lock on ``events`` for milliseconds, waited for at most
:data:`LOCK_TIMEOUT_MS` so that ingest never queues behind a long reader), then drops it; rows in
``events_default`` older than the retention are deleted.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

__all__ = [
    "DEFAULT_PARTITION",
    "INTERVALS",
    "MaintainResult",
    "Partition",
    "ensure_partition",
    "list_partitions",
    "maintain",
    "maintain_forever",
    "main",
    "partition_for",
]

log = logging.getLogger(__name__)

PARENT = "events"
DEFAULT_PARTITION = "events_default"
INTERVALS = ("month", "day")
#: how often the ingest worker runs :func:`maintain` (seconds)
MAINTAIN_EVERY_S = 3600.0
#: pg_advisory_xact_lock key serialising partition changes (the bytes of "gapartit")
PARTITION_LOCK = int.from_bytes(b"gapartit", "big") - 2**63
#: how long creating a partition waits for the parent's lock before giving up (milliseconds)
LOCK_TIMEOUT_MS = 3000
_NAME_RE = re.compile(r"^events_p(\d{6}|\d{8})$")


@dataclass(frozen=True, order=True)
class Partition:
    """A partition of ``events``: its table name and its bounds ``[start, end)`` (UTC)."""

    start: datetime
    end: datetime
    name: str


def partition_for(at: datetime, interval: str = "month") -> Partition:
    """The partition holding instant ``at`` (aware) for ``interval`` (``month`` or ``day``). Pure.

    Raises:
        ValueError: unknown interval or a naive datetime.
    """
    if at.tzinfo is None:
        raise ValueError("partition_for needs an aware datetime")
    at = at.astimezone(UTC)
    if interval == "month":
        start = datetime(at.year, at.month, 1, tzinfo=UTC)
        end = datetime(at.year + (at.month == 12), at.month % 12 + 1, 1, tzinfo=UTC)
        return Partition(start, end, f"events_p{start:%Y%m}")
    if interval == "day":
        start = datetime(at.year, at.month, at.day, tzinfo=UTC)
        return Partition(start, start + timedelta(days=1), f"events_p{start:%Y%m%d}")
    raise ValueError(f"partition interval must be one of {INTERVALS}, got {interval!r}")


def list_partitions(conn: psycopg.Connection) -> list[Partition]:
    """The range partitions of ``events`` (not the default one), oldest first, from the catalog."""
    rows = conn.execute(
        """SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i
           JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass""", (PARENT,)
    ).fetchall()
    found = []
    for name, bound in rows:
        m = re.search(r"FROM \('([^']+)'\) TO \('([^']+)'\)", bound or "")
        if m and _NAME_RE.match(name):
            found.append(Partition(_timestamp(conn, m[1]), _timestamp(conn, m[2]), name))
    return sorted(found)


def _timestamp(conn: psycopg.Connection, text: str) -> datetime:
    return conn.execute("SELECT %s::timestamptz", (text,)).fetchone()[0].astimezone(UTC)


def ensure_partition(conn: psycopg.Connection, part: Partition) -> bool:
    """Create partition ``part`` if missing, in the caller's transaction (the caller commits).

    Rows of its range already in ``events_default`` move into it in the same transaction (create a detached
    table, copy them, delete them from the default, attach), so no event is lost or doubled.

    Returns:
        True if it was created.

    Raises:
        psycopg.errors.LockNotAvailable: ``events`` stayed locked for :data:`LOCK_TIMEOUT_MS` (a long transaction).
    """
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
    if conn.execute("SELECT to_regclass(%s)", (part.name,)).fetchone()[0] is not None:
        return False
    # Creating or attaching a partition locks the parent exclusively: give up rather than queue ingest behind a
    # long reader (maintain() retries on its next run).
    conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS}ms'")
    bounds = {"lo": part.start, "hi": part.end}
    has_default = conn.execute("SELECT to_regclass(%s)", (DEFAULT_PARTITION,)).fetchone()[0] is not None
    moving = has_default and conn.execute(
        f"SELECT EXISTS (SELECT FROM {DEFAULT_PARTITION} WHERE occurred_at >= %(lo)s AND occurred_at < %(hi)s)",
        bounds).fetchone()[0]  # fmt: skip
    if not moving:
        conn.execute(f"CREATE TABLE {part.name} PARTITION OF {PARENT} "
                     f"FOR VALUES FROM ({_literal(part.start)}) TO ({_literal(part.end)})")  # fmt: skip
        return True
    conn.execute(f"CREATE TABLE {part.name} (LIKE {PARENT} INCLUDING DEFAULTS)")
    conn.execute(f"""WITH moved AS (DELETE FROM {DEFAULT_PARTITION}
                                   WHERE occurred_at >= %(lo)s AND occurred_at < %(hi)s RETURNING *)
                     INSERT INTO {part.name} SELECT * FROM moved""", bounds)  # fmt: skip
    conn.execute(f"ALTER TABLE {PARENT} ATTACH PARTITION {part.name} "
                 f"FOR VALUES FROM ({_literal(part.start)}) TO ({_literal(part.end)})")  # fmt: skip
    return True


def _literal(at: datetime) -> str:
    return f"'{at.astimezone(UTC).isoformat()}'"


@dataclass
class MaintainResult:
    """What :func:`maintain` did: partitions created and dropped (names), default-partition rows deleted,
    ``event_ids`` rows deleted with them, and the seconds each retention drop took (detach + drop)."""

    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    default_deleted: int = 0
    ids_deleted: int = 0
    drop_seconds: list[float] = field(default_factory=list)


def maintain(conn: psycopg.Connection, *, retention: timedelta | None = None, interval: str = "month",
             ahead: int = 2, now: datetime | None = None) -> MaintainResult:  # fmt: skip
    """Create the partitions from the one holding ``now`` to ``ahead`` intervals after it, and apply
    ``retention``: drop every partition whose end is at or before ``now - retention`` (``DETACH``, then
    ``DROP``), delete older rows from the default partition and the ``event_ids`` of the events gone.  A step
    that cannot get its lock in :data:`LOCK_TIMEOUT_MS` is logged and left to the next run.

    ``conn`` must be in autocommit mode: each step runs in a short transaction of its own (so no lock is held
    across steps).  Safe to run from several processes at once.

    Raises:
        ValueError: ``conn`` not in autocommit mode, or a bad ``interval``.
        psycopg.Error: on database errors.
    """
    if not conn.autocommit:
        raise ValueError("maintain needs an autocommit connection")
    now = (now or datetime.now(UTC)).astimezone(UTC)
    result = MaintainResult()
    at = now
    for _ in range(ahead + 1):
        part = partition_for(at, interval)
        try:
            with conn.transaction():
                if ensure_partition(conn, part):
                    result.created.append(part.name)
        except psycopg.errors.LockNotAvailable:
            log.warning("partition %s not created: events is locked by a long transaction; retried later", part.name)
        at = part.end
    if retention is None:
        return result
    cutoff = now - retention
    _finish_pending_detach(conn)
    for part in list_partitions(conn):
        if part.end > cutoff:
            continue
        started = time.perf_counter()
        try:
            with conn.transaction():  # a short exclusive lock, waited for at most LOCK_TIMEOUT_MS
                conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_MS}ms'")
                conn.execute(f"ALTER TABLE {PARENT} DETACH PARTITION {part.name}")
        except psycopg.errors.LockNotAvailable:
            log.warning("partition %s not dropped: events is locked by a long transaction; retried later", part.name)
            continue
        conn.execute(f"DROP TABLE {part.name}")
        result.drop_seconds.append(time.perf_counter() - started)
        result.dropped.append(part.name)
    if conn.execute("SELECT to_regclass(%s)", (DEFAULT_PARTITION,)).fetchone()[0] is not None:
        cur = conn.execute(f"DELETE FROM {DEFAULT_PARTITION} WHERE occurred_at < %s", (cutoff,))
        result.default_deleted = cur.rowcount
    # The ids of the events now gone: older than the cutoff and than every partition still attached (one left
    # for the next run keeps its ids). A replay of such an old event is stored again, as before event_ids.
    keep_from = min([cutoff, *(p.start for p in list_partitions(conn))])
    result.ids_deleted = conn.execute("DELETE FROM event_ids WHERE occurred_at < %s", (keep_from,)).rowcount
    return result


def maintain_forever(dsn: str, stop: threading.Event, *, retention: timedelta | None = None,
                     interval: str = "month", every_s: float = MAINTAIN_EVERY_S) -> threading.Thread:  # fmt: skip
    """Start a daemon thread running :func:`maintain` now and then every ``every_s`` seconds until ``stop`` is
    set (the ingest worker's timer), on an autocommit connection of its own to ``dsn`` (libpq or SQLAlchemy
    URL).  Errors are logged and retried on the next run (e.g. a role without the right to create tables)."""
    from .engine import libpq_dsn

    def run() -> None:
        while not stop.is_set():
            try:
                with psycopg.connect(libpq_dsn(dsn), autocommit=True, connect_timeout=10) as conn:
                    done = maintain(conn, retention=retention, interval=interval)
                if done.created or done.dropped or done.default_deleted:
                    log.info("partitions: created %s, dropped %s, %d old default rows deleted",
                             done.created, done.dropped, done.default_deleted)  # fmt: skip
            except psycopg.Error as exc:
                log.warning("partition maintenance failed (%s); retried in %.0f s", exc, every_s)
            stop.wait(every_s)

    thread = threading.Thread(target=run, name="partition-maintenance", daemon=True)
    thread.start()
    return thread


def _finish_pending_detach(conn: psycopg.Connection) -> None:
    """A ``DETACH ... CONCURRENTLY`` run by hand and interrupted leaves the partition pending: finish it."""
    pending = conn.execute(
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = %s::regclass AND i.inhdetachpending""", (PARENT,)
    ).fetchall()
    for (name,) in pending:
        conn.execute(f"ALTER TABLE {PARENT} DETACH PARTITION {name} FINALIZE")


def main(argv: Sequence[str] | None = None) -> int:
    """``game-analytics partitions maintain|list``: create partitions ahead and apply the retention once, or list
    the partitions with their row estimates.  Exit codes: 0 done, 1 database error, 2 usage."""
    from game_analytics.api.common import parse_duration
    from game_analytics.console import ArgumentParser, dump_json, fail
    from game_analytics.settings import environment

    from .engine import libpq_dsn

    parser = ArgumentParser(prog="game-analytics partitions", description=main.__doc__.splitlines()[0])
    parser.add_argument("action", choices=["maintain", "list"])
    parser.add_argument("--dsn", help="env GAME_ANALYTICS_DSN")
    parser.add_argument("--retention", help="drop partitions older than this (e.g. 90d; env GAME_ANALYTICS_RETENTION)")
    parser.add_argument("--interval", choices=INTERVALS, help="env GAME_ANALYTICS_PARTITION_INTERVAL (default month)")
    parser.add_argument("--ahead", type=int, default=2, help="intervals to create ahead of now (default 2)")
    parser.add_argument("--output", choices=["table", "json"], default="table", help="list as a table or json")
    args = parser.parse_args(argv)
    settings = environment(parser)
    args.dsn = args.dsn or settings.dsn
    args.retention = args.retention or settings.retention
    args.interval = args.interval or settings.partition_interval
    if not args.dsn:
        parser.error("give --dsn or GAME_ANALYTICS_DSN")
    try:
        retention = parse_duration(args.retention) if args.retention else None
    except ValueError as exc:
        parser.error(str(exc))
    try:
        with psycopg.connect(libpq_dsn(args.dsn), autocommit=True) as conn:
            if args.action == "list":
                parts = list_partitions(conn)
                if args.output == "json":
                    print(dump_json([{"name": p.name, "start": p.start, "end": p.end} for p in parts]))
                for part in parts if args.output == "table" else ():
                    print(f"{part.name}\t{part.start:%Y-%m-%d}\t{part.end:%Y-%m-%d}")
                return 0
            done = maintain(conn, retention=retention, interval=args.interval, ahead=args.ahead)
    except psycopg.Error as exc:
        return fail("game-analytics partitions", f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}")
    print(f"game-analytics partitions: created {done.created or 'none'}, dropped {done.dropped or 'none'}, "
          f"{done.default_deleted} old rows deleted from {DEFAULT_PARTITION}", flush=True)  # fmt: skip
    return 0
