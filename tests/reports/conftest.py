"""Fixtures of the report tests: PostgreSQL databases holding the real CDNOW purchase log and Bundesliga ratings."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, text

from devtools.postgres import PostgresServer
from game_analytics.analytics.leagues import assign_tiers, leaderboard_order, percentile_ranks
from game_analytics.analytics.ratings import Glicko2Ratings, rate_period
from game_analytics.data import (
    load_bundesliga,
    load_cdnow_master,
    load_cdnow_sample,
    purchase_events,
    team_player_id,
)
from game_analytics.storage.engine import make_engine
from game_analytics.workers.load import copy_events

_counter = itertools.count()


def load_purchases(frame: pd.DataFrame, dsn: str) -> None:
    result = copy_events(purchase_events(frame), dsn)
    assert result.inserted == len(frame) and result.dead_lettered == 0


@pytest.fixture(scope="session")
def cdnow_master() -> pd.DataFrame:
    return load_cdnow_master()


@pytest.fixture(scope="session")
def cdnow_dsn(postgres_server: PostgresServer, _migrated_template: str, cdnow_master: pd.DataFrame) -> Iterator[str]:
    """A migrated database with the whole CDNOW log (69,659 purchase events); shared: tests must not modify it."""
    name = f"ga_reports_cdnow_{next(_counter)}"
    dsn = postgres_server.create_database(name, template=_migrated_template)
    load_purchases(cdnow_master, dsn)
    yield dsn
    postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def cdnow_engine(cdnow_dsn: str) -> Iterator[Engine]:
    engine = make_engine(cdnow_dsn)
    yield engine
    engine.dispose()


@pytest.fixture
def sample_dsn(db_dsn: str) -> str:
    """A fresh database with the CDNOW 1/10 sample (6,919 purchase events); tests may modify it."""
    load_purchases(load_cdnow_sample(), db_dsn)
    return db_dsn


def glicko_seasons(last_seasons: int = 6) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Glicko-2 ratings of the Bundesliga clubs after each of the last ``last_seasons`` seasons (one rating period
    per season, every season since 1963 rated), and the leaderboard of the final season.

    Returns ``(history, board)``: history columns player_id, period (season year), rating, rd, volatility;
    board columns player_id, rating, rank, percentile, league.
    """
    matches = load_bundesliga()
    teams = sorted(set(matches["HomeTeam"]) | set(matches["AwayTeam"]))
    index = {t: i for i, t in enumerate(teams)}
    ratings = Glicko2Ratings.initial(len(teams))
    seasons = sorted(matches["Year"].unique())
    rows = []
    for season in seasons:
        m = matches[matches["Year"] == season]
        a = m["HomeTeam"].map(index).to_numpy()
        b = m["AwayTeam"].map(index).to_numpy()
        score = np.sign(m["HomeGoals"].to_numpy() - m["AwayGoals"].to_numpy()) * 0.5 + 0.5
        ratings = rate_period(ratings, a, b, score)
        if season in seasons[-last_seasons:]:
            for team in sorted(set(m["HomeTeam"]) | set(m["AwayTeam"])):
                i = index[team]
                rows.append({"player_id": team_player_id(team), "period": int(season),
                             "rating": float(ratings.rating[i]), "rd": float(ratings.rd[i]),
                             "volatility": float(ratings.volatility[i])})
    history = pd.DataFrame(rows)
    final = history[history["period"] == history["period"].max()].reset_index(drop=True)
    order = leaderboard_order(final["rating"], final["rd"], np.zeros(len(final)), final["player_id"])
    board = final.iloc[order].reset_index(drop=True)
    board["rank"] = np.arange(1, len(board) + 1)
    board["percentile"] = percentile_ranks(board["rating"].to_numpy())
    board["league"] = assign_tiers(board["percentile"])
    return history, board[["player_id", "rating", "rank", "percentile", "league"]]


def insert_ratings(engine: Engine, history: pd.DataFrame, board: pd.DataFrame, *, board_name: str = "bundesliga",
                   season: str = "2008", algorithm: str = "glicko2", job: str = "default/bundesliga") -> None:
    """Write rating_history and leaderboard_entries rows (what the ranking worker stores)."""
    with engine.begin() as conn:
        conn.execute(text("""INSERT INTO rating_history (player_id, algorithm, period, rating, rd, volatility, job)
                             VALUES (:player_id, :algorithm, :period, :rating, :rd, :volatility, :job)"""),
                     [{**r, "algorithm": algorithm, "job": job} for r in history.to_dict("records")])
        conn.execute(text("""INSERT INTO leaderboard_entries (board, season, player_id, rating, rank, percentile, league)
                             VALUES (:board, :season, :player_id, :rating, :rank, :percentile, :league)"""),
                     [{**r, "board": board_name, "season": season} for r in board.to_dict("records")])
