"""Ranking worker end to end on real PostgreSQL + Redis (Bundesliga), the pure engine, and ``game-analytics rate``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
import redis

from game_analytics.analytics.ratings.elo import EloConfig, rate_elo
from game_analytics.api.common import parse_duration
from game_analytics.api.rankingjob import RankingJobSpec
from game_analytics.controller.common.render import Owner
from game_analytics.controller.rankingjob.render import ranking_document
from game_analytics.leaderboard import Leaderboard, rating_history, read_entries
from game_analytics.storage.engine import libpq_dsn
from game_analytics.workers import load, ranking

BOARD = "league/bundesliga"


def _config(tmp_path: Path, **spec: object) -> Path:
    doc = ranking_document(
        Owner(
            api_version="gameanalytics.io/v1alpha1",
            kind="RankingJob",
            name="bundesliga",
            namespace="league",
            uid="u1",
        ),
        RankingJobSpec.model_validate({"source": {"game": "bundesliga"}, **spec}),
    )
    path = tmp_path / "ranking.json"
    path.write_text(json.dumps(doc))
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert ranking.main(list(argv)) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_bundesliga_end_to_end(db_dsn: str, clean_redis_url: str, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    assert load.main(["--dataset", "bundesliga", "--dsn", db_dsn, "--quiet"]) == 0
    capsys.readouterr()
    config = _config(tmp_path, glicko2={"ratingPeriod": "7d"})
    summary = _run(capsys, "--config", str(config), "--dsn", db_dsn, "--redis-url", clean_redis_url)
    assert summary["matches"] == 14_018 and summary["players"] == 52 and summary["season"] == 1
    # All-time Glicko-2 table at the end of 2008/09: Bayern Muenchen on top (they have led it for decades).
    assert summary["top"][0]["player_id"] == "bayern-muenchen"

    client = redis.Redis.from_url(clean_redis_url)
    board = Leaderboard(client, BOARD)
    with psycopg.connect(libpq_dsn(db_dsn)) as conn:
        season, pg_entries = read_entries(conn, BOARD)
        history = rating_history(conn, BOARD, "bayern-muenchen")
        n_history = conn.execute("SELECT count(*) FROM rating_history WHERE job = %s", (BOARD,)).fetchone()[0]
    assert season == 1 and [e.rank for e in pg_entries] == list(range(1, 53))
    assert board.top(52) == pg_entries  # Redis top-N == the PostgreSQL table, rank for rank
    assert board.rank("bayern-muenchen") == 1
    assert [e.player_id for e in board.around("vfl-wolfsburg", 1)] == [e.player_id for e in pg_entries[0:3]]
    # History: one row per period played; 46 seasons x 34 matchdays of Bayern fall into <= 1,500 weekly periods.
    assert 1000 < len(history) <= 1500 and n_history == summary["history_rows"]
    assert history[-1][2] == pytest.approx(pg_entries[0].rating)

    # Re-running is idempotent.
    again = _run(capsys, "--config", str(config), "--dsn", db_dsn, "--redis-url", clean_redis_url)
    assert again["top"] == summary["top"] and again["history_rows"] == summary["history_rows"]

    # Season reset: ratings move half way back to 1500, season 2, season 1 and history kept.
    reset = _run(capsys, "--config", str(config), "--dsn", db_dsn, "--redis-url", clean_redis_url,
                 "--season-reset", "--reset-at", "2010-07-01T00:00:00+00:00")  # fmt: skip
    assert reset["season"] == 2 and board.season() == 2
    with psycopg.connect(libpq_dsn(db_dsn)) as conn:
        _, old = read_entries(conn, BOARD, season=1)
        _, new = read_entries(conn, BOARD, season=2)
        assert (
            conn.execute("SELECT count(*) FROM rating_history WHERE job = %s", (BOARD,)).fetchone()[0]
            == n_history
        )
    old_by_id = {e.player_id: e.rating for e in old}
    for e in new:
        assert e.rating == pytest.approx(1500 + 0.5 * (old_by_id[e.player_id] - 1500), abs=1e-6)
    assert [e.player_id for e in new] == [e.player_id for e in old]  # an affine map keeps the order
    # The next ordinary run stays in season 2 and replays the reset at its stored time.
    after = _run(capsys, "--config", str(config), "--dsn", db_dsn, "--redis-url", clean_redis_url)
    assert after["season"] == 2 and after["top"][0]["rating"] == pytest.approx(new[0].rating)


def test_leaderboard_size_bounds_what_redis_holds(db_dsn: str, clean_redis_url: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    assert load.main(["--dataset", "bundesliga", "--dsn", db_dsn, "--quiet"]) == 0
    capsys.readouterr()
    config = _config(tmp_path, leaderboard={"size": 10})
    summary = _run(capsys, "--config", str(config), "--dsn", db_dsn, "--redis-url", clean_redis_url)
    assert summary["players"] == 52
    board = Leaderboard(redis.Redis.from_url(clean_redis_url), BOARD)
    with psycopg.connect(libpq_dsn(db_dsn)) as conn:
        _, pg_entries = read_entries(conn, BOARD)
    assert len(pg_entries) == 52  # PostgreSQL keeps every player; Redis the top leaderboard.size
    assert board.size() == 10 and board.top(52) == pg_entries[:10]
    assert board.meta()["players"] == 52 and board.rank(pg_entries[20].player_id) is None


@pytest.mark.parametrize("algorithm", ["elo", "openskill"])
def test_other_algorithms_run_and_rank_bayern_high(algorithm: str, db_dsn: str, clean_redis_url: str,
                                                   tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    assert load.main(["--dataset", "bundesliga", "--dsn", db_dsn, "--quiet"]) == 0
    capsys.readouterr()
    spec = {"algorithm": algorithm, algorithm: {"homeAdvantage": 60.0} if algorithm == "elo" else {}}
    summary = _run(
        capsys, "--config", str(_config(tmp_path, **spec)), "--dsn", db_dsn, "--redis-url", clean_redis_url
    )
    assert summary["algorithm"] == algorithm and summary["players"] == 52
    assert "bayern-muenchen" in [e["player_id"] for e in summary["top"][:3]]


def test_worker_errors(tmp_path: Path, db_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Exit codes as every command has them (docs/cli.md): 2 for a bad --config document, 1 for a failed run."""
    assert ranking.main(["--config", str(tmp_path / "missing.json"), "--dsn", db_dsn]) == 2
    assert "missing.json" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "source": {"game": "g"}, "algorithm": "chess"}))
    assert ranking.main(["--config", str(bad), "--dsn", db_dsn]) == 2
    assert "algorithm" in capsys.readouterr().err
    good = _config(tmp_path)
    assert (
        ranking.main(["--config", str(good), "--dsn", "postgresql://nobody@127.0.0.1:1/none", "--no-redis"])
        == 1
    )
    assert "failed" in capsys.readouterr().err


