"""TrueSkill RankingJobs: the library's documented figures, a closed-form two-team update written out here, and the
ranking worker on the real PostgreSQL with home/away, team and free-for-all match events."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
from scipy.stats import norm

from game_analytics.api.rankingjob import RankingJobSpec
from game_analytics.controller.common.render import Owner
from game_analytics.controller.rankingjob.render import ranking_document
from game_analytics.events import EventError, validate_event
from game_analytics.leaderboard import read_entries
from game_analytics.storage.engine import libpq_dsn
from game_analytics.workers import ranking
from game_analytics.workers.batches import prepare_connection, prepare_dicts, write_batch

SPEC = {"source": {"game": "arena"}, "algorithm": "trueskill", "inactivityDecay": {"enabled": False}}


def _frame(rows: list[dict]) -> pd.DataFrame:
    """Rows of {home, away, home_score, away_score} or {teams}, one day apart."""
    out = pd.DataFrame([{"home": r.get("home"), "away": r.get("away"), "home_score": r.get("home_score"),
                         "away_score": r.get("away_score"), "teams": r.get("teams")} for r in rows])  # fmt: skip
    out["occurred_at"] = pd.date_range("2024-01-01", periods=len(rows), freq="D", tz="UTC")
    return out


def _mu_sigma(result: ranking.RatingResult) -> dict[str, tuple[float, float]]:
    """Player -> (mu, sigma) from the leaderboard's ordinal mu - 3 sigma."""
    return {p: (r + 3 * s, s) for p, r, s in zip(result.players, result.rating, result.rd, strict=True)}


# --- documented figures ---------------------------------------------------------------------------------------------


def test_engine_reproduces_the_librarys_documented_examples() -> None:
    """trueskill's documentation: a 1v1 win from the default prior gives 29.396/7.171 and 20.604/7.171, a draw
    25.000/6.458; teams (p1,), (p2, p3), (p4,) placed in that order give 35.877/6.791, 17.867/7.059 (both) and
    21.255/7.155."""
    spec = RankingJobSpec.model_validate(SPEC)
    one = ranking.rate_matches(_frame([{"home": "a", "away": "b", "home_score": 1, "away_score": 0}]), spec)
    got = _mu_sigma(one)
    assert got["a"] == pytest.approx((29.396, 7.171), abs=1e-3) and got["b"] == pytest.approx((20.604, 7.171), abs=1e-3)
    draw = ranking.rate_matches(_frame([{"home": "a", "away": "b", "home_score": 2, "away_score": 2}]), spec)
    assert _mu_sigma(draw)["a"] == pytest.approx((25.0, 6.458), abs=1e-3)

    three = [{"players": ["p1"], "rank": 1}, {"players": ["p2", "p3"], "rank": 2}, {"players": ["p4"], "rank": 3}]
    got = _mu_sigma(ranking.rate_matches(_frame([{"teams": three}]), RankingJobSpec.model_validate(SPEC)))
    assert got["p1"] == pytest.approx((35.877, 6.791), abs=1e-3)
    assert got["p2"] == got["p3"] == pytest.approx((17.867, 7.059), abs=1e-3)
    assert got["p4"] == pytest.approx((21.255, 7.155), abs=1e-3)


def test_mu_30_example_through_the_environment() -> None:
    """The README's unequal 1v1 (25 vs 30, sigma 8.333; the underdog wins) through our environment()."""
    from game_analytics.analytics.ratings.trueskill_rating import environment, rate_team_matches
    from game_analytics.api.rankingjob import TrueSkillParams

    env = environment(TrueSkillParams())
    mu, sigma, post = rate_team_matches(env, np.array([25.0, 30.0]), np.array([8.333, 8.333]),
                                        np.array([0, 2]), np.array([0, 1]), np.array([0, 1]), np.array([1.0, 2.0]))  # fmt: skip
    np.testing.assert_allclose(mu, [30.768, 24.232], atol=1e-3)
    np.testing.assert_allclose(sigma, [7.030, 7.030], atol=1e-3)
    np.testing.assert_allclose(post, [mu, sigma])


# --- an independent two-team computation ------------------------------------------------------------------------------


def _two_team_update(state: dict[str, list[float]], winners: list[str], losers: list[str], drawn: bool,
                     beta: float = 25 / 6, tau: float = 25 / 300, p_draw: float = 0.10) -> None:  # fmt: skip
    """Herbrich et al. (2006), eqs. for two teams, written out (exact: the two-team factor graph has no loop)."""
    everyone = winners + losers
    var = {p: state[p][1] ** 2 + tau**2 for p in everyone}
    c = math.sqrt(len(everyone) * beta**2 + sum(var.values()))
    t = (sum(state[p][0] for p in winners) - sum(state[p][0] for p in losers)) / c
    eps = norm.ppf((p_draw + 1) / 2) * math.sqrt(len(everyone)) * beta / c
    if drawn:
        den = norm.cdf(eps - t) - norm.cdf(-eps - t)
        v = (norm.pdf(-eps - t) - norm.pdf(eps - t)) / den
        w = v**2 + ((eps - t) * norm.pdf(eps - t) + (eps + t) * norm.pdf(eps + t)) / den
    else:
        v = norm.pdf(t - eps) / norm.cdf(t - eps)
        w = v * (v + t - eps)
    for p in everyone:
        sign = 1.0 if p in winners else -1.0
        state[p] = [state[p][0] + sign * var[p] / c * v, math.sqrt(var[p] * (1 - var[p] / c**2 * w))]


