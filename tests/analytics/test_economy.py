"""Economy metrics on hand-checked inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from game_analytics.analytics.economy import (
    gini,
    inflation_rate,
    laspeyres_price_index,
    sudden_wealth_changes,
    top_share,
    trade_volume,
    wealth_summary,
)


def _gini_pairs(v: np.ndarray) -> float:
    """Definition: mean absolute difference over all ordered pairs / (2 * mean)."""
    return float(np.abs(v[:, None] - v[None, :]).mean() / (2 * v.mean()))


def test_gini_known_values() -> None:
    assert gini([5, 5, 5, 5]) == 0.0
    assert gini([0, 0, 0, 10]) == pytest.approx(0.75)  # (n-1)/n
    assert gini([1, 2, 3, 4]) == pytest.approx(0.25)
    assert gini([0, 0]) == 0.0


def test_gini_matches_pairwise_definition_and_is_scale_and_order_invariant() -> None:
    v = np.random.default_rng(2).lognormal(0, 1.5, 500)
    g = gini(v)
    assert g == pytest.approx(_gini_pairs(v), rel=1e-12)
    assert gini(v[::-1] * 7.5) == pytest.approx(g)


@pytest.mark.parametrize("bad", [[], [-1.0, 2.0], [np.inf], [[1.0, 2.0]]])
def test_gini_rejects_bad_input(bad: list) -> None:
    with pytest.raises(ValueError):
        gini(bad)


def test_top_shares_and_summary() -> None:
    v = np.arange(1, 101, dtype=float)  # total 5050
    assert top_share(v, 0.01) == pytest.approx(100 / 5050)
    assert top_share(v, 0.10) == pytest.approx(sum(range(91, 101)) / 5050)
    s = wealth_summary(v)
    assert s.count == 100 and s.total == 5050 and s.mean == 50.5
    assert s.quantiles[0.5] == pytest.approx(50.5)
    assert s.top_10_share == top_share(v, 0.1)
    assert s.gini == pytest.approx(gini(v))


def test_price_index_and_inflation() -> None:
    prices = np.array([[10.0, 2.0], [11.0, 2.0], [11.0, 3.0]])
    idx = laspeyres_price_index(prices, [1.0, 5.0])  # base basket cost 20
    np.testing.assert_allclose(idx, [1.0, 21 / 20, 26 / 20])
    np.testing.assert_allclose(inflation_rate(idx), [0.05, 26 / 21 - 1])
    np.testing.assert_allclose(inflation_rate([100.0, 110.0, 99.0]), [0.1, -0.1])
    with pytest.raises(ValueError):
        inflation_rate([1.0, 0.0])


def test_trade_volume_fills_empty_days() -> None:
    trades = pd.DataFrame(
        {
            "time": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 12:00", "2024-01-03 09:00"]),
            "value": [5.0, 7.0, 1.0],
        }
    )
    vol = trade_volume(trades)
    assert vol["trades"].tolist() == [2, 0, 1]
    assert vol["value"].tolist() == [12.0, 0.0, 1.0]


def test_sudden_wealth_changes() -> None:
    wealth = pd.DataFrame(
        {
            "player_id": ["a"] * 4 + ["b"] * 4 + ["c"] * 4,
            "time": list(range(4)) * 3,
            "wealth": [100, 110, 120, 1300, 100, 100, 9, 9, 0, 0, 0.5, 0.9],
        }
    )
    flags = sudden_wealth_changes(wealth, window=2, ratio=10)
    assert flags[["player_id", "time", "direction"]].values.tolist() == [
        ["a", 3, "gain"],
        ["b", 2, "loss"],
        ["b", 3, "loss"],
    ]
    assert flags.loc[0, "ratio"] == pytest.approx(1300 / 110)
