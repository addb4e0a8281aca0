"""Elo with K-factor and home advantage."""

from __future__ import annotations

import numpy as np
import pytest

from game_analytics.analytics.ratings.elo import EloConfig, elo_expected, rate_elo


def test_single_match_by_hand() -> None:
    # Home 1600 (+100 advantage) vs away 1500: E = 1 / (1 + 10^(-200/400)) = 0.75974...
    ratings, expected = rate_elo(
        2, [0], [1], [0.0], EloConfig(k=32, home_advantage=100), initial=[1600, 1500]
    )
    e = 1 / (1 + 10 ** (-0.5))
    assert expected[0] == pytest.approx(e)
    np.testing.assert_allclose(ratings, [1600 - 32 * e, 1500 + 32 * e])


def test_sequential_uses_updated_ratings() -> None:
    ratings, expected = rate_elo(2, [0, 0], [1, 1], [1.0, 1.0], EloConfig(k=20))
    assert expected[0] == pytest.approx(0.5)
    assert expected[1] > 0.5  # the first win already raised player 0
    assert ratings.sum() == pytest.approx(3000.0)  # zero-sum


def test_period_mode_uses_start_of_period_ratings() -> None:
    ratings, expected = rate_elo(3, [0, 0, 1], [1, 2, 2], [1.0, 1.0, 0.5], EloConfig(k=20), period=[7, 7, 7])
    np.testing.assert_allclose(expected, 0.5)
    np.testing.assert_allclose(ratings, [1520.0, 1490.0, 1490.0])


def test_period_mode_equals_sequential_when_each_match_is_its_own_period() -> None:
    rng = np.random.default_rng(1)
    h = rng.integers(0, 10, 200)
    a = (h + rng.integers(1, 10, 200)) % 10
    s = rng.choice([0.0, 0.5, 1.0], 200)
    cfg = EloConfig(k=24, home_advantage=65)
    seq = rate_elo(10, h, a, s, cfg)
    per = rate_elo(10, h, a, s, cfg, period=np.arange(200))
    np.testing.assert_allclose(seq[0], per[0])
    np.testing.assert_allclose(seq[1], per[1])


def test_expected_symmetry_and_validation() -> None:
    assert elo_expected(1500, 1700) + elo_expected(1700, 1500) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        rate_elo(2, [0], [2], [1.0])
    with pytest.raises(ValueError):
        EloConfig(k=0)