def _two_team_rows(rng: np.random.Generator, skill: dict[str, float], n: int) -> list[dict]:
    """n matches: a third home/away (scores), two thirds 2v2 team matches, outcomes from the latent skills."""
    names = list(skill)
    rows = []
    for i in range(n):
        if i % 3 == 0:
            a, b = rng.choice(names, 2, replace=False)
            diff = skill[a] - skill[b] + rng.normal(0, 3)
            score = (2, 2) if abs(diff) < 1 else (2, 0) if diff > 0 else (0, 1)
            rows.append({"home": str(a), "away": str(b), "home_score": score[0], "away_score": score[1]})
        else:
            four = [str(x) for x in rng.choice(names, 4, replace=False)]
            diff = skill[four[0]] + skill[four[1]] - skill[four[2]] - skill[four[3]] + rng.normal(0, 4)
            ranks = (1, 1) if abs(diff) < 1 else (1, 2) if diff > 0 else (2, 1)
            rows.append({"teams": [{"players": four[:2], "rank": ranks[0]}, {"players": four[2:], "rank": ranks[1]}]})
    return rows


def _independent(rows: list[dict], mu0: float = 25.0, sigma0: float = 25 / 3) -> dict[str, list[float]]:
    state: dict[str, list[float]] = {}
    for row in rows:
        if row.get("teams"):
            (t0, t1) = row["teams"]
            sides = [t0["players"], t1["players"]]
            r0, r1 = t0["rank"], t1["rank"]
        else:
            sides = [[row["home"]], [row["away"]]]
            r0, r1 = (0, 0) if row["home_score"] == row["away_score"] else (0, 1) if row["home_score"] > row["away_score"] else (1, 0)
        for p in sides[0] + sides[1]:
            state.setdefault(p, [mu0, sigma0])
        winners, losers = (sides[0], sides[1]) if r0 <= r1 else (sides[1], sides[0])
        _two_team_update(state, winners, losers, drawn=r0 == r1)
    return state


def test_engine_matches_the_closed_form_over_a_mixed_sequence() -> None:
    rng = np.random.default_rng(17)
    skill = {f"p{i}": float(s) for i, s in enumerate(rng.normal(25, 6, 10))}
    rows = _two_team_rows(rng, skill, 120)
    result = ranking.rate_matches(_frame(rows), RankingJobSpec.model_validate(SPEC))
    expected = _independent(rows)
    got = _mu_sigma(result)
    assert set(got) == set(expected)
    for p, (mu, sigma) in expected.items():
        assert got[p] == pytest.approx((mu, sigma), abs=2e-4), p
    assert result.games.sum() == sum(4 if r.get("teams") else 2 for r in rows)


def test_team_matches_need_a_team_algorithm() -> None:
    frame = _frame([{"teams": [{"players": ["a", "b"], "rank": 1}, {"players": ["c"], "rank": 2}]}])
    with pytest.raises(ValueError, match="algorithm glicko2 rates home/away matches only.*trueskill"):
        ranking.rate_matches(frame, RankingJobSpec.model_validate({"source": {"game": "g"}}))


def test_team_payload_validation_names_the_field() -> None:
    base = {"event_id": "t1", "event_type": "match_result", "occurred_at": "2024-01-01T00:00:00Z", "game": "arena"}
    ok = validate_event(base | {"payload": {"teams": [{"players": ["a"], "rank": 1}, {"players": ["b"], "rank": 2}]}})
    assert [t.players for t in ok.payload.teams] == [["a"], ["b"]]
    bad = {
        "payload.teams": {"teams": [{"players": ["a"], "rank": 1}]},
        "payload.teams.1.rank": {"teams": [{"players": ["a"], "rank": 1}, {"players": ["b"], "rank": 0}]},
        "payload": {"teams": [{"players": ["a"], "rank": 1}, {"players": ["a"], "rank": 2}]},
        "payload.away_team": {"home_team": "a", "home_score": 1, "away_score": 0, "season": 2024},
    }
    for field, payload in bad.items():
        with pytest.raises(EventError) as exc:
            validate_event(base | {"payload": payload})
        assert exc.value.field == field, payload


# --- the ranking worker on the real PostgreSQL ------------------------------------------------------------------------


