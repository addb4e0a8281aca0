"""Ranking worker (the RankingJob CronJob) and ``game-analytics rate``.

One run (``game-analytics worker ranking --config ranking.json``):

1. Parse the RankingJob document (:func:`game_analytics.controller.rankingjob.render.ranking_document`) with
   :class:`~game_analytics.api.rankingjob.RankingJobSpec`.
2. Read the job's match results from PostgreSQL: rows of ``matches`` (filled by the ingest worker from
   ``match_result`` events) whose source event has ``spec.source.eventType`` and whose game is
   ``spec.source.game``, in time order.
3. **Full recompute** of all ratings from the first match (:func:`rate_matches`). This keeps the worker stateless
   and idempotent (a re-run or a late, back-dated match gives the same result as an incremental update would):
   Glicko-2 over the 14,018 Bundesliga matches takes about 15 ms, and 2 million matches among 1 million players
   about 4 s (compiled period loop; benchmarks/bench_ratings.py). Season resets are replayed at their
   start times (see below), so the history is reproducible.
4. One PostgreSQL transaction: ``rating_history`` rows of the job (one per player and rating period played) are
   replaced, ``leaderboard_entries`` of the current season are upserted.
5. The Redis sorted set leaderboard is rebuilt from the same entries and swapped in atomically
   (:class:`game_analytics.leaderboard.Leaderboard`).

Rating periods: Glicko-2 uses fixed wall-clock buckets of ``spec.glicko2.ratingPeriod`` counted from the Unix
epoch; Elo and OpenSkill rate matches one by one in time order and record history in 7-day buckets.

Seasons: ``--season-reset`` starts season ``s + 1`` at ``--reset-at`` (default: now). It moves every rating
``softResetFactor`` of the way back to the initial rating (and the deviation back to the initial deviation) and
writes the new season's leaderboard. The start of season ``s`` is stored implicitly as the earliest
``computed_at`` of its ``leaderboard_entries`` rows (rows are upserted, and ``computed_at`` keeps the time a
player first entered the season's board); a full recompute replays every reset at that time with the spec's
current factor. Past seasons' leaderboard rows and the rating history are kept.

Inactivity decay (Glickman 1995, see :mod:`game_analytics.analytics.ratings.decay`): when
``spec.inactivityDecay.enabled``, the leaderboard deviation of a player idle for ``t`` whole rating periods before
``as_of`` (default: the newest match, i.e. the game's own clock) is ``min(sqrt(RD^2 + c^2 t), maxRD)``. For
OpenSkill ``c`` and ``maxRD`` are scaled by ``sigma0 / 350`` and the displayed rating is the ordinal
``mu - 3 sigma``; Elo has no deviation and is not decayed. The history stores undecayed values.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from pydantic import ValidationError

from game_analytics.analytics.ratings.decay import inactivity_rd
from game_analytics.analytics.ratings.elo import EloConfig, rate_elo
from game_analytics.analytics.ratings.glicko2 import Glicko2Config, Glicko2Ratings, rate_periods
from game_analytics.api.rankingjob import (
    Algorithm,
    EloParams,
    Glicko2Params,
    League,
    OpenSkillParams,
    RankingJobSpec,
    RankingJobStatus,
)
from game_analytics.leaderboard import Entry, Leaderboard, build_entries, write_entries
from game_analytics.settings import WorkerSettings, configure_logging
from game_analytics.storage import derived
from game_analytics.storage.engine import libpq_dsn

__all__ = [
    "HISTORY_PERIOD_SECONDS",
    "RatingResult",
    "load_job",
    "main",
    "parse_duration",
    "rate_main",
    "rate_matches",
    "read_match_csv",
]

log = logging.getLogger(__name__)

#: History bucket of the sequential algorithms (Elo, OpenSkill): 7 days, in seconds.
HISTORY_PERIOD_SECONDS = 7 * 86400

_DURATION_UNITS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
_DURATION_PART = re.compile(r"([0-9]+)(ms|y|w|d|h|m|s)")


def parse_duration(text: str) -> float:
    """Seconds of a Prometheus-style duration (``7d``, ``1h30m``, ``90s``, ``1w``).

    Raises:
        ValueError: the text is not a duration, or is zero.
    """
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r} (expected e.g. 7d, 12h, 1h30m)")
    seconds = sum(int(n) * _DURATION_UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"duration must be positive: {text!r}")
    return float(seconds)


# --- pure rating engine ---------------------------------------------------------------------------------------


@dataclass
class RatingResult:
    """Ratings of ``n`` players after all matches.

    Attributes:
        players: player ids, shape (n,), sorted ascending.
        rating: leaderboard rating, shape (n,): Glicko-2 rating, Elo rating or OpenSkill ordinal (mu - 3 sigma).
        rd: deviation after inactivity decay, shape (n,): Glicko-2 RD, OpenSkill sigma; NaN for Elo.
        volatility: Glicko-2 volatility, shape (n,); NaN for the others.
        games: matches played in the current season, shape (n,).
        last_played: time of each player's last match, ``datetime64[s]``, shape (n,).
        history: DataFrame with columns player_id, period, rating, rd, volatility (one row per player and
            period played; rd/volatility NaN where not defined); ``period`` is the bucket number since the epoch.
        season: the season the result belongs to (1 + number of resets replayed).
    """

    players: list[str]
    rating: np.ndarray
    rd: np.ndarray
    volatility: np.ndarray
    games: np.ndarray
    last_played: np.ndarray
    history: pd.DataFrame
    season: int = 1


def _scores(matches: pd.DataFrame) -> np.ndarray:
    diff = np.sign(matches["home_score"].to_numpy(np.int64) - matches["away_score"].to_numpy(np.int64))
    return (diff + 1) / 2.0


def _period_seconds(spec: RankingJobSpec) -> float:
    if spec.algorithm is Algorithm.GLICKO2:
        params = spec.algorithm_params()
        assert isinstance(params, Glicko2Params)
        return parse_duration(params.rating_period)
    return float(HISTORY_PERIOD_SECONDS)


def _initial(spec: RankingJobSpec) -> tuple[float, float]:
    """(initial rating/mu, initial deviation) of the job's algorithm (Elo: deviation NaN)."""
    params = spec.algorithm_params()
    if isinstance(params, Glicko2Params):
        return params.initial_rating, params.initial_rd
    if isinstance(params, EloParams):
        return params.initial_rating, float("nan")
    assert isinstance(params, OpenSkillParams)
    return params.mu, params.sigma


