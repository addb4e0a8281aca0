"""The rating engine of RankingJobs: match results in, ratings, deviations and history out (no I/O).

:func:`rate_matches` runs the job's algorithm (Glicko-2, Elo, OpenSkill or TrueSkill) over a chronological frame of
matches, replaying season resets; the ranking worker (:mod:`game_analytics.workers.ranking`) reads the matches,
calls it and stores the result, and ``game-analytics rate`` calls it on a CSV.

Rating periods: Glicko-2 uses fixed wall-clock buckets of ``spec.glicko2.ratingPeriod`` counted from the Unix
epoch; Elo, OpenSkill and TrueSkill rate matches one by one in time order and record history in 7-day buckets.

Team and free-for-all matches (a ``teams`` column: per match a list of ``{"players": [...], "rank": r}``, the
payload of :class:`game_analytics.events.TeamMatchResultPayload`) are rated by the algorithms whose
:data:`~game_analytics.api.rankingjob.ALGORITHMS` row says ``teams`` (TrueSkill); home/away matches are two teams
of one, ranked by the score.

Seasons: ``--season-reset`` starts season ``s + 1`` at ``--reset-at`` (default: now). It moves every rating
``softResetFactor`` of the way back to the initial rating (and the deviation back to the initial deviation) and
writes the new season's leaderboard. The start of season ``s`` is stored implicitly as the earliest
``computed_at`` of its ``leaderboard_entries`` rows (rows are upserted, and ``computed_at`` keeps the time a
player first entered the season's board); a full recompute replays every reset at that time with the spec's
current factor. Past seasons' leaderboard rows and the rating history are kept.

Inactivity decay (Glickman 1995, see :mod:`game_analytics.analytics.ratings.decay`): when
``spec.inactivityDecay.enabled``, the leaderboard deviation of a player idle for ``t`` whole rating periods before
``as_of`` (default: the newest match, i.e. the game's own clock) is ``min(sqrt(RD^2 + c^2 t), maxRD)``. For
OpenSkill and TrueSkill ``c`` and ``maxRD`` are scaled by ``sigma0 / 350`` and the displayed rating is the
ordinal ``mu - 3 sigma``; Elo has no deviation and is not decayed. The history stores undecayed values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from game_analytics.analytics.ratings.decay import inactivity_rd
from game_analytics.analytics.ratings.elo import EloConfig, rate_elo
from game_analytics.analytics.ratings.glicko2 import Glicko2Config, Glicko2Ratings, rate_periods
from game_analytics.api.common import parse_duration
from game_analytics.api.rankingjob import (
    ALGORITHMS,
    Algorithm,
    EloParams,
    Glicko2Params,
    OpenSkillParams,
    RankingJobSpec,
    TrueSkillParams,
)

__all__ = ["HISTORY_PERIOD_SECONDS", "RatingResult", "rate_matches"]

#: History bucket of the sequential algorithms (Elo, OpenSkill): 7 days, in seconds.
HISTORY_PERIOD_SECONDS = 7 * 86400


@dataclass
class RatingResult:
    """Ratings of ``n`` players after all matches.

    Attributes:
        players: player ids, shape (n,), sorted ascending.
        rating: leaderboard rating, shape (n,): Glicko-2 rating, Elo rating or OpenSkill/TrueSkill ordinal
            (mu - 3 sigma).
        rd: deviation after inactivity decay, shape (n,): Glicko-2 RD, OpenSkill/TrueSkill sigma; NaN for Elo.
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
        return parse_duration(params.rating_period).total_seconds()
    return float(HISTORY_PERIOD_SECONDS)


def _initial(spec: RankingJobSpec) -> tuple[float, float]:
    """(initial rating/mu, initial deviation) of the job's algorithm (Elo: deviation NaN)."""
    params = spec.algorithm_params()
    if isinstance(params, Glicko2Params):
        return params.initial_rating, params.initial_rd
    if isinstance(params, EloParams):
        return params.initial_rating, float("nan")
    assert isinstance(params, OpenSkillParams | TrueSkillParams)
    return params.mu, params.sigma


@dataclass
class _Participants:
    """Every match's participants, flattened match by match (match ``i`` owns ``offsets[i]:offsets[i + 1]``).

    ``ids`` are player ids, ``team`` the team number within the match, ``rank`` the team's rank (lower is better).
    A home/away match is two entries: home (team 0), then away (team 1).
    """

    offsets: np.ndarray
    ids: np.ndarray
    team: np.ndarray
    rank: np.ndarray

    def positions(self, sel: np.ndarray) -> np.ndarray:
        """Entries of matches ``sel`` (ascending match indices), in order."""
        lo, hi = self.offsets[sel], self.offsets[sel + 1]
        sizes = hi - lo
        starts = np.repeat(lo - np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes)
        return (starts + np.arange(int(sizes.sum()))).astype(np.intp)


