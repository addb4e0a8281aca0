"""Append-only, hash-chained audit trail stored in the ``audit_log`` table.

Every row carries ``seq`` (1, 2, 3, ... without gaps), ``at``, ``actor``, ``action``, ``object_ref`` and the JSON
``before`` / ``after`` states, plus::

    prev_hash = hash of row seq-1   (64 zeros for seq 1)
    hash      = sha256(canonical_json({seq, at, actor, action, object_ref, before, after}) + prev_hash)

``canonical_json`` sorts keys, uses compact separators, keeps non-ASCII characters as UTF-8, and writes ``at`` as
``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC.  Editing any field of a row, deleting a row or reordering rows therefore
breaks the chain at a specific ``seq``, which :func:`verify_chain` / :meth:`AuditLog.verify` report.  Truncating
the tail is only detectable against an externally kept anchor (``verify(anchor=log.head())``).

The database additionally rejects UPDATE, DELETE and TRUNCATE on ``audit_log`` with a trigger (see the migration);
the hash chain is what still catches an attacker who disables that trigger.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, text

__all__ = [
    "GENESIS_HASH",
    "AuditEntry",
    "AuditLog",
    "VerifyResult",
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


@dataclass(frozen=True)
class AuditEntry:
    """One audit row; ``before`` / ``after`` are JSON values (typically dicts) or None."""

    seq: int
    at: datetime
    actor: str
    action: str
    object_ref: str
    before: Any
    after: Any
    prev_hash: str
    hash: str

    def content(self) -> dict[str, Any]:
        """The hashed content (everything but the two hashes), with ``at`` in canonical form."""
        return {
            "seq": self.seq, "at": _format_at(self.at), "actor": self.actor, "action": self.action,
            "object_ref": self.object_ref, "before": self.before, "after": self.after,
        }  # fmt: skip


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


def verify_chain(entries: Iterable[AuditEntry], anchor: tuple[int, str] | None = None) -> VerifyResult:
    """Check a chain given in storage order (ascending ``seq``); pure function.

    Checks, per row: ``seq`` continues the previous one by exactly 1 (a gap = deleted rows, a step back = reordered
    rows), ``prev_hash`` equals the previous row's ``hash``, and ``hash`` matches the recomputed content hash.
    With ``anchor=(seq, hash)`` (a previously recorded :meth:`AuditLog.head`), the row ``seq`` must exist with that
    hash, which also detects a truncated tail or a rewritten chain.
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
    return VerifyResult(True, checked)


_COLUMNS = "seq, at, actor, action, object_ref, before, after, prev_hash, hash"


class AuditLog:
    """The audit trail in PostgreSQL (table ``audit_log`` from the migrations).

    Args:
        engine: SQLAlchemy engine of the analytics database.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def append(
        self, actor: str, action: str, object_ref: str, before: Any = None, after: Any = None,
        at: datetime | None = None,
    ) -> AuditEntry:  # fmt: skip
        """Append one row and return it (committed).

        Appends are serialised with a transaction-level advisory lock, so concurrent writers still build one
        gap-free chain.  ``before``/``after`` are normalised through PostgreSQL ``jsonb`` first, so the hash is
        computed over exactly what later reads return.  ``at`` defaults to now (UTC, microseconds).

        Raises:
            ValueError: ``before``/``after`` not JSON-serialisable (or NaN/Infinity), or a naive ``at``.
        """
        at = (at or datetime.now(UTC)).astimezone(UTC)
        _format_at(at)
        before_json = None if before is None else canonical_json(before).decode()
        after_json = None if after is None else canonical_json(after).decode()
        with self.engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _APPEND_LOCK_KEY})
            before_n, after_n = conn.execute(
                text("SELECT CAST(:b AS jsonb), CAST(:a AS jsonb)"), {"b": before_json, "a": after_json}
            ).one()
            last = conn.execute(text("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")).first()
            seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
            draft = AuditEntry(seq, at, actor, action, object_ref, before_n, after_n, prev_hash, "")
            entry = AuditEntry(**{**draft.__dict__, "hash": entry_hash(draft)})
            conn.execute(
                text(f"INSERT INTO audit_log ({_COLUMNS}) VALUES (:seq, :at, :actor, :action, :object_ref, "
                     "CAST(:before AS jsonb), CAST(:after AS jsonb), :prev_hash, :hash)"),
                {**entry.__dict__, "before": before_json, "after": after_json},
            )  # fmt: skip
        return entry

    def entries(self, batch: int = 1000) -> Iterator[AuditEntry]:
        """All rows in ascending ``seq`` order, read with a server-side cursor."""
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch).execute(
                text(f"SELECT {_COLUMNS} FROM audit_log ORDER BY seq")
            )
            for row in result:
                yield AuditEntry(*row)

    def head(self) -> tuple[int, str] | None:
        """``(seq, hash)`` of the newest row (record it elsewhere as an anchor), or None if empty."""
        with self.engine.connect() as conn:
            row = conn.execute(text("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")).first()
        return (row[0], row[1]) if row else None

    def verify(self, anchor: tuple[int, str] | None = None) -> VerifyResult:
        """Verify the stored chain (see :func:`verify_chain`)."""
        return verify_chain(self.entries(), anchor)


def main(argv: list[str] | None = None) -> int:
    """``game-analytics audit verify|head [--dsn URL] [--anchor SEQ:HASH]``.

    ``verify`` checks the whole chain (exit code 1 and the first bad seq when broken); ``head`` prints the newest
    ``SEQ:HASH`` to keep as an anchor elsewhere.  ``--dsn`` defaults to ``GAME_ANALYTICS_DSN``.
    """
    import argparse

    from game_analytics.settings import WorkerSettings
    from game_analytics.storage.engine import make_engine

    dsn = WorkerSettings.from_env().dsn
    parser = argparse.ArgumentParser(prog="game-analytics audit", description="audit trail tools")
    parser.add_argument("command", choices=["verify", "head"])
    parser.add_argument("--dsn", default=dsn, required=dsn is None, help="PostgreSQL URL")
    parser.add_argument("--anchor", help="SEQ:HASH recorded earlier with 'head' (detects a truncated tail)")
    args = parser.parse_args(argv)
    anchor = None
    if args.anchor:
        seq, _, digest = args.anchor.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            parser.error("--anchor must be SEQ:HASH (decimal seq, 64 hex digits)")
        anchor = (int(seq), digest)
    engine = make_engine(args.dsn)
    try:
        log = AuditLog(engine)
        if args.command == "head":
            head = log.head()
            print("empty" if head is None else f"{head[0]}:{head[1]}")
            return 0
        result = log.verify(anchor)
    finally:
        engine.dispose()
    if result.ok:
        print(f"ok: {result.checked} entries, hash chain intact")
        return 0
    print(f"BROKEN at seq {result.first_bad_seq}: {result.problem}")
    return 1
