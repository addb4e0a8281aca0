"""Rating-system benchmarks: prints a table of timings and ratios (no asserts).

Rows:
1. Glicko-2 over all 14,018 Bundesliga matches 1963-2008, once with ONE RATING PERIOD PER ROUND
   (Year, Round: 1,564 periods of 9 matches; numpy call overhead dominates such tiny periods)
   and once with ONE PERIOD PER SEASON (46 periods of ~300 matches), our vectorised ``rate_periods`` vs the pure-Python ``glicko2``
   PyPI package (Kirkman) fed the same periods (each team's matches of the round, opponents at
   their start-of-round ratings; idle teams ``did_not_compete``). The maximum rating difference
   is printed too: the package's volatility step uses the rating instead of the deviation in
   f(x), so small differences are expected.
2. OpenSkill (Plackett-Luce) over the same matches in order: our ``OpenSkillRater`` vs a bare
   loop over ``model.rate``.
3. Glicko-2 on synthetic data: ``--periods`` periods of ``--matches-per-period`` random pairings
   among ``--players`` players (default 100 x 100,000 = 10 million matches, 1 million players;
   goal < 60 s), one ``rate_periods`` call. Outcomes are drawn from hidden logistic skills;
   generation time is excluded. The skill/rating rank correlation is printed as a sanity check.
4. TrueSkill over the first ``--trueskill-matches`` Bundesliga matches in order: the RankingJob engine
   (``rate_matches`` with ``algorithm: trueskill``) vs a bare loop over the library's ``rate``; and 8-player
   free-for-alls (the engine on ``teams`` rows), matches per second.
5. Start-up: ``game-analytics rate`` on a 2,500-match CSV (the first 2,500 Bundesliga matches), wall time of the
   whole process from start to exit, best of 3 (goal < 1.5 s; the imports are lazy for this path, and its 280
   rating periods run the numpy loop: loading numba would cost more than it saves).

Usage: ``python benchmarks/bench_ratings.py [--periods N --matches-per-period M --players P]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

import benchargs
import glicko2 as kirkman
import numpy as np
import pandas as pd
from openskill.models import PlackettLuce

from game_analytics.analytics.ratings.engine import rate_matches
from game_analytics.analytics.ratings.glicko2 import Glicko2Config, Glicko2Ratings, rate_periods
from game_analytics.analytics.ratings.openskill_rating import OpenSkillRater
from game_analytics.api.rankingjob import RankingJobSpec
from game_analytics.data.datasets import fetch_all, load_bundesliga


def _bundesliga_arrays(df: pd.DataFrame) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    teams = sorted(set(df["HomeTeam"]) | set(df["AwayTeam"]))
    index = {t: i for i, t in enumerate(teams)}
    home = df["HomeTeam"].map(index).to_numpy()
    away = df["AwayTeam"].map(index).to_numpy()
    diff = np.sign(df["HomeGoals"].to_numpy() - df["AwayGoals"].to_numpy())
    score = (diff + 1) / 2.0
    period = df["Year"].to_numpy() * 1000 + df["Round"].to_numpy()
    return teams, home, away, score, period


def bench_glicko2_bundesliga(df: pd.DataFrame, per_season: bool = False) -> tuple[float, float, float]:
    teams, home, away, score, period = _bundesliga_arrays(df)
    if per_season:
        period = period // 1000
    n = len(teams)
    # warm-up: the first call in a process loads the compiled period loop (numba); time the steady state, best of 3
    rate_periods(Glicko2Ratings.initial(n), period[:50], home[:50], away[:50], score[:50], Glicko2Config(tau=0.5))
    t_ours = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        ours = rate_periods(Glicko2Ratings.initial(n), period, home, away, score, Glicko2Config(tau=0.5))
        t_ours = min(t_ours, time.perf_counter() - t0)

    t0 = time.perf_counter()
    players = [kirkman.Player() for _ in range(n)]
    order = np.argsort(period, kind="stable")
    cuts = np.flatnonzero(np.diff(period[order])) + 1
    for sel in np.split(order, cuts):
        snap = [(p.getRating(), p.getRd()) for p in players]
        games: dict[int, tuple[list[float], list[float], list[float]]] = defaultdict(lambda: ([], [], []))
        for h, a, s in zip(home[sel].tolist(), away[sel].tolist(), score[sel].tolist(), strict=True):
            for me, opp, sc in ((h, a, s), (a, h, 1.0 - s)):
                g = games[me]
                g[0].append(snap[opp][0])
                g[1].append(snap[opp][1])
                g[2].append(sc)
        for i, p in enumerate(players):
            if i in games:
                p.update_player(*games[i])
            else:
                p.did_not_compete()
    t_ref = time.perf_counter() - t0
    ref_rating = np.array([p.getRating() for p in players])
    return t_ours, t_ref, float(np.abs(ref_rating - ours.rating).max())


def bench_openskill_bundesliga(df: pd.DataFrame) -> tuple[float, float, float]:
    teams, home, away, score, _ = _bundesliga_arrays(df)
    t0 = time.perf_counter()
    rater = OpenSkillRater(len(teams))
    rater.rate_matches(home, away, score)
    t_ours = time.perf_counter() - t0

    t0 = time.perf_counter()
    model = PlackettLuce()
    players = [model.rating() for _ in teams]
    ranks = {1.0: [0, 1], 0.5: [0, 0], 0.0: [1, 0]}
    for h, a, s in zip(home.tolist(), away.tolist(), score.tolist(), strict=True):
        [[players[h]], [players[a]]] = model.rate([[players[h]], [players[a]]], ranks=ranks[s])
    t_bare = time.perf_counter() - t0
    diff = float(np.abs(rater.mu - np.array([p.mu for p in players])).max())
    return t_ours, t_bare, diff


def bench_trueskill(df: pd.DataFrame, n: int, ffa: int) -> tuple[float, float, float, float]:
    """(engine s, bare library s, max |mu difference|) over the first ``n`` matches, and the engine's seconds for
    ``ffa`` eight-player free-for-alls among 64 players."""
    import trueskill

    head = df.head(n)
    frame = pd.DataFrame({"home": head["HomeTeam"], "away": head["AwayTeam"], "home_score": head["HomeGoals"],
                          "away_score": head["AwayGoals"],
                          "occurred_at": pd.Timestamp("2000-01-01", tz="UTC") + pd.to_timedelta(range(n), unit="h")})  # fmt: skip
    spec = RankingJobSpec.model_validate({"source": {"game": "b"}, "algorithm": "trueskill",
                                          "inactivityDecay": {"enabled": False}})  # fmt: skip
    t0 = time.perf_counter()
    result = rate_matches(frame, spec)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    env = trueskill.TrueSkill()
    state = defaultdict(env.create_rating)
    for h, a, hs, as_ in zip(frame["home"], frame["away"], frame["home_score"], frame["away_score"], strict=True):
        ranks = [0, 0] if hs == as_ else [0, 1] if hs > as_ else [1, 0]
        (state[h],), (state[a],) = env.rate([(state[h],), (state[a],)], ranks=ranks)
    t_bare = time.perf_counter() - t0
    mu = result.rating + 3 * result.rd
    diff = float(max(abs(mu[i] - state[p].mu) for i, p in enumerate(result.players)))
    rng = np.random.default_rng(0)
    rows = [[{"players": [f"p{x}"], "rank": k + 1} for k, x in enumerate(rng.choice(64, 8, replace=False))]
            for _ in range(ffa)]
    teams = pd.DataFrame({"home": None, "away": None, "home_score": None, "away_score": None, "teams": rows,
                          "occurred_at": pd.Timestamp("2000-01-01", tz="UTC") + pd.to_timedelta(range(ffa), unit="h")})  # fmt: skip
    t0 = time.perf_counter()
    rate_matches(teams, spec)
    return t_ours, t_bare, diff, time.perf_counter() - t0


def bench_glicko2_synthetic(
    n_players: int, periods: int, per_period: int, seed: int = 0
) -> tuple[float, float]:
    """Generate all matches first (not timed), then one ``rate_periods`` call (timed)."""
    rng = np.random.default_rng(seed)
    skill = rng.normal(0.0, 1.0, n_players)
    m = periods * per_period
    a = rng.integers(0, n_players, m)
    b = (a + rng.integers(1, n_players, m)) % n_players
    p_win = 1.0 / (1.0 + np.exp(-(skill[a] - skill[b])))
    s = (rng.random(m) < p_win).astype(np.float64)
    period = np.repeat(np.arange(periods), per_period)
    t0 = time.perf_counter()
    ratings = rate_periods(Glicko2Ratings.initial(n_players), period, a, b, s)
    secs = time.perf_counter() - t0
    # Sanity figure: rank correlation between hidden skill and final rating.
    corr = float(np.corrcoef(np.argsort(np.argsort(skill)), np.argsort(np.argsort(ratings.rating)))[0, 1])
    return secs, corr


def bench_rate_startup(df: pd.DataFrame, n: int = 2_500, repeat: int = 3) -> float:
    """Best wall time (s) of ``game-analytics rate CSV`` on the first ``n`` matches, as a fresh process."""
    # the CLI as a user runs it: the Glicko-2 loop chosen by cost, not forced compiled as main() does
    env = {k: v for k, v in os.environ.items() if k != "GAME_ANALYTICS_GLICKO2_NUMPY"}
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/matches.csv"
        df.head(n).to_csv(path, index=False)
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "game_analytics.cli", "rate", path, "--top", "3"], check=True,
                           capture_output=True, env=env)  # fmt: skip
            best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--players", type=int, default=1_000_000)
    parser.add_argument("--periods", type=int, default=100)
    parser.add_argument("--matches-per-period", type=int, default=100_000)
    parser.add_argument("--trueskill-matches", type=int, default=14_018, help="Bundesliga matches rated by TrueSkill")
    parser.add_argument("--trueskill-ffa", type=int, default=2_000, help="8-player free-for-alls rated by TrueSkill")
    args = benchargs.parse(parser, None, {"players": 10_000, "periods": 5, "matches_per_period": 5_000,
                                          "trueskill_matches": 1_000, "trueskill_ffa": 100})

    # rows 1-3 time the compiled Glicko-2 loop (chosen by cost otherwise: numpy below COMPILED_MIN_PERIODS)
    os.environ["GAME_ANALYTICS_GLICKO2_NUMPY"] = "0"
    fetch_all()
    df = load_bundesliga()
    rows: list[tuple[str, str, str, str]] = []

    for per_season, label in ((False, "1 period/round (1,564)"), (True, "1 period/season (46)")):
        ours, ref, diff = bench_glicko2_bundesliga(df, per_season)
        rows.append(
            (
                f"Glicko-2, Bundesliga {len(df):,} matches, {label}",
                f"{ours:.3f} s",
                f"glicko2 pkg {ref:.3f} s",
                f"{ref / ours:.1f}x faster (max |dr| {diff:.2f})",
            )
        )
    ours, bare, diff = bench_openskill_bundesliga(df)
    rows.append(
        (
            f"OpenSkill PL, Bundesliga {len(df):,} matches",
            f"{ours:.3f} s",
            f"bare openskill {bare:.3f} s",
            f"overhead {ours / bare:.2f}x (max |dmu| {diff:.1e})",
        )
    )
    n_matches = args.periods * args.matches_per_period
    secs, corr = bench_glicko2_synthetic(args.players, args.periods, args.matches_per_period)
    rows.append(
        (
            f"Glicko-2 synthetic {n_matches:,} matches, {args.players:,} players, {args.periods} periods",
            f"{secs:.2f} s",
            f"goal < 60 s: {'met' if secs < 60 else 'MISSED'}",
            f"{n_matches / secs / 1e6:.2f} M matches/s (skill rank corr {corr:.2f})",
        )
    )

    ts_ours, ts_bare, ts_diff, ts_ffa = bench_trueskill(df, min(args.trueskill_matches, len(df)), args.trueskill_ffa)
    rows.append((f"TrueSkill, first {min(args.trueskill_matches, len(df)):,} Bundesliga matches", f"{ts_ours:.3f} s",
                 f"bare trueskill {ts_bare:.3f} s", f"overhead {ts_ours / ts_bare:.2f}x (max |dmu| {ts_diff:.1e})"))
    rows.append((f"TrueSkill, {args.trueskill_ffa:,} 8-player free-for-alls", f"{ts_ffa:.3f} s", "",
                 f"{args.trueskill_ffa / ts_ffa:,.0f} matches/s"))  # fmt: skip

    startup = bench_rate_startup(df)
    rows.append(("game-analytics rate, 2,500-match CSV (process start to exit)", f"{startup:.2f} s",
                 f"goal < 1.5 s: {'met' if startup < 1.5 else 'MISSED'}", "best of 3, lazy imports"))  # fmt: skip

    header = ("benchmark", "ours", "reference", "ratio / note")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    line = "+".join("-" * (w + 2) for w in widths)
    print(line)
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(line)


if __name__ == "__main__":
    main()
