"""Append-only, hash-chained audit trail stored in the ``audit_log`` table.

Every row carries ``seq`` (1, 2, 3, ... without gaps), ``at``, ``actor``, ``action``, ``object_ref`` (the target)
and the JSON ``before`` / ``after`` states, optionally a ``justification``, an ``approver``, the ``source``
(``cli``, ``worker``, ``operator``) and a JSON request ``context``, plus::

    prev_hash = hash of row seq-1   (64 zeros for seq 1)
    hash      = sha256(canonical_json({seq, at, actor, action, object_ref, before, after}
                                      + those of justification, approver, source, context that are not NULL)
                       + prev_hash)

(rows written before the optional columns existed therefore keep their hashes).

``canonical_json`` sorts keys, uses compact separators, keeps non-ASCII characters as UTF-8, and writes ``at`` as
``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC.  Editing any field of a row, deleting a row or reordering rows therefore
breaks the chain at a specific ``seq``, which :func:`verify_chain` / :meth:`AuditLog.verify` report.  Truncating
the tail is only detectable against an externally kept anchor (``verify(anchor=log.head())``).

The database additionally rejects UPDATE, DELETE and TRUNCATE on ``audit_log`` with a trigger (see the migration),
the workers and the CLI write as the insert-only role ``game_analytics_writer`` (migration 0004), and the hash
chain is what still catches the table owner, who can disable that trigger: ``verify`` against an anchor kept
elsewhere (:meth:`AuditLog.head`) detects even a consistently rewritten chain.

Writers inside a larger transaction use :func:`append_entry` on their connection, so that the change and its
audit row commit together or not at all; :meth:`AuditLog.append` is the stand-alone form.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

__all__ = [
    "GENESIS_HASH",
    "AuditEntry",
    "AuditLog",
    "VerifyResult",
    "append_entry",
    "canonical_json",
    "entry_hash",
    "main",
    "verify_chain",
]

#: ``prev_hash`` of the first row.
GENESIS_HASH = "0" * 64

# Any fixed 64-bit number: the advisory lock serialising appends (one chain, one writer at a time).
_APPEND_LOCK_KEY = 0x6761_5F61_7564_6974  # "ga_audit"


def _format_at(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_json(value: Any) -> bytes:
    """Deterministic UTF-8 JSON of ``value``: sorted keys, no whitespace, no NaN/Infinity (raises ValueError)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


#: The optional, hashed-when-present fields (columns added by migration 0003).
OPTIONAL_FIELDS = ("justification", "approver", "source", "context")


@dataclass(frozen=True)
class AuditEntry:
    """One audit row; ``before`` / ``after`` / ``context`` are JSON values (typically dicts) or None."""

    seq: int
    at: datetime
    actor: str
    action: str
    object_ref: str
    before: Any
    after: Any
    prev_hash: str
    hash: str
    justification: str | None = None
    approver: str | None = None
    source: str | None = None
    context: Any = None

    def content(self) -> dict[str, Any]:
        """The hashed content (everything but the two hashes and the NULL optional fields), ``at`` canonical."""
        content = {
            "seq": self.seq, "at": _format_at(self.at), "actor": self.actor, "action": self.action,
            "object_ref": self.object_ref, "before": self.before, "after": self.after,
        }  # fmt: skip
        for name in OPTIONAL_FIELDS:
            if getattr(self, name) is not None:
                content[name] = getattr(self, name)
        return content

    def as_dict(self) -> dict[str, Any]:
        """Every field as a JSON-able dict (``at`` as ISO 8601 UTC), for exports and the CLI."""
        return {**self.__dict__, "at": _format_at(self.at)}