def _openskill_model(params: OpenSkillParams) -> Any:
    import openskill.models as models

    return getattr(models, params.model.value)(mu=params.mu, sigma=params.sigma)


def _rate_segment(
    spec: RankingJobSpec,
    state: dict[str, np.ndarray],
    a: np.ndarray,
    b: np.ndarray,
    s: np.ndarray,
    period: np.ndarray,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Rate one season's matches from ``state`` (arrays mu/rd/vol of all n players).

    Returns the new state and ``post``, shape (3, m, 2): per match and side, rating/mu, deviation and volatility
    right after the match (Glicko-2: after the match's rating period).
    """
    params = spec.algorithm_params()
    n = state["mu"].shape[0]
    post = np.full((3, a.size, 2), np.nan)
    if isinstance(params, Glicko2Params):
        config = Glicko2Config(
            tau=params.tau, initial_rating=params.initial_rating, initial_rd=params.initial_rd,
            initial_volatility=params.initial_volatility, max_rd=max(spec.inactivity_decay.max_rd, params.initial_rd),
        )  # fmt: skip
        start = Glicko2Ratings(rating=state["mu"], rd=state["rd"], volatility=state["vol"])
        final, _, after = rate_periods(start, period, a, b, s, config, return_post_match=True)
        post[0], post[1], post[2] = after.rating, after.rd, after.volatility
        return {"mu": final.rating, "rd": final.rd, "vol": final.volatility}, post
    if isinstance(params, EloParams):
        config_elo = EloConfig(k=params.k_factor, home_advantage=params.home_advantage,
                               initial_rating=params.initial_rating)  # fmt: skip
        final_elo, expected = rate_elo(n, a, b, s, config_elo, initial=state["mu"])
        # Post-match ratings from the zero-sum deltas: each side's running sum of its own deltas.
        delta = config_elo.k * (s - expected)
        # Interleave the sides in match order (home of match 0, away of match 0, home of match 1, ...).
        player = np.column_stack([a, b]).ravel()
        sides = pd.DataFrame({"p": player, "d": np.column_stack([delta, -delta]).ravel()})
        running = sides.groupby("p")["d"].cumsum().to_numpy() + state["mu"][player]
        post[0] = running.reshape(-1, 2)
        return {"mu": final_elo, "rd": state["rd"], "vol": state["vol"]}, post
    assert isinstance(params, OpenSkillParams)
    model = _openskill_model(params)
    ratings = [
        model.rating(mu=float(m), sigma=float(sg)) for m, sg in zip(state["mu"], state["rd"], strict=True)
    ]
    ranks = {1.0: [0, 1], 0.5: [0, 0], 0.0: [1, 0]}
    for i, (x, y, sc) in enumerate(zip(a.tolist(), b.tolist(), s.tolist(), strict=True)):
        (rx,), (ry,) = model.rate([[ratings[x]], [ratings[y]]], ranks=ranks[sc])
        ratings[x], ratings[y] = rx, ry
        post[0, i] = rx.mu, ry.mu
        post[1, i] = rx.sigma, ry.sigma
    mu = np.array([r.mu for r in ratings])
    sigma = np.array([r.sigma for r in ratings])
    return {"mu": mu, "rd": sigma, "vol": state["vol"]}, post


def _soft_reset(spec: RankingJobSpec, state: dict[str, np.ndarray], factor: float) -> dict[str, np.ndarray]:
    """Move ratings (and deviations) ``factor`` of the way back to their initial values."""
    r0, d0 = _initial(spec)
    mu = state["mu"] + factor * (r0 - state["mu"])
    rd = state["rd"] if np.isnan(d0) else state["rd"] + factor * (d0 - state["rd"])
    return {"mu": mu, "rd": rd, "vol": state["vol"]}


def rate_matches(
    matches: pd.DataFrame,
    spec: RankingJobSpec,
    season_starts: Sequence[datetime] = (),
    as_of: datetime | None = None,
    soft_reset_factor: float | None = None,
) -> RatingResult:
    """Rate ``matches`` under ``spec`` (pure; no I/O).

    Args:
        matches: columns home, away (player ids), home_score, away_score (ints), occurred_at (UTC timestamps);
            rows in chronological order (ties keep the given order).
        spec: the RankingJob spec: algorithm and its parameters, inactivity decay.
        season_starts: start times of seasons 2, 3, ... (ascending). At each start all ratings get a soft reset.
        as_of: reference time of the inactivity decay (default: the newest match).
        soft_reset_factor: factor of the resets (default: ``spec.seasonReset.softResetFactor``, else 0.5).

    Returns:
        A :class:`RatingResult` for all players who played at least once.

    Raises:
        ValueError: a match has the same player on both sides, or a score is negative.
    """
    for column in ("home", "away", "home_score", "away_score", "occurred_at"):
        if column not in matches.columns:
            raise ValueError(f"matches: missing column {column!r}")
    if (matches["home"] == matches["away"]).any():
        raise ValueError("a player cannot play against themselves")
    if (matches[["home_score", "away_score"]].to_numpy() < 0).any():
        raise ValueError("scores must be >= 0")
    factor = soft_reset_factor if soft_reset_factor is not None else (
        spec.season_reset.soft_reset_factor if spec.season_reset else 0.5
    )  # fmt: skip
    players, codes = np.unique(
        np.concatenate([matches["home"].to_numpy(str), matches["away"].to_numpy(str)]), return_inverse=True
    )
    m = len(matches)
    a, b = codes[:m].astype(np.intp), codes[m:].astype(np.intp)
    s = _scores(matches)
    when = pd.to_datetime(matches["occurred_at"], utc=True)
    seconds = when.dt.tz_convert(None).to_numpy().astype("datetime64[s]").astype(np.int64)
    period_len = _period_seconds(spec)
    period = np.floor(seconds / period_len).astype(np.int64)
    starts = sorted(int(pd.Timestamp(t).timestamp()) for t in season_starts)
    season_of = np.searchsorted(np.asarray(starts, dtype=np.int64), seconds, side="right")

    n = players.size
    r0, d0 = _initial(spec)
    vol0 = spec.algorithm_params().initial_volatility if spec.algorithm is Algorithm.GLICKO2 else float("nan")  # type: ignore[union-attr]
    state = {"mu": np.full(n, r0), "rd": np.full(n, d0), "vol": np.full(n, vol0)}
    post = np.full((3, m, 2), np.nan)
    for season in range(len(starts) + 1):
        if season:
            state = _soft_reset(spec, state, factor)
        sel = np.flatnonzero(season_of == season)
        if sel.size:
            state, seg_post = _rate_segment(spec, state, a[sel], b[sel], s[sel], period[sel])
            post[:, sel] = seg_post
    current = len(starts)
    in_season = season_of == current
    games = np.bincount(a[in_season], minlength=n) + np.bincount(b[in_season], minlength=n)
    last = np.full(n, np.iinfo(np.int64).min)
    np.maximum.at(last, a, seconds)
    np.maximum.at(last, b, seconds)

    # History: the last post-match value of each (player, period) -- one row per period played.
    sides = pd.DataFrame({
        "player": np.concatenate([a, b]), "period": np.concatenate([period, period]),
        "order": np.concatenate([np.arange(m), np.arange(m)]),
        "rating": np.concatenate([post[0, :, 0], post[0, :, 1]]), "rd": np.concatenate([post[1, :, 0], post[1, :, 1]]),
        "volatility": np.concatenate([post[2, :, 0], post[2, :, 1]]),
    })  # fmt: skip
    history = (
        sides.sort_values(["order"], kind="stable")
        .groupby(["player", "period"], sort=True)
        .last()
        .reset_index()
    )
    history.insert(0, "player_id", players[history["player"].to_numpy()])
    history = history.drop(columns=["player", "order"])

    rd = state["rd"].copy()
    rating = state["mu"].copy()
    decay = spec.inactivity_decay
    if decay.enabled and spec.algorithm is not Algorithm.ELO and n:
        ref = int(pd.Timestamp(as_of).timestamp()) if as_of is not None else int(seconds.max())
        idle = np.floor(np.maximum(ref - last, 0) / period_len)
        scale = 1.0 if spec.algorithm is Algorithm.GLICKO2 else d0 / 350.0
        rd = inactivity_rd(rd, idle, decay.c * scale, max(decay.max_rd * scale, float(np.nanmax(rd))))
    if spec.algorithm is Algorithm.OPENSKILL:
        rating = state["mu"] - 3.0 * rd
        history["rating"] = history["rating"] - 3.0 * history["rd"]
    return RatingResult(
        players=players.tolist(), rating=rating, rd=rd, volatility=state["vol"], games=games,
        last_played=last.astype("datetime64[s]"), history=history, season=current + 1,
    )  # fmt: skip


def leaderboard_entries(result: RatingResult, leagues: Sequence[League]) -> list[Entry]:
    """The ranked leaderboard of ``result`` (see :func:`game_analytics.leaderboard.build_entries`)."""
    rd = np.nan_to_num(result.rd, nan=0.0)
    return build_entries(result.players, result.rating, rd, result.games, leagues,
                         rd_present=not np.isnan(result.rd).all())  # fmt: skip


# --- PostgreSQL I/O ---------------------------------------------------------------------------------------------

_MATCHES_SQL = """
SELECT m.home_id, m.away_id, m.home_score, m.away_score, m.occurred_at
FROM matches m JOIN events e ON e.event_id = m.match_id
WHERE m.game = %s AND e.event_type = %s
ORDER BY m.occurred_at, m.id
"""

_SEASONS_SQL = """
SELECT season::integer AS season, min(computed_at) FROM leaderboard_entries
WHERE board = %s AND season ~ '^[0-9]+$' GROUP BY 1 ORDER BY 1
"""


def read_matches(conn: psycopg.Connection, game: str, event_type: str) -> pd.DataFrame:
    """Matches of ``game`` stored from events of ``event_type``, chronological (columns as :func:`rate_matches`)."""
    with conn.cursor() as cur:
        cur.execute(_MATCHES_SQL, (game, event_type))
        rows = cur.fetchall()
    return pd.DataFrame(rows, columns=["home", "away", "home_score", "away_score", "occurred_at"])


def read_seasons(conn: psycopg.Connection, board: str) -> dict[int, datetime]:
    """Season number -> start time (earliest ``computed_at`` of its leaderboard rows) of ``board``."""
    with conn.cursor() as cur:
        cur.execute(_SEASONS_SQL, (board,))
        return {int(season): started for season, started in cur.fetchall()}


def write_history(conn: psycopg.Connection, board: str, algorithm: str, history: pd.DataFrame) -> None:
    """Replace ``board``'s ``rating_history`` rows of ``algorithm`` with ``history`` (caller's transaction)."""
    conn.execute("DELETE FROM rating_history WHERE job = %s AND algorithm = %s", (board, algorithm))
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY rating_history (player_id, algorithm, period, rating, rd, volatility, job) FROM STDIN"
        ) as copy,
    ):
        for pid, period, rating, rd, vol in history[
            ["player_id", "period", "rating", "rd", "volatility"]
        ].itertuples(index=False):
            copy.write_row((pid, algorithm, int(period), float(rating), None if rd != rd else float(rd),
                            None if vol != vol else float(vol), board))  # fmt: skip


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


def run(job: Job, dsn: str, redis_client: Any | None, *, as_of: datetime | None = None,
        season_reset: bool = False, reset_at: datetime | None = None) -> RunSummary:  # fmt: skip
    """Compute and store the job's ratings (see the module docstring); returns a summary.

    Raises:
        psycopg.Error / redis.RedisError: storage failures (the PostgreSQL transaction is rolled back).
    """
    started = time.perf_counter()
    spec = job.spec
    with psycopg.connect(libpq_dsn(dsn)) as conn:
        derived.catch_up_now(conn)  # matches are derived from events: fold in the ones stored since
        with conn.transaction():
            # One rating run per board at a time (the CronJob forbids concurrency; this also covers manual runs).
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"ranking:{job.board}",))
            matches = read_matches(conn, spec.source.game, spec.source.event_type)
            seasons = read_seasons(conn, job.board)
            current = max(seasons, default=1)
            starts = [seasons[k] for k in sorted(seasons) if k > 1]
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
            Leaderboard(redis_client, job.board).publish(entries, current)
    size = spec.leaderboard.size
    return RunSummary(
        board=job.board, algorithm=spec.algorithm.value, season=current, matches=len(matches),
        players=len(entries), history_rows=len(result.history), seconds=round(time.perf_counter() - started, 3),
        top=[e.as_dict() for e in entries[: min(size, 10)]],
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


def _parse_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def build_parser() -> argparse.ArgumentParser:
    """Options of ``game-analytics worker ranking``; --dsn / --redis-url override the environment settings."""
    p = argparse.ArgumentParser(
        prog="game-analytics worker ranking", description="Compute ratings and leaderboards."
    )
    p.add_argument("--config", required=True, help="ranking.json: the RankingJob document")
    p.add_argument("--dsn", help="PostgreSQL URL (default: GAME_ANALYTICS_DSN)")
    p.add_argument("--redis-url", help="Redis URL (default: GAME_ANALYTICS_REDIS_URL / _REDIS_SENTINELS)")
    p.add_argument("--no-redis", action="store_true", help="only write PostgreSQL")
    p.add_argument("--season-reset", action="store_true", help="start a new season with a soft reset")
    p.add_argument("--reset-at", type=_parse_time, help="start time of the new season (default: now)")
    p.add_argument(
        "--as-of", type=_parse_time, help="reference time of inactivity decay (default: newest match)"
    )
    p.add_argument(
        "--status-file", type=Path,
        help="also write the run's RankingJob status fields (season, playersRated) as JSON to this file",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ranking job once; prints a JSON summary. Returns 0, or 1 (bad config), 2 (usage), 3 (storage)."""
    configure_logging()
    args = build_parser().parse_args(argv)
    try:
        job = load_job(args.config)
        settings = WorkerSettings.from_env()
    except (OSError, ValueError) as exc:
        print(f"error: --config: {exc}", file=sys.stderr)
        return 1
    dsn = args.dsn or settings.dsn
    if not dsn:
        print("error: no database: pass --dsn or set GAME_ANALYTICS_DSN", file=sys.stderr)
        return 2
    if job.spec.suspend:
        print(json.dumps({"board": job.board, "suspended": True}))
        return 0
    client = None
    if not args.no_redis:
        from game_analytics.redis_client import connect

        if args.redis_url:
            settings = settings.model_copy(update={"redis_url": args.redis_url, "redis_sentinels": []})
        try:
            client = connect(settings)
        except ValueError as exc:
            print(f"error: {exc} (or pass --no-redis)", file=sys.stderr)
            return 2
    try:
        summary = run(
            job, dsn, client, as_of=args.as_of, season_reset=args.season_reset, reset_at=args.reset_at
        )
    except Exception as exc:  # noqa: BLE001 - report any storage failure as a failed run
        log.exception("ranking run failed")
        print(f"error: ranking run of {job.board} failed: {exc}", file=sys.stderr)
        return 3
    finally:
        if client is not None:
            client.close()
    print(json.dumps(summary.__dict__, indent=2, default=str))
    if args.status_file:
        write_status(args.status_file, summary)
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


def rate_main(argv: Sequence[str] | None = None) -> int:
    """``game-analytics rate FILE.csv --algorithm glicko2|elo|openskill [--format table|json] [--top N]``.

    Returns 0, or 1 for a missing/invalid file (the message names the file or the missing columns);
    argparse exits with 2 for a bad option such as an unknown algorithm.
    """
    p = argparse.ArgumentParser(
        prog="game-analytics rate", description="Rate a match CSV and print the leaderboard."
    )
    p.add_argument(
        "file", help="CSV with home, away, home_score, away_score[, date] (or the Bundesliga columns)"
    )
    p.add_argument("--algorithm", choices=[a.value for a in Algorithm], default="glicko2")
    p.add_argument("--format", choices=["table", "json"], default="table")
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
        print(f"error: {args.file}: no such file", file=sys.stderr)
        return 1
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        print(
            f"error: {exc}" if str(args.file) in str(exc) else f"error: {args.file}: {exc}", file=sys.stderr
        )
        return 1
    doc: dict[str, Any] = {"source": {"game": "csv"}, "algorithm": args.algorithm,
                           "inactivityDecay": {"enabled": False}}  # fmt: skip
    if args.algorithm == "glicko2":
        doc["glicko2"] = {"ratingPeriod": args.rating_period}
    spec = RankingJobSpec.model_validate(doc)
    try:
        result = rate_matches(matches, spec)
    except ValueError as exc:
        print(f"error: {args.file}: {exc}", file=sys.stderr)
        return 1
    entries = leaderboard_entries(result, spec.leagues)
    shown = entries[: args.top] if args.top else entries
    if args.format == "json":
        print(json.dumps({"algorithm": args.algorithm, "matches": len(matches), "players": len(entries),
                          "leaderboard": [e.as_dict() for e in shown]}, indent=2))  # fmt: skip
        return 0
    from rich.console import Console
    from rich.table import Table

    label = {"glicko2": "RD", "elo": "", "openskill": "sigma"}[args.algorithm]
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
