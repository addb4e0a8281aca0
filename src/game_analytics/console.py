"""Small shared pieces of the admin commands (``interventions``, ``audit``): exit codes, times, output.

Exit codes: :data:`EXIT_OK` 0 (done), :data:`EXIT_FAILED` 1 (the work failed: a conflict, a broken chain, a case
not found, the database refused), :data:`EXIT_USAGE` 2 (bad arguments; argparse uses 2 too).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO

from game_analytics.api.common import parse_duration

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "ArgumentParser",
    "UsageError",
    "add_output_flags",
    "default_actor",
    "dump_json",
    "fail",
    "output_and_folder",
    "parse_when",
    "print_files",
    "render_table",
]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(ValueError):
    """Bad or missing arguments found after parsing (exit code 2)."""


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line on stderr (``prog: error: ...``) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        """Print ``prog: error: message`` and exit 2 (no usage dump)."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def fail(prog: str, message: str, code: int = EXIT_FAILED, stream: TextIO | None = None) -> int:
    """Print ``prog: error: message`` (one line) to stderr and return ``code``."""
    print(f"{prog}: error: {' '.join(message.split())}", file=stream or sys.stderr)
    return code


def run_database_command(prog: str, argv: Sequence[str] | None,
                         build_parser: Callable[[str | None], argparse.ArgumentParser],
                         run: Callable[[argparse.Namespace], int], *,
                         usage_errors: tuple[type[Exception], ...] = (UsageError,),
                         work_errors: tuple[type[Exception], ...] = (),
                         needs_dsn: Callable[[argparse.Namespace], bool] = lambda _args: True) -> int:
    """Parse ``argv`` with ``build_parser(default DSN)`` and call ``run(args)``, turning errors into exit codes.

    The DSN defaults to ``GAME_ANALYTICS_DSN`` (required unless ``needs_dsn(args)`` is false). ``usage_errors``
    exit 2; ``work_errors``, database errors and ``OSError`` exit 1; each is reported as one line naming the
    command. Returns the exit code.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from game_analytics.settings import environment

    parser = build_parser(None)
    args = parser.parse_args(argv)
    args.dsn = args.dsn or environment(parser).dsn
    if not args.dsn and needs_dsn(args):
        return fail(prog, "--dsn is required (or set GAME_ANALYTICS_DSN)", EXIT_USAGE)
    try:
        return run(args)
    except usage_errors as exc:
        return fail(prog, str(exc), EXIT_USAGE)
    except work_errors as exc:
        return fail(prog, str(exc))
    except (SQLAlchemyError, OSError) as exc:
        return fail(prog, (str(getattr(exc, "orig", None) or exc).splitlines() or [type(exc).__name__])[0])


def default_actor() -> str:
    """Who is acting: ``$GAME_ANALYTICS_ACTOR``, else the login name."""
    return os.environ.get("GAME_ANALYTICS_ACTOR") or getpass.getuser()


def parse_when(text: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 time (naive = UTC) or a duration ago (``90m``, ``2h``, ``7d``) as an aware datetime.

    Raises:
        UsageError: neither form.
    """
    now = now or datetime.now(UTC)
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"invalid time {text!r}: expected ISO 8601 (2026-12-01T10:00Z) or a duration ago "
                         "(30m, 2h, 7d)") from None  # fmt: skip
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def render_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], max_width: int = 60) -> str:
    """Plain-text table of ``rows`` (one line each) under ``columns``; cells truncated to ``max_width``."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    cells = [[c if len(c) <= max_width else c[: max_width - 1] + "…" for c in line] for line in cells]
    widths = [max([len(c), *(len(line[i]) for line in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells]
    return "\n".join(lines)


def dump_json(value: Any) -> str:
    """Indented JSON with datetimes as ISO 8601 strings."""
    return json.dumps(value, indent=2, sort_keys=True, default=lambda v: v.isoformat() if isinstance(v, datetime)
                      else str(v))  # fmt: skip


def add_output_flags(parser: argparse.ArgumentParser, default_dir: str) -> None:
    """``--output table|json`` (how a command that writes files lists them) and ``--output-dir DIR`` (where it writes
    them); read both back with :func:`output_and_folder`."""
    parser.add_argument("--output", default="table", metavar="table|json",
                        help="list the written files one path a line (table, the default) or as json "
                             "(an --output that is a folder is the older spelling of --output-dir)")
    parser.add_argument("--output-dir", default=None, help=f"folder of the written files (default: {default_dir})")


def output_and_folder(args: argparse.Namespace, default_dir: str) -> tuple[str, Path]:
    """(``table`` or ``json``, the folder) from :func:`add_output_flags`'s flags.

    Raises:
        UsageError: ``--output`` names a folder (the older spelling) and ``--output-dir`` is given too.
    """
    if args.output in ("table", "json"):
        return args.output, Path(args.output_dir or default_dir)
    if args.output_dir is not None:
        raise UsageError(f"--output is table or json with --output-dir (got {args.output!r})")
    return "table", Path(args.output)


def print_files(paths: Sequence[Any], output: str) -> None:
    """The written files on stdout: one path a line, or ``{"files": [...]}`` for ``--output json``."""
    if output == "json":
        print(dump_json({"files": [str(p) for p in paths]}))
    else:
        for path in paths:
            print(path)
