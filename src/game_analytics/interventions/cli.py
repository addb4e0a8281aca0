"""``game-analytics interventions list|show|assign|ack|resolve|reopen|comment``: work the queue.

Examples::

    game-analytics interventions list --priority critical --older-than 30m
    game-analytics interventions ack 42
    game-analytics interventions resolve 42 --resolution actioned --justification "refunded, account locked"
    game-analytics interventions resolve 7 8 9 --resolution duplicate --justification "same ring" --approved-by bob
    game-analytics interventions reopen 42 --justification "came back" --approved-by bob

Every change is one transaction with its audit entry (see :mod:`game_analytics.interventions.service`); the actor
is ``--actor`` (default ``$GAME_ANALYTICS_ACTOR``, else the login name), the source ``cli``.

Exit codes: 0 done; 1 failed (a conflict: the case changed meanwhile or is already in that state - recorded in
the audit log; no such case; database error); 2 usage (bad arguments, a missing justification or approver).
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from game_analytics.api.common import parse_duration
from game_analytics.console import (
    EXIT_FAILED,
    EXIT_OK,
    ArgumentParser,
    UsageError,
    default_actor,
    dump_json,
    render_table,
    run_database_command,
)
from game_analytics.interventions import queue, service
from game_analytics.storage.models import InterventionStatus

__all__ = ["build_parser", "main"]

PROG = "game-analytics interventions"
LIST_COLUMNS = ("id", "severity", "status", "category", "rule", "game", "subject", "assignee", "occurrences",
                "age", "resolution")  # fmt: skip
OUTCOME_COLUMNS = ("id", "action", "result", "status", "assignee", "resolution", "version", "audit_seq")


def _age(seconds: float) -> str:
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h" if days else (f"{hours}h{minutes}m" if hours else f"{minutes}m")


def build_parser(dsn: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``game-analytics interventions``; ``dsn`` is the default of ``--dsn``."""
    parser = ArgumentParser(prog=PROG, description="work the intervention queue")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dsn", default=dsn, help="PostgreSQL URL (env GAME_ANALYTICS_DSN)")
    common.add_argument("--output", choices=["table", "json"], default="table")
    acting = argparse.ArgumentParser(add_help=False, parents=[common])
    acting.add_argument("--actor", default=None, help="who acts (default $GAME_ANALYTICS_ACTOR or the login name)")
    acting.add_argument("--justification", "-j", help="why (required by resolve and reopen)")
    acting.add_argument("--if-version", type=int, help="refuse (conflict) unless the case is at this version")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=ArgumentParser)

    ls = sub.add_parser("list", parents=[common], help="list cases (default: open and in progress)")
    ls.add_argument("--game", action="append", default=[], help="only this game (repeatable)")
    ls.add_argument("--rule", action="append", default=[], help="only this rule, <namespace>/<name> (repeatable)")
    ls.add_argument("--detector", action="append", default=[], help="only this detector kind (repeatable)")
    ls.add_argument("--status", action="append", default=[],
                    help="open, in_progress, resolved, dismissed or all (repeatable; default open + in_progress)")
    ls.add_argument("--priority", action="append", default=[], help="1/critical, 2/warning, 3/info (repeatable)")
    ls.add_argument("--assignee", help="only cases assigned to this person ('-' = unassigned)")
    ls.add_argument("--older-than", help="only cases older than this duration (30m, 2h, 7d)")
    ls.add_argument("--newer-than", help="only cases younger than this duration")
    ls.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")

    show = sub.add_parser("show", parents=[common], help="one case: state, occurrences, audit history")
    show.add_argument("id", type=int)

    assign = sub.add_parser("assign", parents=[acting], help="assign a case (or --unassign)")
    assign.add_argument("id", type=int)
    assign.add_argument("assignee", nargs="?")
    assign.add_argument("--unassign", action="store_true", help="clear the assignee")

    ack = sub.add_parser("ack", parents=[acting], help="acknowledge a case (in_progress, assigned to you if unset)")
    ack.add_argument("id", type=int)

    resolve = sub.add_parser("resolve", parents=[acting], help="resolve one or more cases")
    resolve.add_argument("ids", type=int, nargs="+", metavar="id")
    resolve.add_argument("--resolution", "-r", required=True, choices=service.RESOLUTIONS)
    resolve.add_argument("--approved-by", help="second person approving (required for more than one case)")

    reopen = sub.add_parser("reopen", parents=[acting], help="reopen a resolved case (needs --approved-by)")
    reopen.add_argument("id", type=int)
    reopen.add_argument("--approved-by", help="second person approving (required)")

    note = sub.add_parser("comment", parents=[acting], help="add a comment to a case")
    note.add_argument("id", type=int)
    note.add_argument("text")
    return parser


