"""``game-analytics audit verify|head|search|export``: the audit trail from the command line.

- ``verify [--anchor SEQ:HASH] [--expect-head HASH] [--output table|json]``: checks the whole chain; ``--expect-head`` (a hash printed
  by ``head`` and kept outside the database, ``SEQ:HASH`` accepted) also catches a chain the table owner
  rewrote consistently, truncated or extended.
- ``head [--output table|json]``: prints the newest ``SEQ:HASH`` (``empty`` for an empty log; json: ``{"seq", "hash"}``
  or ``null``).
- ``search [--actor] [--action] [--target] [--source] [--since] [--until] [--limit] [--output table|json]``:
  newest first; ``--action``/``--target`` ending in ``*`` match a prefix; times are ISO 8601 or durations ago.
- ``export --format csv|json [filters] [--out FILE]``: every matching row in chain order.

Exit codes: 0 ok, 1 failed (broken chain, database error), 2 usage.  ``--dsn`` defaults to ``GAME_ANALYTICS_DSN``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from game_analytics.audit import AuditLog
from game_analytics.audit.query import AuditQuery, search, to_csv, to_json
from game_analytics.console import (
    EXIT_FAILED,
    EXIT_OK,
    ArgumentParser,
    UsageError,
    dump_json,
    parse_when,
    render_table,
    run_database_command,
)

__all__ = ["build_parser", "main"]

PROG = "game-analytics audit"
SEARCH_COLUMNS = ("seq", "at", "actor", "source", "action", "object_ref", "approver", "justification")


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--actor", help="who acted (exact)")
    parser.add_argument("--action", help="action, e.g. intervention.resolve (trailing * = prefix)")
    parser.add_argument("--target", help="object_ref, e.g. intervention/42 (trailing * = prefix)")
    parser.add_argument("--source", help="cli, worker or operator")
    parser.add_argument("--since", help="from this time (ISO 8601 or a duration ago: 2h, 7d)")
    parser.add_argument("--until", help="before this time (ISO 8601 or a duration ago)")


def build_parser(dsn: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``game-analytics audit``; ``dsn`` is the default of ``--dsn``."""
    parser = ArgumentParser(prog=PROG, description="audit trail tools")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dsn", default=dsn, help="PostgreSQL URL (env GAME_ANALYTICS_DSN)")
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--output", choices=["table", "json"], default="table", help="table (default) or json")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=ArgumentParser)
    verify = sub.add_parser("verify", parents=[common, output], help="check the hash chain")
    verify.add_argument("--anchor", help="SEQ:HASH recorded earlier with 'head' (detects a truncated tail)")
    verify.add_argument("--expect-head", help="HASH (or SEQ:HASH) the newest entry must have")
    sub.add_parser("head", parents=[common, output], help="print the newest SEQ:HASH")
    found = sub.add_parser("search", parents=[common, output], help="find entries, newest first")
    _filters(found)
    found.add_argument("--limit", type=int, default=100, help="at most this many rows (default 100)")
    export = sub.add_parser("export", parents=[common], help="export entries in chain order")
    _filters(export)
    export.add_argument("--format", choices=["csv", "json"], required=True)
    export.add_argument("--out", help="write to this file instead of stdout")
    return parser


def _anchor(value: str, flag: str, hash_only_ok: bool) -> tuple[int | None, str]:
    seq, sep, digest = value.partition(":")
    if not sep and hash_only_ok:
        seq, digest = "", value
    if (seq and not seq.isdigit()) or (not seq and not hash_only_ok) or len(digest) != 64:
        raise UsageError(f"{flag} must be {'[SEQ:]HASH' if hash_only_ok else 'SEQ:HASH'} (64 hex digits)")
    return (int(seq) if seq else None), digest.lower()


def _query(args: argparse.Namespace, limit: int | None, order: str) -> AuditQuery:
    return AuditQuery(
        actor=args.actor, action=args.action, target=args.target, source=args.source,
        since=parse_when(args.since) if args.since else None, until=parse_when(args.until) if args.until else None,
        limit=limit, order=order,
    )  # fmt: skip


def _run(args: argparse.Namespace) -> int:
    from game_analytics.storage.engine import make_engine

    anchor = expect = None
    if args.command == "verify":
        if args.anchor:
            seq, digest = _anchor(args.anchor, "--anchor", hash_only_ok=False)
            anchor = (seq, digest)
        if args.expect_head:
            seq, expect = _anchor(args.expect_head, "--expect-head", hash_only_ok=True)
            if seq is not None:
                anchor = anchor or (seq, expect)
    if args.command == "search" and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    query = _query(args, args.limit, "desc") if args.command == "search" else (
        _query(args, None, "asc") if args.command == "export" else None)  # fmt: skip
    engine = make_engine(args.dsn)
    try:
        log = AuditLog(engine)
        if args.command == "head":
            head = log.head()
            if args.output == "json":
                print(dump_json(None if head is None else {"seq": head[0], "hash": head[1]}))
            else:
                print("empty" if head is None else f"{head[0]}:{head[1]}")
            return EXIT_OK
        if args.command == "verify":
            result = log.verify(anchor, expect)
            if args.output == "json":
                print(dump_json({"ok": result.ok, "checked": result.checked, "firstBadSeq": result.first_bad_seq,
                                 "problem": result.problem}))
                return EXIT_OK if result.ok else EXIT_FAILED
            if result.ok:
                print(f"ok: {result.checked} entries, hash chain intact" + (", head as expected" if expect else ""))
                return EXIT_OK
            print(f"BROKEN at seq {result.first_bad_seq}: {result.problem}")
            return EXIT_FAILED
        assert query is not None
        with engine.connect() as conn:
            entries = search(conn, query)
            if args.command == "search":
                rows = [e.as_dict() for e in entries]
                print(dump_json(rows) if args.output == "json" else render_table(rows, SEARCH_COLUMNS))
                return EXIT_OK
            chunks = to_csv(entries) if args.format == "csv" else to_json(entries)
            if args.out:
                with open(args.out, "w", encoding="utf-8", newline="") as out:
                    out.writelines(chunks)
            else:
                sys.stdout.writelines(chunks)
        return EXIT_OK
    finally:
        engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``game-analytics audit`` (see the module docstring); returns the exit code."""
    return run_database_command(PROG, argv, build_parser, _run)