_ONE_V_ONE_RANKS = {1.0: (0.0, 1.0), 0.5: (0.0, 0.0), 0.0: (1.0, 0.0)}  # home score -> (home rank, away rank)


def _is_team_match(lineup: Any) -> bool:
    return lineup is not None and not (isinstance(lineup, float) and np.isnan(lineup))


def _participants(matches: pd.DataFrame, team_rows: np.ndarray) -> _Participants:
    """The participants of ``matches``: home/away rows from their columns and scores, team rows from ``teams``."""
    m = len(matches)
    if not team_rows.any():  # vectorized: two entries per match
        s = _scores(matches)
        ranks = np.column_stack([(s < 1).astype(float), (s > 0).astype(float)])
        return _Participants(
            offsets=np.arange(0, 2 * m + 1, 2, dtype=np.intp),
            ids=np.column_stack([matches["home"].to_numpy(str), matches["away"].to_numpy(str)]).ravel(),
            team=np.tile(np.array([0, 1], dtype=np.intp), m), rank=ranks.ravel(),
        )  # fmt: skip
    teams, home, away = matches["teams"].tolist(), matches["home"].tolist(), matches["away"].tolist()
    hs, aw = matches["home_score"].tolist(), matches["away_score"].tolist()
    ids: list[str] = []
    team: list[int] = []
    rank: list[float] = []
    sizes = np.empty(m, dtype=np.intp)
    for i in range(m):
        if not team_rows[i]:
            rh, ra = _ONE_V_ONE_RANKS[(np.sign(int(hs[i]) - int(aw[i])) + 1) / 2.0]
            ids += [str(home[i]), str(away[i])]
            team += [0, 1]
            rank += [rh, ra]
            sizes[i] = 2
            continue
        before = len(ids)
        for number, side in enumerate(teams[i]):
            ids += [str(p) for p in side["players"]]
            team += [number] * len(side["players"])
            rank += [float(side["rank"])] * len(side["players"])
        sizes[i] = len(ids) - before
    return _Participants(offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.intp), ids=np.asarray(ids, dtype=str),
                         team=np.asarray(team, dtype=np.intp), rank=np.asarray(rank))  # fmt: skip


def _openskill_model(params: OpenSkillParams) -> Any:
    import openskill.models as models

    return getattr(models, params.model.value)(mu=params.mu, sigma=params.sigma)


