"""Isolation-Forest anomaly scores per activity type."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from game_analytics.analytics.anomaly import ActivityAnomalyDetector


def _frame(rng: np.random.Generator) -> pd.DataFrame:
    normal_trade = pd.DataFrame({"count": rng.normal(20, 3, 500), "amount": rng.normal(100, 10, 500)})
    normal_trade["activity"] = "trade"
    # Purchases live on a different scale: a "normal" trade would be an outlier here.
    normal_buy = pd.DataFrame({"count": rng.normal(2, 0.5, 500), "amount": rng.normal(10, 2, 500)})
    normal_buy["activity"] = "purchase"
    return pd.concat([normal_trade, normal_buy], ignore_index=True)


def test_outliers_score_higher_per_activity() -> None:
    rng = np.random.default_rng(0)
    train = _frame(rng)
    det = ActivityAnomalyDetector(["count", "amount"]).fit(train)
    assert set(det.models) == {"trade", "purchase"}
    probe = pd.DataFrame(
        {
            "count": [20.0, 2.0, 20.0, 80.0],
            "amount": [100.0, 10.0, 100.0, 900.0],
            "activity": ["trade", "purchase", "purchase", "trade"],
        },
        index=[10, 11, 12, 13],
    )
    s = det.score(probe)
    assert np.all((s >= 0) & (s <= 1))
    assert s[0] < 0.5 and s[1] < 0.5  # typical for their own activity
    assert s[2] > s[1] + 0.15  # a trade-like row is anomalous among purchases
    assert s[3] > s[0] + 0.15
    inliers = det.score(train)
    assert np.quantile(inliers, 0.99) < s[3]


def test_persist_roundtrip_gives_identical_scores() -> None:
    rng = np.random.default_rng(1)
    train = _frame(rng)
    det = ActivityAnomalyDetector(["count", "amount"], n_estimators=50).fit(train)
    loaded = ActivityAnomalyDetector.from_bytes(det.to_bytes())
    np.testing.assert_array_equal(loaded.score(train), det.score(train))


def test_errors() -> None:
    det = ActivityAnomalyDetector(["count", "amount"]).fit(_frame(np.random.default_rng(2)))
    with pytest.raises(KeyError):
        det.score(pd.DataFrame({"count": [1.0], "amount": [1.0], "activity": ["chat"]}))
    with pytest.raises(ValueError):
        det.fit(pd.DataFrame({"count": [np.nan], "amount": [1.0], "activity": ["x"]}))
    with pytest.raises(TypeError):
        ActivityAnomalyDetector.from_bytes(__import__("pickle").dumps({"not": "a detector"}))
