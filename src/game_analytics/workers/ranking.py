"""Ranking worker (the RankingJob CronJob) and ``game-analytics rate``.

One run (``game-analytics worker ranking --config ranking.json``):

1. Parse the RankingJob document (:func:`game_analytics.controller.rankingjob.render.ranking_document`) with
   :class:`~game_analytics.api.rankingjob.RankingJobSpec`.
2. Read the job's match results from PostgreSQL: rows of ``matches`` (filled by the ingest worker from
   ``match_result`` events) whose source event has ``spec.source.eventType`` and whose game is
   ``spec.source.game``, in time order; for an algorithm that rates team matches (TrueSkill) also the team and
   free-for-all events (payload ``teams``), which the other algorithms leave out.
3. **Full recompute** of all ratings from the first match (:func:`rate_matches`). This keeps the worker stateless
   and idempotent (a re-run or a late, back-dated match gives the same result as an incremental update would):
   Glicko-2 over the 14,018 Bundesliga matches takes about 15 ms, and 2 million matches among 1 million players
   about 4 s (compiled period loop; benchmarks/bench_ratings.py). Season resets are replayed at their
   start times (see below), so the history is reproducible.
4. One PostgreSQL transaction: ``rating_history`` rows of the job (one per player and rating period played) are
   replaced, ``leaderboard_entries`` of the current season are upserted.
5. The Redis sorted set leaderboard is rebuilt from the same entries and swapped in atomically
   (:class:`game_analytics.leaderboard.Leaderboard`).

Rating periods, seasons and inactivity decay: see :mod:`game_analytics.analytics.ratings.engine`.

A season reset (``--season-reset``) is keyed to its start time: the CronJob's scheduled time (``--scheduled-for``,
default the time in the Job's name: :mod:`game_analytics.workers.jobs`) or ``--reset-at``.  When the current season
(> 1) already started at or after that time, the reset has happened: a retried reset Job is an ordinary run and does
not advance the season again.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from game_analytics.analytics.ratings.engine import HISTORY_PERIOD_SECONDS, RatingResult, rate_matches
from game_analytics.api.common import parse_duration
from game_analytics.api.rankingjob import ALGORITHMS, Algorithm, League, RankingJobSpec, RankingJobStatus
from game_analytics.console import EXIT_FAILED, EXIT_USAGE, ArgumentParser, fail
from game_analytics.leaderboard import Entry, Leaderboard, build_entries, write_entries
from game_analytics.workers.jobs import job_name, scheduled_time

# The worker's settings and runtime (pydantic-settings, SQLAlchemy, psycopg, the HTTP server) are imported by the
# functions that use them: `game-analytics rate` imports this module and needs none of them (start-up cost).

__all__ = [
    "HISTORY_PERIOD_SECONDS",
    "RatingResult",
    "leaderboard_entries",
    "load_job",
    "main",
    "rate_main",
    "rate_matches",
    "read_match_csv",
]

log = logging.getLogger(__name__)


def leaderboard_entries(result: RatingResult, leagues: Sequence[League]) -> list[Entry]:
    """The ranked leaderboard of ``result`` (see :func:`game_analytics.leaderboard.build_entries`)."""
    rd = np.nan_to_num(result.rd, nan=0.0)
    return build_entries(result.players, result.rating, rd, result.games, leagues,
                         rd_present=not np.isnan(result.rd).all())  # fmt: skip


# --- the worker ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """A parsed RankingJob document: ``board`` is ``namespace/name``."""

    name: str
    namespace: str
    spec: RankingJobSpec

    @property
    def board(self) -> str:
        return f"{self.namespace}/{self.name}"


def load_job(path: str | Path) -> Job:
    """Read a ranking.json document (the RankingJob spec in camelCase plus ``name`` and ``namespace``).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, ``name`` missing, or the spec is invalid (pydantic's message names the field).
    """
    text = Path(path).read_text()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON: {exc}") from exc
    if not isinstance(doc, dict) or not doc.get("name"):
        raise ValueError(f"{path}: the document needs a 'name'")
    name, namespace = doc.pop("name"), doc.pop("namespace", "default")
    try:
        spec = RankingJobSpec.model_validate(doc)
    except ValidationError as exc:
        raise ValueError(f"{path}: invalid RankingJob spec: {exc}") from exc
    return Job(name=name, namespace=namespace, spec=spec)


@dataclass
class RunSummary:
    """What a run did (printed as JSON by :func:`main`)."""

    board: str
    algorithm: str
    season: int
    matches: int
    players: int
    history_rows: int
    seconds: float
    top: list[dict[str, Any]]
    reset: str | None = None  # with --season-reset: "applied", or "already applied" (a retried reset)


def run(job: Job, dsn: str, redis_client: Any | None, *, as_of: datetime | None = None,
        season_reset: bool = False, reset_at: datetime | None = None) -> RunSummary:  # fmt: skip
    """Compute and store the job's ratings (see the module docstring); returns a summary.

    ``reset_at`` keys a ``season_reset``: when the current season (> 1) started at or after it, that reset
    already happened and this run does not advance the season (see the module docstring).

    Raises:
        psycopg.Error / redis.RedisError: storage failures (the PostgreSQL transaction is rolled back).
    """
    started = time.perf_counter()
    reset: str | None = None
    spec = job.spec
    import psycopg  # the database half: not imported by `game-analytics rate`

    from game_analytics.storage import derived
    from game_analytics.storage.engine import libpq_dsn
    from game_analytics.storage.queries.ratings import read_matches, read_seasons, write_history

    with psycopg.connect(libpq_dsn(dsn)) as conn:
        derived.catch_up_now(conn)  # matches are derived from events: fold in the ones stored since
        with conn.transaction():
            # One rating run per board at a time (the CronJob forbids concurrency; this also covers manual runs).
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"ranking:{job.board}",))
            matches = read_matches(conn, spec.source.game, spec.source.event_type,
                                   teams=ALGORITHMS[spec.algorithm].teams)
            seasons = read_seasons(conn, job.board)
            current = max(seasons, default=1)
            starts = [seasons[k] for k in sorted(seasons) if k > 1]
            if season_reset and reset_at is not None and current > 1 and seasons[current] >= reset_at:
                log.info("season reset of %s at %s already applied (season %d started %s): not repeated",
                         job.board, reset_at.isoformat(), current, seasons[current].isoformat())  # fmt: skip
                season_reset, reset = False, "already applied"
            elif season_reset:
                reset = "applied"
            if season_reset:
                # Final standings of the ending season first (matches may have arrived since the last run).
                ending = rate_matches(matches, spec, starts, as_of=as_of)
                write_entries(conn, job.board, current, leaderboard_entries(ending, spec.leagues))
                current += 1
                starts.append(reset_at or datetime.now(UTC))
            result = rate_matches(matches, spec, starts, as_of=as_of)
            result.season = current
            entries = leaderboard_entries(result, spec.leagues)
            write_history(conn, job.board, spec.algorithm.value, result.history)
            write_entries(conn, job.board, current, entries, computed_at=reset_at if season_reset else None)
        if redis_client is not None:
            Leaderboard(redis_client, job.board).publish(entries, current, limit=spec.leaderboard.size)
    size = spec.leaderboard.size
    return RunSummary(
        board=job.board, algorithm=spec.algorithm.value, season=current, matches=len(matches),
        players=len(entries), history_rows=len(result.history), seconds=round(time.perf_counter() - started, 3),
        top=[e.as_dict() for e in entries[: min(size, 10)]], reset=reset,
    )  # fmt: skip


def write_status(path: Path, summary: RunSummary) -> None:
    """Write the RankingJob status fields this run determined as JSON (``{"season": 3, "playersRated": 18}``).

    In the CronJob ``path`` is the container's termination-message file (well under the kubelet's 4 KiB limit),
    which the operator reads back into the RankingJob's status (:mod:`game_analytics.controller.rankingjob.plan`).

    Raises:
        OSError: ``path`` cannot be written.
    """
    status = RankingJobStatus(season=summary.season, players_rated=summary.players)
    path.write_text(json.dumps(status.model_dump(by_alias=True, mode="json", include={"season", "players_rated"})))


def _time(text: str | None) -> datetime | None:
    """An ISO 8601 setting (already checked by the settings model) as an aware datetime; None stays None."""
    from game_analytics.settings import parse_time

    return None if text is None else parse_time(text)


def build_parser() -> argparse.ArgumentParser:
    """Options of ``game-analytics worker ranking``: the ranking settings (each also read from its
    ``GAME_ANALYTICS_*`` variable)."""
    from game_analytics.workers import runtime

    return runtime.parser("ranking", "Compute ratings and leaderboards.")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ranking job once; prints a JSON summary. Returns 0, 1 (the run failed: storage, Redis) or 2 (usage:
    flags, settings or the --config document)."""
    from game_analytics.settings import ENV_PREFIX
    from game_analytics.workers import runtime

    parser = build_parser()
    args, settings = runtime.start(parser, argv, "ranking")
    if settings.config is None:
        parser.error(f"--config (or {ENV_PREFIX}CONFIG) is required: the RankingJob's ranking.json")
    try:
        job = load_job(settings.config)
    except (OSError, ValueError) as exc:
        print(f"error: --config: {exc}", file=sys.stderr)
        return EXIT_USAGE
    dsn = settings.dsn
    if job.spec.suspend:
        print(json.dumps({"board": job.board, "suspended": True}))
        return 0
    client = None
    if not settings.no_redis:
        from game_analytics.redis_client import connect

        if args.redis_url:  # the flag wins over Sentinels from the environment
            settings = settings.model_copy(update={"redis_sentinels": []})
        try:
            client = connect(settings)
        except ValueError as exc:
            print(f"error: {exc} (or pass --no-redis)", file=sys.stderr)
            return EXIT_USAGE
    as_of = None if settings.as_of in (None, "latest") else runtime.parse_as_of(settings.as_of)
    as_of = datetime.now(UTC) if as_of == "now" else as_of
    reset_at = _time(settings.reset_at) or _time(settings.scheduled_for) or scheduled_time(job_name())
    port = settings.port(default=0)
    server = runtime.serve(port, addr=settings.listen) if port else None
    try:
        summary = run(job, dsn, client, as_of=as_of, season_reset=settings.season_reset, reset_at=reset_at)
    except Exception as exc:  # noqa: BLE001 - report any storage failure as a failed run
        log.exception("ranking run failed")
        print(f"error: ranking run of {job.board} failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        if client is not None:
            client.close()
        if server is not None:
            server.shutdown()
    print(json.dumps(summary.__dict__, indent=2, default=str))
    if settings.status_file:
        write_status(settings.status_file, summary)
    return 0


# --- game-analytics rate ----------------------------------------------------------------------------------------

_CSV_COLUMNS = {"home": "home", "away": "away", "home_score": "home_score", "away_score": "away_score"}
_BUNDESLIGA_COLUMNS = {"HomeTeam": "home", "AwayTeam": "away", "HomeGoals": "home_score", "AwayGoals": "away_score",
                       "Date": "date"}  # fmt: skip


def read_match_csv(path: str | Path) -> pd.DataFrame:
    """Read a match CSV into the columns of :func:`rate_matches`.

    Accepted columns: ``home, away, home_score, away_score[, date]`` or the Bundesliga data set's
    ``HomeTeam, AwayTeam, HomeGoals, AwayGoals[, Date]``. Without a date every match gets the same time
    (one rating period for Glicko-2, file order for Elo/OpenSkill); rows without a date are rated last.

    Raises:
        FileNotFoundError: no such file.
        ValueError: required columns missing (named), scores not whole numbers >= 0, or an unparsable date.
    """
    frame = pd.read_csv(path)
    if set(_BUNDESLIGA_COLUMNS) - {"Date"} <= set(frame.columns):
        frame = frame.rename(columns=_BUNDESLIGA_COLUMNS)
    missing = [c for c in _CSV_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {', '.join(missing)} (need home, away, home_score, away_score[, date] "
            "or HomeTeam, AwayTeam, HomeGoals, AwayGoals)"
        )
    out = frame[list(_CSV_COLUMNS)].copy()
    for column in ("home_score", "away_score"):
        values = pd.to_numeric(out[column], errors="coerce")
        if values.isna().any() or (values < 0).any() or (values % 1 != 0).any():
            row = int(np.flatnonzero((values.isna() | (values < 0) | (values % 1 != 0)).to_numpy())[0])
            raise ValueError(f"{path}: column {column} row {row + 2}: scores must be whole numbers >= 0")
        out[column] = values.astype(np.int64)
    out["home"] = out["home"].astype(str)
    out["away"] = out["away"].astype(str)
    if "date" in frame.columns:
        try:
            dates = pd.to_datetime(frame["date"], utc=True)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: column date: {exc}") from exc
        out["occurred_at"] = dates.fillna(dates.max() if dates.notna().any() else pd.Timestamp(0, tz="UTC"))
        out = out.sort_values("occurred_at", kind="stable").reset_index(drop=True)
    else:
        out["occurred_at"] = pd.Timestamp(0, tz="UTC")
    return out


PROG_RATE = "game-analytics rate"


def rate_main(argv: Sequence[str] | None = None) -> int:
    """``game-analytics rate FILE.csv --algorithm glicko2|elo|openskill|trueskill [--format table|json] [--top N]``.

    Returns 0, or 2 (usage, as for ``fit``) for a missing or invalid file, with one line naming the file and what is
    wrong with it (missing columns, a bad row); argparse exits with 2 for a bad option such as an unknown algorithm.
    """
    p = ArgumentParser(prog=PROG_RATE, description="Rate a match CSV and print the leaderboard.")  # one-line errors
    p.add_argument(
        "file", help="CSV with home, away, home_score, away_score[, date] (or the Bundesliga columns)"
    )
    p.add_argument("--algorithm", choices=[a.value for a in Algorithm], default="glicko2")
    p.add_argument("--output", "--format", dest="format", choices=["table", "json"], default="table",
                   help="table (default) or json")
    p.add_argument("--top", type=int, default=20, help="rows to print (default 20; 0 = all)")
    p.add_argument("--rating-period", default="7d", help="Glicko-2 rating period (default 7d)")
    args = p.parse_args(argv)
    if args.top < 0:
        p.error("--top must be >= 0")
    try:
        parse_duration(args.rating_period)
    except ValueError as exc:
        p.error(f"--rating-period: {exc}")
    try:
        matches = read_match_csv(args.file)
    except FileNotFoundError:
        return fail(PROG_RATE, f"{args.file}: no such file", EXIT_USAGE)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        return fail(PROG_RATE, f"{exc}" if str(args.file) in str(exc) else f"{args.file}: {exc}", EXIT_USAGE)
    doc: dict[str, Any] = {"source": {"game": "csv"}, "algorithm": args.algorithm,
                           "inactivityDecay": {"enabled": False}}  # fmt: skip
    if args.algorithm == "glicko2":
        doc["glicko2"] = {"ratingPeriod": args.rating_period}
    spec = RankingJobSpec.model_validate(doc)
    try:
        result = rate_matches(matches, spec)
    except ValueError as exc:  # the matches themselves are wrong (a player against themselves)
        return fail(PROG_RATE, f"{args.file}: {exc}", EXIT_USAGE)
    entries = leaderboard_entries(result, spec.leagues)
    shown = entries[: args.top] if args.top else entries
    if args.format == "json":
        print(json.dumps({"algorithm": args.algorithm, "matches": len(matches), "players": len(entries),
                          "leaderboard": [e.as_dict() for e in shown]}, indent=2))  # fmt: skip
        return 0
    from rich.console import Console
    from rich.table import Table

    label = ALGORITHMS[Algorithm(args.algorithm)].deviation
    table = Table(title=f"{args.algorithm} leaderboard: {len(matches):,} matches, {len(entries):,} players")
    for header in ("#", "player", "rating", label or "-", "games", "percentile", "league"):
        table.add_column(header, justify="left" if header in ("player", "league") else "right")
    for e in shown:
        table.add_row(str(e.rank), e.player_id, f"{e.rating:.1f}", "" if e.rd is None else f"{e.rd:.1f}",
                      str(e.games), f"{e.percentile:.1f}", e.league or "")  # fmt: skip
    Console().print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
