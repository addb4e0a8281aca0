"""Batches of the ingest path: stream entries (or event dicts) validated into ``events`` rows and dead letters,
and ONE transaction writing a batch (binary ``COPY`` into ``event_ids`` and ``events`` inside a savepoint, falling
back to a staging table with ``ON CONFLICT DO NOTHING`` on a duplicate ``event_id``).  Used by the ingest worker
(:mod:`game_analytics.workers.ingest`) and the bulk load (:mod:`game_analytics.workers.load`).
"""

from __future__ import annotations

import json
import queue
import re
import threading
from collections import Counter as Tally
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypeVar

import psycopg
from psycopg.adapt import Dumper
from psycopg.pq import Format

from game_analytics.events import AnyEvent, EventError, parse_event, storable_text, validate_event

__all__ = [
    "DATA_FIELD",
    "DEFAULT_STREAM",
    "Batch",
    "BatchOutcome",
    "DeadLetterRecord",
    "ROW_ERRORS",
    "copy_rows",
    "event_row",
    "prefetched",
    "prepare_connection",
    "prepare_dicts",
    "prepare_entries",
    "to_json_bytes",
    "write_batch",
]

T = TypeVar("T")

#: The event stream written by game servers (the ingest worker's default).
DEFAULT_STREAM = "game-events"

#: Stream entry field holding the event's UTF-8 JSON.
DATA_FIELD = b"data"

STAGE_TABLE = "_ingest_stage"
_STAGE_COLUMNS = "event_id, event_type, occurred_at, player_id, game, region, payload"
# A session temp table.  Rows reach it by binary COPY, which psycopg encodes in C (far cheaper than adapting
# Python lists as array parameters); the INSERT reading them deletes them, and every commit empties them.
_CREATE_STAGE = f"""
CREATE TEMP TABLE IF NOT EXISTS {STAGE_TABLE} (
    event_id text, event_type text, occurred_at timestamptz, player_id text,
    game text, region text, payload jsonb
) ON COMMIT DELETE ROWS
"""

# An event is stored when its id is new in event_ids (global, unlike the partitioned key of events): the first of
# the batch's rows per id wins, a row whose id is known under another occurred_at is a duplicate; rows repeated
# exactly (same id and time) meet the events key.
_INSERT_EVENTS = f"""
WITH staged AS (DELETE FROM {STAGE_TABLE} RETURNING *), ids AS (
    INSERT INTO event_ids (event_id, occurred_at)
    SELECT event_id, occurred_at FROM staged
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id, occurred_at
), inserted AS (
    INSERT INTO events ({_STAGE_COLUMNS})
    SELECT {", ".join(f"s.{c.strip()}" for c in _STAGE_COLUMNS.split(","))}
    FROM staged s JOIN ids ON ids.event_id = s.event_id AND ids.occurred_at = s.occurred_at
    ON CONFLICT (event_id, occurred_at) DO NOTHING
    RETURNING game, event_type
)
SELECT game, event_type, count(*) FROM inserted GROUP BY game, event_type
"""
_ID_COLUMNS, _ID_TYPES = "event_id, occurred_at", ["text", "timestamptz"]

_INSERT_DEAD_LETTER = """
INSERT INTO dead_letters (stream, stream_id, raw_payload, reason, field)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (stream, stream_id) DO NOTHING
"""


# --- pure helpers ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetterRecord:
    """A rejected entry: its stream id, raw bytes, the reason, the offending field (or None) and a metric label."""

    stream_id: str
    raw: bytes
    reason: str
    field: str | None
    kind: str


def event_row(event: AnyEvent) -> tuple[Any, ...]:
    """The ``events`` row of a validated event: ``(event_id, event_type, occurred_at, player_id, game,
    region, payload_json)``; ``occurred_at`` is a UTC datetime, ``payload_json`` the normalised payload as JSON
    without null fields."""
    return (
        event.event_id,
        event.event_type,
        event.occurred_at,
        event.player_id,
        event.game,
        event.region,
        event.payload.model_dump_json(exclude_none=True),
    )