# --- pure engine --------------------------------------------------------------------------------------------------


def _matches(rows: list[tuple[str, str, int, int, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["home", "away", "home_score", "away_score", "occurred_at"])
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True)
    return frame


def test_elo_engine_agrees_with_rate_elo_and_history_ends_at_final() -> None:
    rng = np.random.default_rng(3)
    names = [f"p{i}" for i in range(8)]
    rows = []
    for day in range(60):
        i, j = rng.choice(8, 2, replace=False)
        rows.append(
            (
                names[i],
                names[j],
                int(rng.integers(0, 4)),
                int(rng.integers(0, 4)),
                f"2024-01-01T{day % 24:02d}:00Z",
            )
        )
    frame = _matches(rows).sort_values("occurred_at", kind="stable").reset_index(drop=True)
    spec = RankingJobSpec.model_validate(
        {"source": {"game": "g"}, "algorithm": "elo", "elo": {"kFactor": 32}}
    )
    result = ranking.rate_matches(frame, spec)
    idx = {p: k for k, p in enumerate(result.players)}
    score = (np.sign(frame["home_score"] - frame["away_score"]).to_numpy() + 1) / 2
    expected, _ = rate_elo(len(idx), frame["home"].map(idx), frame["away"].map(idx), score, EloConfig(k=32))
    np.testing.assert_allclose(result.rating, expected)
    last = result.history.groupby("player_id")["rating"].last()
    np.testing.assert_allclose(last[result.players].to_numpy(), expected)


def test_season_reset_replay_and_decay() -> None:
    frame = _matches(
        [("a", "b", 1, 0, "2024-01-01"), ("a", "c", 2, 0, "2024-01-02"), ("b", "c", 0, 0, "2024-03-01")]
    )
    spec = RankingJobSpec.model_validate({"source": {"game": "g"}, "inactivityDecay": {"enabled": False}})
    base = ranking.rate_matches(frame.iloc[:2], spec)
    reset = ranking.rate_matches(
        frame.iloc[:2], spec, [datetime(2024, 2, 1, tzinfo=UTC)], soft_reset_factor=0.25
    )
    assert reset.season == 2 and reset.games.sum() == 0
    np.testing.assert_allclose(reset.rating, 1500 + 0.75 * (base.rating - 1500))
    np.testing.assert_allclose(reset.rd, 350 + 0.75 * (base.rd - 350))
    decayed = RankingJobSpec.model_validate({"source": {"game": "g"}, "inactivityDecay": {"c": 30}})
    fresh = ranking.rate_matches(frame, decayed)
    later = ranking.rate_matches(frame, decayed, as_of=datetime(2024, 6, 1, tzinfo=UTC))
    assert (later.rd >= fresh.rd).all() and later.rd[0] > fresh.rd[0]
    np.testing.assert_allclose(later.rating, fresh.rating)


def test_parse_duration() -> None:
    assert parse_duration("7d").total_seconds() == 7 * 86400
    assert parse_duration("1h30m").total_seconds() == 5400
    for bad in ("", "7x", "0s", "d7"):
        with pytest.raises(ValueError):
            parse_duration(bad)


# --- game-analytics rate ----------------------------------------------------------------------------------------

SMALL = "home,away,home_score,away_score,date\nA,B,2,1,2024-01-01\nB,C,0,0,2024-01-02\nC,A,1,3,2024-01-09\n"


@pytest.mark.parametrize("algorithm", ["glicko2", "elo", "openskill"])
def test_rate_small_csv_json(algorithm: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.csv"
    path.write_text(SMALL)
    assert ranking.rate_main([str(path), "--algorithm", algorithm, "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["matches"] == 3 and [e["player_id"] for e in out["leaderboard"]][0] == "A"
    assert [e["rank"] for e in out["leaderboard"]] == [1, 2, 3]


def test_rate_table_and_bundesliga_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bl.csv"
    path.write_text("HomeTeam,AwayTeam,HomeGoals,AwayGoals,Round,Year,Date\n"
                    "Bayern,Koeln,3,0,1,2000,2000-08-12\nKoeln,Bremen,1,1,2,2000,2000-08-19\n")  # fmt: skip
    assert ranking.rate_main([str(path), "--top", "1"]) == 0
    out = capsys.readouterr().out
    assert "Bayern" in out and "Bremen" not in out


@pytest.mark.parametrize(
    ("content", "argv", "message"),
    [
        (None, [], "no such file"),
        ("home,away,score\nA,B,1\n", [], "home_score, away_score"),
        ("home,away,home_score,away_score\nA,B,x,1\n", [], "home_score row 2"),
        ("home,away,home_score,away_score\nA,A,1,0\n", [], "themselves"),
    ],
)
def test_rate_bad_input(content: str | None, argv: list[str], message: str, tmp_path: Path,
                        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    path = tmp_path / "in.csv"
    if content is not None:
        path.write_text(content)
    assert ranking.rate_main([str(path), *argv]) == 2  # a bad input file is a usage error, as for fit (docs/cli.md)
    err = capsys.readouterr().err
    assert message in err and "in.csv" in err
    assert err.startswith("game-analytics rate: error: ") and err.count("\n") == 1, err


def test_rate_bad_algorithm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.csv"
    path.write_text(SMALL)
    with pytest.raises(SystemExit) as exc:
        ranking.rate_main([str(path), "--algorithm", "chess"])
    assert exc.value.code == 2 and "chess" in capsys.readouterr().err
