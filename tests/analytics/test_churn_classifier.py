"""Churn features, labels and the time-split evaluation on the CDNOW purchase log."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from game_analytics.analytics.churn.classifier import (
    FEATURES,
    churn_labels,
    customer_features,
    evaluate_time_split,
)


def _log() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 2, 3, 3],
            "date": pd.to_datetime(
                ["2020-01-01", "2020-01-11", "2020-01-31", "2020-01-20", "2020-02-05", "2020-02-20"]
            ),
            "dollar_value": [10.0, 20.0, 30.0, 5.0, 1.0, 1.0],
        }
    )


def test_features_by_hand() -> None:
    f = customer_features(_log(), "2020-02-10")
    assert list(f.columns) == list(FEATURES)
    assert sorted(f.index) == [1, 2, 3]
    one = f.loc[1]
    assert one["recency"] == 10 and one["tenure"] == 40
    assert one["frequency"] == 3 and one["transactions"] == 3
    assert one["monetary_total"] == 60 and one["monetary_mean"] == 20
    assert one["gap_mean"] == 15 and one["gap_max"] == 20
    assert one["recent_30"] == 2 and one["recent_90"] == 3  # 2020-01-11 is exactly 30 days old: included
    assert one["overdue"] == pytest.approx(10 / 16)
    assert f.loc[2, "gap_mean"] == 0 and f.loc[2, "frequency"] == 1
    assert f.loc[3, "transactions"] == 1  # only the purchase before the cut-off


def test_labels() -> None:
    log = _log()
    customers = customer_features(log, "2020-02-01").index
    labels = churn_labels(log, customers, "2020-02-01", "2020-03-01")
    assert labels.to_dict() == {1: True, 2: True}


def test_rejects_leaky_split() -> None:
    with pytest.raises(ValueError):
        evaluate_time_split(_log(), "2020-01-15", "2020-01-20", "30D")


def test_cdnow_time_split_auc(cdnow_master: pd.DataFrame) -> None:
    """Train: features to 1997-07-01, churn in the next 181 days; test: features to 1998-01-01, churn to 1998-07-01."""
    report = evaluate_time_split(cdnow_master, "1997-07-01", "1998-01-01", "181D")
    assert report.n_test == cdnow_master["customer_id"].nunique()  # the whole 1997-Q1 cohort
    assert 0.5 < report.test_churn_rate < 0.95
    # Measured 0.80; the single strongest heuristic (recency alone) reaches 0.80 - the model must beat it.
    x = customer_features(cdnow_master, "1998-01-01")
    y = churn_labels(cdnow_master, x.index, "1998-01-01", "1998-07-01")
    recency_auc = roc_auc_score(y, x["recency"])
    assert report.roc_auc > 0.75
    assert report.roc_auc > recency_auc