@dataclass
class Batch:
    """One validated batch, ready to store in one transaction (built by :func:`prepare_entries` /
    :func:`prepare_dicts`; no I/O).

    Attributes:
        rows: :func:`event_row` tuples of the valid events, in input order (duplicates included).
        origins: for each row, where it came from: ``(stream_id, raw)`` with the entry's raw bytes or the event
            dict (for a dead letter should PostgreSQL reject the row; see :func:`write_batch`).
        dead: the rejected entries.
        entry_ids: stream ids of every entry read (valid, rejected, or deleted while pending), to acknowledge
            after the commit; empty for bulk loads.
    """

    rows: list[tuple[Any, ...]] = field(default_factory=list)
    dead: list[DeadLetterRecord] = field(default_factory=list)
    entry_ids: list[bytes] = field(default_factory=list)
    origins: list[tuple[str, bytes | dict[str, Any]]] = field(default_factory=list)


Fields = dict[bytes, bytes] | list[bytes]


def prepare_entries(entries: Iterable[tuple[bytes | str, Fields | None]]) -> Batch:
    """Validate stream entries ``(entry_id, fields)`` with :func:`~game_analytics.events.parse_event`; ``fields``
    is a dict or, as in the raw ``XREADGROUP`` reply, a flat ``[name, value, ...]`` list.

    Entries without a ``data`` field, or whose data fails validation, become :class:`DeadLetterRecord` s with the
    reason and field.  Entries whose fields are None (deleted from the stream while pending) are only
    acknowledged.
    """
    batch = Batch()
    for entry_id, fields in entries:
        batch.entry_ids.append(entry_id)
        if fields is None:
            continue
        if isinstance(fields, list):  # the publisher's single field comes first: no dict needed
            if fields[:1] == [DATA_FIELD]:
                raw = fields[1]
            else:
                fields = dict(zip(fields[::2], fields[1::2], strict=True))
                raw = fields.get(DATA_FIELD)
        else:
            raw = fields.get(DATA_FIELD)
        sid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        if raw is None:
            names = ", ".join(sorted(k.decode(errors="replace") for k in fields))
            batch.dead.append(
                DeadLetterRecord(sid, json.dumps({k.decode(errors="replace"): v.decode(errors="replace")
                                                  for k, v in fields.items()}).encode(),
                                 f"message: missing stream field 'data' (got: {names})", None, "missing_field")
            )  # fmt: skip
            continue
        try:
            batch.rows.append(event_row(parse_event(raw)))
        except EventError as exc:
            batch.dead.append(DeadLetterRecord(sid, raw, exc.reason, exc.field, exc.kind))
        else:
            batch.origins.append((sid, raw))
    return batch


def prepare_dicts(numbered: Iterable[tuple[int, dict[str, Any]]]) -> Batch:
    """Validate ``(position, event dict)`` pairs with :func:`~game_analytics.events.validate_event`; a rejected
    event's ``stream_id`` is its position."""
    batch = Batch()
    for index, data in numbered:
        try:
            batch.rows.append(event_row(validate_event(data)))
        except EventError as exc:
            batch.dead.append(DeadLetterRecord(str(index), to_json_bytes(data), exc.reason, exc.field, exc.kind))
        else:
            batch.origins.append((str(index), data))
    return batch