def _filter(args: argparse.Namespace) -> queue.CaseFilter:
    try:
        statuses: tuple[InterventionStatus, ...] = ()
        if "all" in args.status:
            statuses = tuple(InterventionStatus)
        elif args.status:
            statuses = tuple(InterventionStatus(s) for s in args.status)
    except ValueError:
        raise UsageError(f"--status must be one of {', '.join(s.value for s in InterventionStatus)} or all") from None
    try:
        priorities = tuple(queue.parse_priority(p) for p in args.priority)
        older = parse_duration(args.older_than) if args.older_than else None
        newer = parse_duration(args.newer_than) if args.newer_than else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    return queue.CaseFilter(
        games=tuple(args.game), rules=tuple(args.rule), detectors=tuple(args.detector), statuses=statuses,
        priorities=priorities, assignee=args.assignee, older_than=older, newer_than=newer, limit=args.limit,
    )  # fmt: skip


def _outcome_row(outcome: service.Outcome) -> dict[str, Any]:
    state = outcome.after or outcome.before or {}
    return {
        "id": outcome.case_id, "action": outcome.entry.action, "ok": outcome.ok,
        "result": "ok" if outcome.ok else f"CONFLICT: {outcome.conflict}", "conflict": outcome.conflict,
        "status": state.get("status"), "assignee": state.get("assignee"), "resolution": state.get("resolution"),
        "version": state.get("version"), "before": outcome.before, "after": outcome.after,
        "audit_seq": outcome.entry.seq, "audit_hash": outcome.entry.hash,
    }  # fmt: skip


def _change(session: Session, args: argparse.Namespace) -> list[service.Outcome]:
    actor = service.Actor(args.actor or default_actor(), "cli", {
        "command": f"interventions {args.command}", "host": socket.gethostname(), "pid": os.getpid()})  # fmt: skip
    common = {"expect_version": args.if_version}
    if args.command == "assign":
        if args.unassign == (args.assignee is not None):
            raise UsageError("give an assignee or --unassign (not both)")
        return [service.assign(session, args.id, args.assignee, actor, justification=args.justification, **common)]
    if args.command == "ack":
        return [service.acknowledge(session, args.id, actor, justification=args.justification, **common)]
    if args.command == "resolve":
        return service.resolve(session, args.ids, args.resolution, args.justification, actor,
                               approved_by=args.approved_by, **common)  # fmt: skip
    if args.command == "reopen":
        return [service.reopen(session, args.id, args.justification, actor, approved_by=args.approved_by, **common)]
    return [service.comment(session, args.id, args.text, actor)]


def _print_case(case: dict[str, Any]) -> None:
    fields = [k for k in case if k not in ("occurrence_list", "history")]
    print("\n".join(f"{k:>16}: {'-' if case[k] is None else case[k]}" for k in fields))
    print("\noccurrences:")
    print(render_table(case["occurrence_list"], ("detection_id", "detected_at", "score", "evidence"), 90))
    print("\nhistory:")
    print(render_table(case["history"], ("seq", "at", "actor", "source", "action", "approver", "justification")))


def _run(args: argparse.Namespace) -> int:
    from game_analytics.storage.engine import make_engine

    flt = _filter(args) if args.command == "list" else None
    engine = make_engine(args.dsn)
    try:
        with Session(engine, expire_on_commit=False) as session:
            if flt is not None:
                rows = queue.list_cases(session, flt)
                if args.output == "json":
                    print(dump_json(rows))
                else:
                    print(render_table([{**r, "age": _age(r["age_seconds"])} for r in rows], LIST_COLUMNS))
                return EXIT_OK
            if args.command == "show":
                case = queue.show_case(session, args.id)
                if args.output == "json":
                    print(dump_json(case))
                else:
                    _print_case(case)
                return EXIT_OK
            outcomes = _change(session, args)
    finally:
        engine.dispose()
    rows = [_outcome_row(o) for o in outcomes]
    print(dump_json(rows) if args.output == "json" else render_table(rows, OUTCOME_COLUMNS, 80))
    return EXIT_OK if all(o.ok for o in outcomes) else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``game-analytics interventions`` (see the module docstring); returns the exit code."""
    return run_database_command(PROG, argv, build_parser, _run,
                                usage_errors=(UsageError, service.ApprovalRequired),
                                work_errors=(service.InterventionError,))
