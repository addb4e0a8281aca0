"""The compiled (numba) Glicko-2 period loop agrees with the numpy implementation."""

from __future__ import annotations

import numpy as np
import pytest

from game_analytics.analytics.ratings import glicko2
from game_analytics.analytics.ratings.glicko2 import Glicko2Config, Glicko2Ratings, rate_period, rate_periods

pytestmark = pytest.mark.skipif(glicko2._numba is None, reason="numba not installed")


def _random_league(seed: int, n: int = 40, m: int = 3000, periods: int = 150):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n, m)
    b = (a + rng.integers(1, n, m)) % n
    s = rng.choice([0.0, 0.5, 1.0], m)
    label = np.sort(rng.integers(0, periods, m))[rng.permutation(m)]  # unsorted labels, uneven periods
    start = Glicko2Ratings(rating=rng.normal(1500, 200, n), rd=rng.uniform(30, 350, n),
                           volatility=rng.uniform(0.04, 0.09, n))  # fmt: skip
    return start, label, a, b, s


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_compiled_equals_numpy(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    start, label, a, b, s = _random_league(seed)
    config = Glicko2Config(tau=0.4, max_rd=300.0)
    fast = rate_periods(start, label, a, b, s, config, return_pre_match=True, return_post_match=True)
    monkeypatch.setenv("GAME_ANALYTICS_GLICKO2_NUMPY", "1")
    slow = rate_periods(start, label, a, b, s, config, return_pre_match=True, return_post_match=True)
    for x, y in zip(fast, slow, strict=True):
        for field in ("rating", "rd", "volatility"):
            np.testing.assert_allclose(getattr(x, field), getattr(y, field), rtol=1e-9, atol=1e-9)
    assert (fast[0].rd <= 300.0 + 1e-9).all()


def test_compiled_single_period_and_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    start, _, a, b, s = _random_league(5, m=200)
    fast = rate_period(start, a, b, s)
    empty = rate_periods(start, [], [], [], [])
    monkeypatch.setenv("GAME_ANALYTICS_GLICKO2_NUMPY", "1")
    np.testing.assert_allclose(fast.rating, rate_period(start, a, b, s).rating, rtol=1e-9)
    np.testing.assert_allclose(fast.rd, rate_period(start, a, b, s).rd, rtol=1e-9)
    np.testing.assert_allclose(empty.rd, rate_periods(start, [], [], [], []).rd)
    np.testing.assert_allclose(empty.rd, start.rd)
