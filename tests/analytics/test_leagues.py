"""Percentiles, tiers and leaderboard tie-breaking."""

from __future__ import annotations

import numpy as np
import pytest

from game_analytics.analytics.leagues import assign_tiers, leaderboard_order, percentile_ranks


def test_percentile_ranks_with_ties() -> None:
    np.testing.assert_allclose(percentile_ranks([10, 20, 20, 40]), [0.0, 25.0, 25.0, 75.0])
    assert percentile_ranks([]).size == 0
    with pytest.raises(ValueError):
        percentile_ranks([1.0, np.nan])


def test_tier_boundaries() -> None:
    tiers = assign_tiers([0, 49.9, 50, 79.99, 80, 94.9, 95, 100])
    assert tiers.tolist() == ["bronze", "bronze", "silver", "silver", "gold", "gold", "diamond", "diamond"]
    with pytest.raises(ValueError):
        assign_tiers([1.0], cuts=(50, 40), names=("a", "b", "c"))
    with pytest.raises(ValueError):
        assign_tiers([1.0], cuts=(50,), names=("a",))


def test_tier_sizes_on_distinct_ratings() -> None:
    tiers = assign_tiers(percentile_ranks(np.arange(1000)))
    names, counts = np.unique(tiers, return_counts=True)
    assert dict(zip(names.tolist(), counts.tolist(), strict=True)) == {
        "bronze": 500,
        "silver": 300,
        "gold": 150,
        "diamond": 50,
    }


def test_leaderboard_tie_breaking() -> None:
    rating = [1500, 1600, 1600, 1600, 1600, 1400]
    rd = [50, 80, 60, 60, 60, 30]
    games = [10, 5, 5, 9, 9, 100]
    ids = ["f", "e", "d", "c", "b", "a"]
    order = leaderboard_order(rating, rd, games, ids)
    assert [ids[i] for i in order] == ["b", "c", "d", "e", "f", "a"]


def test_leaderboard_is_independent_of_input_order() -> None:
    rng = np.random.default_rng(0)
    n = 200
    rating = rng.integers(1490, 1510, n).astype(float)
    rd = rng.integers(50, 53, n).astype(float)
    games = rng.integers(1, 3, n)
    ids = np.arange(n)
    ranked = ids[leaderboard_order(rating, rd, games, ids)]
    perm = rng.permutation(n)
    ranked_perm = ids[perm][leaderboard_order(rating[perm], rd[perm], games[perm], ids[perm])]
    np.testing.assert_array_equal(ranked, ranked_perm)
