"""Glicko-2: the published example, agreement with a scalar reference, and edge cases."""

from __future__ import annotations

import math

import glicko2 as reference
import numpy as np
import pytest

from game_analytics.analytics.ratings.decay import c_for_return_time, inactivity_rd
from game_analytics.analytics.ratings.glicko2 import (
    Glicko2Config,
    Glicko2Ratings,
    glicko2_expected,
    rate_period,
    rate_periods,
)


def _paper_players() -> Glicko2Ratings:
    return Glicko2Ratings(
        rating=np.array([1500.0, 1400.0, 1550.0, 1700.0]),
        rd=np.array([200.0, 30.0, 100.0, 300.0]),
        volatility=np.full(4, 0.06),
    )


def test_reproduces_glickman_2013_example() -> None:
    new = rate_period(_paper_players(), [0, 0, 0], [1, 2, 3], [1.0, 0.0, 0.0], Glicko2Config(tau=0.5))
    assert new.rating[0] == pytest.approx(1464.05, abs=0.01)
    assert new.rd[0] == pytest.approx(151.52, abs=0.01)
    assert new.volatility[0] == pytest.approx(0.05999, abs=1e-5)


def test_match_order_and_side_do_not_matter_within_a_period() -> None:
    base = _paper_players()
    one = rate_period(base, [0, 0, 0], [1, 2, 3], [1.0, 0.0, 0.0])
    two = rate_period(base, [3, 0, 1], [0, 2, 0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(one.rating, two.rating, rtol=0, atol=1e-9)
    np.testing.assert_allclose(one.rd, two.rd, rtol=0, atol=1e-9)


def _scalar_glicko2(r, rd, vol, opp_r, opp_rd, scores, tau=0.5):
    """Plain transcription of Glickman (2013), steps 2-8, for one player (test oracle)."""
    s = 400 / math.log(10)
    mu, phi = (r - 1500) / s, rd / s
    if not scores:
        return r, math.sqrt(phi**2 + vol**2) * s, vol
    gs = [1 / math.sqrt(1 + 3 * (d / s) ** 2 / math.pi**2) for d in opp_rd]
    es = [1 / (1 + math.exp(-g * (mu - (o - 1500) / s))) for g, o in zip(gs, opp_r, strict=True)]
    v = 1 / sum(g * g * e * (1 - e) for g, e in zip(gs, es, strict=True))
    total = sum(g * (x - e) for g, x, e in zip(gs, scores, es, strict=True))
    delta = v * total
    a = math.log(vol**2)

    def f(x):
        return (
            math.exp(x) * (delta**2 - phi**2 - v - math.exp(x)) / (2 * (phi**2 + v + math.exp(x)) ** 2)
            - (x - a) / tau**2
        )

    big_a = a
    if delta**2 > phi**2 + v:
        big_b = math.log(delta**2 - phi**2 - v)
    else:
        k = 1
        while f(a - k * tau) < 0:
            k += 1
        big_b = a - k * tau
    fa, fb = f(big_a), f(big_b)
    while abs(big_b - big_a) > 1e-6:
        c = big_a + (big_a - big_b) * fa / (fb - fa)
        fc = f(c)
        if fc * fb <= 0:
            big_a, fa = big_b, fb
        else:
            fa /= 2
        big_b, fb = c, fc
    new_vol = math.exp(big_a / 2)
    phi_new = 1 / math.sqrt(1 / (phi**2 + new_vol**2) + 1 / v)
    return (mu + phi_new**2 * total) * s + 1500, phi_new * s, new_vol


def test_matches_scalar_transcription_for_every_player() -> None:
    rng = np.random.default_rng(7)
    n, m = 30, 120
    ratings = Glicko2Ratings(
        rating=rng.normal(1500, 200, n), rd=rng.uniform(40, 350, n), volatility=rng.uniform(0.04, 0.08, n)
    )
    a = rng.integers(0, n, m)
    b = (a + rng.integers(1, n, m)) % n
    s = rng.choice([0.0, 0.5, 1.0], m)
    new = rate_period(ratings, a, b, s, Glicko2Config(tau=0.5, max_rd=1e9))
    for p in range(n):
        opp = np.concatenate([b[a == p], a[b == p]])
        score = np.concatenate([s[a == p], 1.0 - s[b == p]])
        r, rd, vol = _scalar_glicko2(
            ratings.rating[p],
            ratings.rd[p],
            ratings.volatility[p],
            list(ratings.rating[opp]),
            list(ratings.rd[opp]),
            list(score),
        )
        assert new.rating[p] == pytest.approx(r, abs=1e-6)
        assert new.rd[p] == pytest.approx(rd, abs=1e-6)
        assert new.volatility[p] == pytest.approx(vol, abs=1e-9)


def test_ratings_and_rd_agree_with_the_glicko2_package() -> None:
    """The PyPI `glicko2` package (Kirkman) as an independent check of rating and RD.

    Its volatility step uses the rating instead of the deviation in f(x), so only rating and RD
    (which depend on volatility weakly) are compared, loosely.
    """
    new = rate_period(_paper_players(), [0, 0, 0], [1, 2, 3], [1.0, 0.0, 0.0])
    ref = reference.Player(1500, 200, 0.06)
    ref.update_player([1400, 1550, 1700], [30, 100, 300], [1, 0, 0])
    assert new.rating[0] == pytest.approx(ref.getRating(), abs=0.01)
    assert new.rd[0] == pytest.approx(ref.getRd(), abs=0.01)


def test_idle_players_only_gain_deviation_capped_at_max() -> None:
    ratings = Glicko2Ratings(
        np.array([1600.0, 1500.0, 1400.0]), np.array([50.0, 349.9, 80.0]), np.full(3, 0.06)
    )
    new = rate_period(ratings, [], [], [], Glicko2Config(max_rd=350.0))
    np.testing.assert_allclose(new.rating, ratings.rating, rtol=0, atol=1e-9)
    expected = np.sqrt(ratings.rd**2 + (0.06 * 400 / np.log(10)) ** 2)
    np.testing.assert_allclose(new.rd, np.minimum(expected, 350.0))
    assert new.rd[1] == 350.0


def test_rate_periods_equals_manual_chain_and_returns_pre_match() -> None:
    """Many players sit out periods here, which exercises the lazy idle-RD growth."""
    rng = np.random.default_rng(3)
    n, m, periods = 40, 60, 6
    a = rng.integers(0, n - 1, m)  # the last player never plays
    b = (a + rng.integers(1, n - 1, m)) % (n - 1)
    s = rng.choice([0.0, 0.5, 1.0], m)
    period = rng.integers(0, periods, m) * 10  # labels need not be consecutive
    start = Glicko2Ratings(
        rating=rng.normal(1500, 100, n), rd=rng.uniform(30, 350, n), volatility=rng.uniform(0.03, 0.2, n)
    )
    start.rd[-1], start.volatility[-1] = 340.0, 0.2
    final, pre = rate_periods(start, period, a, b, s, return_pre_match=True)
    state = start
    for p in range(periods):
        sel = period == p * 10
        np.testing.assert_allclose(pre.rating[sel, 0], state.rating[a[sel]])
        np.testing.assert_allclose(pre.rd[sel, 0], state.rd[a[sel]])
        np.testing.assert_allclose(pre.rd[sel, 1], state.rd[b[sel]])
        np.testing.assert_allclose(pre.volatility[sel, 1], state.volatility[b[sel]])
        state = rate_period(state, a[sel], b[sel], s[sel])
    assert state.rd[-1] == 350.0  # the idle player reached the cap
    np.testing.assert_allclose(final.rating, state.rating)
    np.testing.assert_allclose(final.rd, state.rd)
    np.testing.assert_allclose(final.volatility, state.volatility)


def test_winner_gains_and_loser_drops_zero_sum_for_equal_players() -> None:
    new = rate_period(Glicko2Ratings.initial(2), [0], [1], [1.0])
    assert new.rating[0] > 1500 > new.rating[1]
    assert new.rating[0] - 1500 == pytest.approx(1500 - new.rating[1])


@pytest.mark.parametrize(
    ("a", "b", "s"),
    [([0], [0], [1.0]), ([0], [5], [1.0]), ([0], [1], [1.5]), ([0, 1], [1], [1.0])],
)
def test_rejects_invalid_matches(a: list[int], b: list[int], s: list[float]) -> None:
    with pytest.raises(ValueError):
        rate_period(Glicko2Ratings.initial(3), a, b, s)


def test_expected_score_is_symmetric_and_shrinks_with_uncertainty() -> None:
    e = glicko2_expected(1700, 50, 1500, 50)
    assert e + glicko2_expected(1500, 50, 1700, 50) == pytest.approx(1.0)
    assert 0.5 < glicko2_expected(1700, 300, 1500, 300) < e


def test_inactivity_rd_growth() -> None:
    c = c_for_return_time(100, typical_rd=50.0)
    assert inactivity_rd(50.0, 100, c) == pytest.approx(350.0)
    np.testing.assert_allclose(inactivity_rd([50.0, 100.0], [0, 4], 10.0), [50.0, np.sqrt(100**2 + 400)])
    assert inactivity_rd(300.0, 1e6, 10.0) == 350.0
    with pytest.raises(ValueError):
        inactivity_rd(50.0, -1, 10.0)