def _events(rows: list[dict]) -> list[dict]:
    out = []
    for i, row in enumerate(rows):
        when = (pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(hours=i)).isoformat()
        if row.get("teams"):
            payload = {"teams": row["teams"], "season": 2024}
        else:
            payload = {"home_team": row["home"], "away_team": row["away"], "home_score": row["home_score"],
                       "away_score": row["away_score"], "season": 2024}  # fmt: skip
        out.append({"event_id": f"arena-{i}", "event_type": "match_result", "occurred_at": when, "game": "arena",
                    "payload": payload})  # fmt: skip
    return out


def _store(dsn: str, events: list[dict]) -> None:
    with psycopg.connect(libpq_dsn(dsn)) as conn:
        prepare_connection(conn)
        with conn.transaction():
            batch = prepare_dicts(enumerate(events))
            assert not batch.dead, batch.dead
            write_batch(conn, batch, direct=True)


def _job(tmp_path: Path, spec: dict) -> Path:
    owner = Owner(api_version="gameanalytics.io/v1alpha1", kind="RankingJob", name="arena", namespace="games", uid="u")
    path = tmp_path / "ranking.json"
    path.write_text(json.dumps(ranking_document(owner, RankingJobSpec.model_validate(spec))))
    return path


def _run(path: Path, dsn: str, capsys: pytest.CaptureFixture[str]) -> dict:
    assert ranking.main(["--config", str(path), "--dsn", dsn, "--no-redis"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_worker_rates_team_matches_from_postgres(db_dsn: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    rng = np.random.default_rng(5)
    skill = {f"p{i}": float(s) for i, s in enumerate(rng.normal(25, 6, 12))}
    rows = _two_team_rows(rng, skill, 150)
    _store(db_dsn, _events(rows))
    summary = _run(_job(tmp_path, SPEC), db_dsn, capsys)
    assert summary["algorithm"] == "trueskill" and summary["matches"] == 150 and summary["players"] == 12
    with psycopg.connect(libpq_dsn(db_dsn)) as conn:
        _, entries = read_entries(conn, "games/arena")
        team_players = conn.execute("SELECT count(*) FROM players WHERE player_id LIKE 'p%'").fetchone()[0]
        home_away = conn.execute("SELECT count(*) FROM matches WHERE game = 'arena'").fetchone()[0]
        history = conn.execute("SELECT DISTINCT ON (player_id) player_id, rating, rd FROM rating_history "
                               "WHERE job = 'games/arena' ORDER BY player_id, period DESC").fetchall()  # fmt: skip
    expected = _independent(rows)
    assert team_players == 12 and home_away == 50  # team matches stay out of the home/away table
    for e in entries:
        mu, sigma = expected[e.player_id]
        assert e.rating == pytest.approx(mu - 3 * sigma, abs=1e-3)
    for player, rating, rd in history:  # the newest history row: after the player's last match
        assert (rating, rd) == pytest.approx((expected[player][0] - 3 * expected[player][1], expected[player][1]), abs=1e-3)
    assert len(history) == 12
    assert [e.rank for e in entries] == list(range(1, 13))
    # The latent skills come back: Spearman correlation of the leaderboard's mu with the truth.
    mu = pd.Series({p: v[0] for p, v in expected.items()})
    assert mu.corr(pd.Series(skill), method="spearman") > 0.8

    # A Glicko-2 job on the same game keeps working: it rates the 50 home/away matches and leaves the rest out.
    glicko = _run(_job(tmp_path, {"source": {"game": "arena"}}), db_dsn, capsys)
    assert glicko["algorithm"] == "glicko2" and glicko["matches"] == 50


def test_worker_rates_free_for_all(db_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Eight-player free-for-all matches, placings from the latent skills; the leaderboard against the library run
    match by match here, and the strongest players on top."""
    import trueskill

    rng = np.random.default_rng(11)
    names = [f"ffa{i}" for i in range(16)]
    skill = dict(zip(names, np.linspace(10, 40, 16), strict=True))
    rows = []
    for _ in range(60):
        field = [str(x) for x in rng.choice(names, 8, replace=False)]
        perf = {p: skill[p] + rng.normal(0, 4) for p in field}
        order = sorted(field, key=lambda p: -perf[p])
        rows.append({"teams": [{"players": [p], "rank": k + 1} for k, p in enumerate(order)]})
    _store(db_dsn, _events(rows))
    summary = _run(_job(tmp_path, SPEC), db_dsn, capsys)
    assert summary["matches"] == 60 and summary["players"] == 16

    state = {p: trueskill.Rating() for p in names}
    for row in rows:
        players = [t["players"][0] for t in row["teams"]]
        rated = trueskill.rate([(state[p],) for p in players], ranks=[t["rank"] for t in row["teams"]])
        for p, (r,) in zip(players, rated, strict=True):
            state[p] = r
    with psycopg.connect(libpq_dsn(db_dsn)) as conn:
        _, entries = read_entries(conn, "games/arena")
    for e in entries:
        assert e.rating == pytest.approx(state[e.player_id].mu - 3 * state[e.player_id].sigma, abs=1e-6)
    top4 = {e.player_id for e in entries[:4]}
    assert len(top4 & {"ffa12", "ffa13", "ffa14", "ffa15"}) >= 3