def _rate_segment(
    spec: RankingJobSpec,
    state: dict[str, np.ndarray],
    parts: _Participants,
    code: np.ndarray,
    sel: np.ndarray,
    period: np.ndarray,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Rate one season's matches ``sel`` (match indices, ascending) from ``state`` (arrays mu/rd/vol of all n
    players); ``code`` is the player index of every participant entry, ``period`` the rating period per match.

    Returns the new state, ``post``, shape (3, k): per participant entry of the matches, rating/mu, deviation and
    volatility right after the match (Glicko-2: after the match's rating period), and the entries' positions.
    """
    params = spec.algorithm_params()
    n = state["mu"].shape[0]
    pos = parts.positions(sel)
    if isinstance(params, TrueSkillParams):
        from game_analytics.analytics.ratings.trueskill_rating import environment, rate_team_matches

        sizes = parts.offsets[sel + 1] - parts.offsets[sel]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.intp)
        mu, sigma, after = rate_team_matches(environment(params), state["mu"], state["rd"], offsets, code[pos],
                                             parts.team[pos], parts.rank[pos])  # fmt: skip
        post_ts = np.full((3, pos.size), np.nan)
        post_ts[:2] = after
        return {"mu": mu, "rd": sigma, "vol": state["vol"]}, post_ts, pos
    # Home/away algorithms: every match is two entries, home then away.
    a, b = code[pos[0::2]], code[pos[1::2]]
    rank_a, rank_b = parts.rank[pos[0::2]], parts.rank[pos[1::2]]
    s = (np.sign(rank_b - rank_a) + 1) / 2.0
    period = period[sel]
    new_state, post = _rate_one_v_one(spec, params, state, n, a, b, s, period)
    return new_state, post.reshape(3, -1), pos


def _rate_one_v_one(
    spec: RankingJobSpec, params: Any, state: dict[str, np.ndarray], n: int,
    a: np.ndarray, b: np.ndarray, s: np.ndarray, period: np.ndarray,
) -> tuple[dict[str, np.ndarray], np.ndarray]:  # fmt: skip
    """Glicko-2, Elo or OpenSkill over home/away matches; ``post`` has shape (3, m, 2) (match, side)."""
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
        matches: columns home, away (player ids), home_score, away_score (ints), occurred_at (UTC timestamps),
            optionally teams (None for a home/away match, else the payload's list of ``{"players", "rank"}``;
            home/away/scores are ignored there); rows in chronological order (ties keep the given order).
        spec: the RankingJob spec: algorithm and its parameters, inactivity decay.
        season_starts: start times of seasons 2, 3, ... (ascending). At each start all ratings get a soft reset.
        as_of: reference time of the inactivity decay (default: the newest match).
        soft_reset_factor: factor of the resets (default: ``spec.seasonReset.softResetFactor``, else 0.5).

    Returns:
        A :class:`RatingResult` for all players who played at least once.

    Raises:
        ValueError: a match has the same player on both sides, a score is negative, or there are team matches and
            the algorithm rates home/away matches only.
    """
    for column in ("home", "away", "home_score", "away_score", "occurred_at"):
        if column not in matches.columns:
            raise ValueError(f"matches: missing column {column!r}")
    team_rows = (
        np.fromiter((_is_team_match(x) for x in matches["teams"]), bool, len(matches))
        if "teams" in matches.columns else np.zeros(len(matches), dtype=bool)
    )  # fmt: skip
    if team_rows.any() and not ALGORITHMS[spec.algorithm].teams:
        capable = ", ".join(a.value for a, info in ALGORITHMS.items() if info.teams)
        raise ValueError(f"{int(team_rows.sum())} team match(es): algorithm {spec.algorithm.value} rates home/away "
                         f"matches only (team and free-for-all matches need {capable})")  # fmt: skip
    home_away = matches.loc[~team_rows]
    if (home_away["home"] == home_away["away"]).any():
        raise ValueError("a player cannot play against themselves")
    if (home_away[["home_score", "away_score"]].to_numpy() < 0).any():
        raise ValueError("scores must be >= 0")
    factor = soft_reset_factor if soft_reset_factor is not None else (
        spec.season_reset.soft_reset_factor if spec.season_reset else 0.5
    )  # fmt: skip
    parts = _participants(matches, team_rows)
    players, codes = np.unique(parts.ids, return_inverse=True)
    codes = codes.astype(np.intp)
    m = len(matches)
    match_of = np.repeat(np.arange(m), np.diff(parts.offsets))  # the match of every participant entry
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
    post = np.full((3, codes.size), np.nan)
    for season in range(len(starts) + 1):
        if season:
            state = _soft_reset(spec, state, factor)
        sel = np.flatnonzero(season_of == season)
        if sel.size:
            state, seg_post, pos = _rate_segment(spec, state, parts, codes, sel, period)
            post[:, pos] = seg_post
    current = len(starts)
    in_season = season_of[match_of] == current
    games = np.bincount(codes[in_season], minlength=n)
    last = np.full(n, np.iinfo(np.int64).min)
    np.maximum.at(last, codes, seconds[match_of])

    # History: the last post-match value of each (player, period) -- one row per period played.
    sides = pd.DataFrame({"player": codes, "period": period[match_of], "rating": post[0], "rd": post[1],
                          "volatility": post[2]})  # fmt: skip
    history = sides.groupby(["player", "period"], sort=True).last().reset_index()  # entries are in match order
    history.insert(0, "player_id", players[history["player"].to_numpy()])
    history = history.drop(columns=["player"])

    rd = state["rd"].copy()
    rating = state["mu"].copy()
    decay = spec.inactivity_decay
    ordinal = ALGORITHMS[spec.algorithm].ordinal
    if decay.enabled and spec.algorithm is not Algorithm.ELO and n:
        ref = int(pd.Timestamp(as_of).timestamp()) if as_of is not None else int(seconds.max())
        idle = np.floor(np.maximum(ref - last, 0) / period_len)
        scale = d0 / 350.0 if ordinal else 1.0
        rd = inactivity_rd(rd, idle, decay.c * scale, max(decay.max_rd * scale, float(np.nanmax(rd))))
    if ordinal:
        rating = state["mu"] - 3.0 * rd
        history["rating"] = history["rating"] - 3.0 * history["rd"]
    return RatingResult(
        players=players.tolist(), rating=rating, rd=rd, volatility=state["vol"], games=games,
        last_played=last.astype("datetime64[s]"), history=history, season=current + 1,
    )  # fmt: skip