def entry_hash(entry: AuditEntry, prev_hash: str | None = None) -> str:
    """SHA-256 hex digest over ``canonical_json(entry.content())`` followed by ``prev_hash`` (ASCII hex).

    ``prev_hash`` defaults to ``entry.prev_hash``.
    """
    digest = hashlib.sha256(canonical_json(entry.content()))
    digest.update((entry.prev_hash if prev_hash is None else prev_hash).encode("ascii"))
    return digest.hexdigest()


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of a chain verification.

    Attributes:
        ok: True if every row checked is intact.
        checked: number of rows read.
        first_bad_seq: the lowest ``seq`` at which the chain is broken (for a deleted row: the missing seq), or None.
        problem: human-readable description of the first break.
    """

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str | None = None


def verify_chain(
    entries: Iterable[AuditEntry], anchor: tuple[int, str] | None = None, expect_head: str | None = None
) -> VerifyResult:
    """Check a chain given in storage order (ascending ``seq``); pure function.

    Checks, per row: ``seq`` continues the previous one by exactly 1 (a gap = deleted rows, a step back = reordered
    rows), ``prev_hash`` equals the previous row's ``hash``, and ``hash`` matches the recomputed content hash.
    With ``anchor=(seq, hash)`` (a previously recorded :meth:`AuditLog.head`), the row ``seq`` must exist with that
    hash, which also detects a truncated tail or a rewritten chain.  With ``expect_head`` (a hash), the newest row
    must have exactly that hash: a chain rewritten consistently by the table owner, truncated or extended since
    the head was recorded fails.
    """
    expected_seq, prev_hash, checked = 1, GENESIS_HASH, 0
    anchor_seen = anchor is None
    for entry in entries:
        checked += 1
        if entry.seq != expected_seq:
            if entry.seq > expected_seq:
                missing = (
                    f"{expected_seq}" if entry.seq == expected_seq + 1 else f"{expected_seq}..{entry.seq - 1}"
                )
                return VerifyResult(False, checked, expected_seq, f"seq {missing} missing (deleted row)")
            return VerifyResult(
                False, checked, entry.seq, f"seq {entry.seq} out of order after {expected_seq - 1}"
            )
        if entry.prev_hash != prev_hash:
            return VerifyResult(False, checked, entry.seq, f"seq {entry.seq}: prev_hash does not match seq "
                                                          f"{entry.seq - 1}")  # fmt: skip
        if entry_hash(entry) != entry.hash:
            return VerifyResult(
                False, checked, entry.seq, f"seq {entry.seq}: content does not match its hash"
            )
        if anchor is not None and entry.seq == anchor[0]:
            if entry.hash != anchor[1]:
                return VerifyResult(
                    False, checked, entry.seq, f"seq {entry.seq}: hash differs from the anchor"
                )
            anchor_seen = True
        prev_hash, expected_seq = entry.hash, expected_seq + 1
    if not anchor_seen:
        assert anchor is not None
        return VerifyResult(False, checked, expected_seq, f"anchored seq {anchor[0]} is missing (truncated)")
    if expect_head is not None and prev_hash != expect_head:
        return VerifyResult(False, checked, expected_seq - 1 if checked else None,
                            f"head {prev_hash} (seq {expected_seq - 1}) is not the expected head {expect_head}")
    return VerifyResult(True, checked)


_COLUMNS = "seq, at, actor, action, object_ref, before, after, prev_hash, hash, justification, approver, source, context"


def append_entry(
    conn: Connection, actor: str, action: str, object_ref: str, before: Any = None, after: Any = None, *,
    justification: str | None = None, approver: str | None = None, source: str | None = None,
    context: Any = None, at: datetime | None = None,
) -> AuditEntry:  # fmt: skip
    """Append one row inside the caller's transaction on ``conn`` and return it (committed with that transaction).

    Appends are serialised with a transaction-level advisory lock (held until the caller commits), so concurrent
    writers still build one gap-free chain; append last in a transaction to hold it briefly.  ``before`` /
    ``after`` / ``context`` are normalised through PostgreSQL ``jsonb`` first, so the hash is computed over exactly
    what later reads return.  ``at`` defaults to now (UTC, microseconds).  Needs only INSERT and SELECT on
    ``audit_log``.

    Raises:
        ValueError: a JSON value not serialisable (or NaN/Infinity), or a naive ``at``.
    """
    at = (at or datetime.now(UTC)).astimezone(UTC)
    _format_at(at)
    docs = {k: None if v is None else canonical_json(v).decode()
            for k, v in (("before", before), ("after", after), ("context", context))}  # fmt: skip
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _APPEND_LOCK_KEY})
    before_n, after_n, context_n = conn.execute(
        text("SELECT CAST(:before AS jsonb), CAST(:after AS jsonb), CAST(:context AS jsonb)"), docs
    ).one()
    last = conn.execute(text("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")).first()
    seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
    draft = AuditEntry(seq, at, actor, action, object_ref, before_n, after_n, prev_hash, "",
                       justification, approver, source, context_n)  # fmt: skip
    entry = AuditEntry(**{**draft.__dict__, "hash": entry_hash(draft)})
    conn.execute(
        text(f"INSERT INTO audit_log ({_COLUMNS}) VALUES (:seq, :at, :actor, :action, :object_ref, "
             "CAST(:before AS jsonb), CAST(:after AS jsonb), :prev_hash, :hash, :justification, :approver, "
             ":source, CAST(:context AS jsonb))"),
        {**entry.__dict__, **docs},
    )  # fmt: skip
    return entry


class AuditLog:
    """The audit trail in PostgreSQL (table ``audit_log`` from the migrations).

    Args:
        engine: SQLAlchemy engine of the analytics database.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def append(
        self, actor: str, action: str, object_ref: str, before: Any = None, after: Any = None,
        at: datetime | None = None, **optional: Any,
    ) -> AuditEntry:  # fmt: skip
        """Append one row in its own transaction and return it (committed); see :func:`append_entry`.

        ``optional``: ``justification``, ``approver``, ``source``, ``context``.
        """
        with self.engine.begin() as conn:
            return append_entry(conn, actor, action, object_ref, before, after, at=at, **optional)

    def entries(self, batch: int = 1000) -> Iterator[AuditEntry]:
        """All rows in ascending ``seq`` order, read with a server-side cursor."""
        with self.engine.connect() as conn:
            result = conn.execute(text(f"SELECT {_COLUMNS} FROM audit_log ORDER BY seq"),
                                  execution_options={"stream_results": True, "yield_per": batch})
            for row in result:
                yield AuditEntry(*row)

    def head(self) -> tuple[int, str] | None:
        """``(seq, hash)`` of the newest row (record it elsewhere as an anchor), or None if empty."""
        with self.engine.connect() as conn:
            row = conn.execute(text("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")).first()
        return (row[0], row[1]) if row else None

    def verify(self, anchor: tuple[int, str] | None = None, expect_head: str | None = None) -> VerifyResult:
        """Verify the stored chain (see :func:`verify_chain`)."""
        return verify_chain(self.entries(), anchor, expect_head)


def main(argv: list[str] | None = None) -> int:
    """``game-analytics audit ...``: see :func:`game_analytics.audit.cli.main`."""
    from game_analytics.audit.cli import main as cli_main

    return cli_main(argv)