def prefetched(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Iterate ``items`` in a background thread, at most ``depth`` items ahead of the caller.

    The ingest paths use it to validate the next batch (Python, holding the GIL) while the current one is being
    stored (PostgreSQL, while this process waits on its socket), so that the two overlap on two cores.  An
    exception raised by ``items`` is re-raised here in order; when the caller stops early (``break``, an
    exception) the thread stops before producing another item and is joined.
    """
    slots: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
    cancelled = threading.Event()

    def put(item: tuple[bool, Any]) -> bool:
        while not cancelled.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((False, item)):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put((True, exc))
        else:
            put((True, None))

    thread = threading.Thread(target=produce, name="ingest-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            finished, value = slots.get()
            if finished:
                if value is not None:
                    raise value
                return
            yield value
    finally:
        cancelled.set()
        thread.join()


# --- database -------------------------------------------------------------------------------------------------


def prepare_connection(conn: psycopg.Connection) -> None:
    """Create the session's staging temp table (idempotent; commits)."""
    with conn.transaction():
        conn.execute(_CREATE_STAGE)


class JsonTextBinaryDumper(Dumper):
    """Binary COPY dumper for ``jsonb`` from an already serialised JSON ``str`` (jsonb wire format: 0x01 + text).

    Registered for the ``jsonb`` OID only (Python type None), so it applies just where COPY ``set_types`` names
    ``jsonb``; the server still parses and checks the JSON.
    """

    format = Format.BINARY
    oid = 3802  # jsonb

    def dump(self, obj: str) -> bytes:
        return b"\x01" + obj.encode()


#: Column types of :func:`event_row` tuples for binary COPY.
ROW_TYPES = ["text", "text", "timestamptz", "text", "text", "text", "jsonb"]


def copy_rows(
    cur: psycopg.Cursor, table: str, rows: Iterable[tuple[Any, ...]], columns: str = _STAGE_COLUMNS,
    types: Sequence[str] = ROW_TYPES,
) -> None:  # fmt: skip
    """Binary ``COPY table (columns) FROM STDIN`` of tuples of ``types`` (default: :func:`event_row` tuples;
    aware datetimes required).  psycopg sends the data in blocks as they fill."""
    cur.adapters.register_dumper(None, JsonTextBinaryDumper)
    with cur.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


@dataclass(frozen=True)
class BatchOutcome:
    """What :func:`write_batch` did: NEW events per event type, valid events seen (including duplicates, not
    counting ``rejected``), whether the direct COPY succeeded (False: the batch took the staging-table path),
    and the rows PostgreSQL refused, dead-lettered by bisection (already in ``dead_letters``)."""

    inserted: dict[tuple[str, str], int]  # (game, event type) -> events stored
    valid: int
    direct: bool
    rejected: list[DeadLetterRecord] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        """Valid events that were already stored (or repeated within the batch)."""
        return self.valid - sum(self.inserted.values())


def write_batch(
    conn: psycopg.Connection, batch: Batch, stream: str = DEFAULT_STREAM, *, direct: bool = True
) -> BatchOutcome:
    """Write one batch in the caller's open transaction; the caller commits.

    Storage is idempotent by ``event_id`` alone: re-writing a batch is a no-op, and an ``event_id`` already
    stored (or earlier in the batch) under another ``occurred_at`` is a duplicate too (the first stored wins; see
    :class:`~game_analytics.storage.models.EventId`).  Only ``event_ids``, ``events`` and ``dead_letters`` are
    written; the tables derived from events catch up later, set-based (:mod:`game_analytics.storage.derived`).

    * Direct path (``direct``): the ids and times are binary-COPY-ed into ``event_ids``, then the rows straight
      into ``events``, inside a SAVEPOINT.
    * If a COPY hits a unique violation (an ``event_id`` already stored, or repeated within the batch), or
      with ``direct=False``: roll back to the savepoint, COPY the rows into the session's staging table and
      insert the new ids into ``event_ids`` (``ON CONFLICT (event_id) DO NOTHING``) and the rows whose id was
      inserted into ``events``, in one statement.  Pass ``direct=False`` when duplicates are likely (e.g. after
      the previous batch had some) to skip the failing attempt.

    * Poison rows: should PostgreSQL refuse a row the validator let through (a data error such as a jsonb it
      cannot store, or a constraint: :data:`ROW_ERRORS`), the rows are bisected, each half in its own
      SAVEPOINT on the staging path, down to the single rows it refuses; those are dead-lettered with
      PostgreSQL's reason (kind ``database_rejected``, field: the column when PostgreSQL names it) and returned
      in :attr:`BatchOutcome.rejected`.  One poison row in n costs about 2 log2(n) extra COPYs.

    ``batch.dead`` goes to ``dead_letters`` (unique per ``(stream, stream_id)``).  Requires
    :func:`prepare_connection` on ``conn``; several calls may share one transaction.

    Raises:
        psycopg.Error: on other database errors (the caller's transaction is then to be rolled back).
    """
    inserted: dict[tuple[str, str], int] | None = None
    rejected: list[DeadLetterRecord] = []
    went_direct = False
    if direct:
        try:
            with conn.transaction(), conn.cursor() as cur:  # a SAVEPOINT inside the caller's transaction
                copy_rows(cur, "event_ids", ((r[0], r[2]) for r in batch.rows), _ID_COLUMNS, _ID_TYPES)
                copy_rows(cur, "events", batch.rows)
            inserted = dict(Tally((row[4], row[1]) for row in batch.rows))
            went_direct = True
        except psycopg.errors.UniqueViolation:
            pass
        except ROW_ERRORS:
            inserted = {}
            _bisect(conn, batch.rows, batch.origins, 0, len(batch.rows), inserted, rejected)
    if inserted is None:
        inserted = {}
        try:
            with conn.transaction():
                _add(inserted, _staged_insert(conn, batch.rows))
        except ROW_ERRORS:
            _bisect(conn, batch.rows, batch.origins, 0, len(batch.rows), inserted, rejected)
    dead = batch.dead + rejected
    if dead:
        with conn.cursor() as cur:
            cur.executemany(
                _INSERT_DEAD_LETTER,
                [(stream, d.stream_id[:64], d.raw, d.reason[:4000], d.field and d.field[:256]) for d in dead],
            )
    return BatchOutcome(inserted, len(batch.rows) - len(rejected), went_direct, rejected)


#: PostgreSQL errors that a row's content can cause (data exceptions, integrity constraints, limits such as an
#: index row too large): :func:`write_batch` bisects on them instead of failing the batch.
ROW_ERRORS = (psycopg.errors.DataError, psycopg.errors.IntegrityError, psycopg.errors.ProgramLimitExceeded)

_COLUMN_IN_CONTEXT = re.compile(r"column (\w+)")


def _staged_insert(conn: psycopg.Connection, rows: Sequence[tuple[Any, ...]]) -> dict[tuple[str, str], int]:
    """COPY ``rows`` into the staging table and move them into ``events`` (ON CONFLICT DO NOTHING)."""
    with conn.cursor() as cur:
        copy_rows(cur, STAGE_TABLE, rows)
        cur.execute(_INSERT_EVENTS)
        return {(game, etype): int(n) for game, etype, n in cur.fetchall()}


def _add(total: dict[tuple[str, str], int], part: dict[tuple[str, str], int]) -> None:
    for key, n in part.items():
        total[key] = total.get(key, 0) + n


def _bisect(
    conn: psycopg.Connection, rows: Sequence[tuple[Any, ...]], origins: Sequence[tuple[str, bytes | dict]],
    lo: int, hi: int, inserted: dict[tuple[str, str], int], rejected: list[DeadLetterRecord],
) -> None:  # fmt: skip
    """Store ``rows[lo:hi]`` (known to hold a poison row) half by half, each half in a SAVEPOINT, recursing
    into a half PostgreSQL refuses; a refused single row becomes a dead letter in ``rejected``."""
    if hi - lo == 1:
        try:
            with conn.transaction():
                _add(inserted, _staged_insert(conn, rows[lo:hi]))
        except ROW_ERRORS as exc:
            rejected.append(_database_dead_letter(origins[lo], exc))
        return
    mid = (lo + hi) // 2
    for a, b in ((lo, mid), (mid, hi)):
        try:
            with conn.transaction():
                _add(inserted, _staged_insert(conn, rows[a:b]))
        except ROW_ERRORS:
            _bisect(conn, rows, origins, a, b, inserted, rejected)


def _database_dead_letter(origin: tuple[str, bytes | dict], exc: psycopg.Error) -> DeadLetterRecord:
    """The dead letter of a row PostgreSQL refused: ``"<column or message>: rejected by PostgreSQL (SQLSTATE)
    <its message>"``, field = the column PostgreSQL names (directly or in the COPY context), else None."""
    diag = exc.diag
    column = diag.column_name
    if column is None and diag.context and (found := _COLUMN_IN_CONTEXT.search(diag.context)):
        column = found.group(1)
    what = diag.message_primary or str(exc).splitlines()[0]
    if diag.constraint_name and diag.constraint_name not in what:
        what += f" (constraint {diag.constraint_name})"
    if diag.message_detail:
        what += f": {diag.message_detail}"
    sid, raw = origin
    reason = storable_text(f"{column or 'message'}: rejected by PostgreSQL ({diag.sqlstate}) {what}")
    return DeadLetterRecord(sid, to_json_bytes(raw), reason, column, "database_rejected")


def _json_default(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def to_json_bytes(event: dict[str, Any] | bytes | str) -> bytes:
    """An event as the UTF-8 JSON of a stream entry (bytes and str pass through)."""
    if isinstance(event, bytes):
        return event
    if isinstance(event, str):
        return event.encode()
    return json.dumps(event, default=_json_default, separators=(",", ":")).encode()
