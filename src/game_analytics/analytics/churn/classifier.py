"""Churn classifier over per-player features of a transaction log, with a time-split evaluation.

Features for each player are computed from the transactions strictly before a cut-off date
("calibration period"); the label is *churned* = no transaction in ``[cutoff, cutoff + horizon)``
("holdout period"). The model is trained on one cut-off and evaluated on a later one whose
calibration period contains the whole training label window, so no future information leaks
into training (a forward-chaining split, cf. Hyndman & Athanasopoulos, "Forecasting: Principles
and Practice", section 5.10 "time series cross-validation").

Features (days are calendar days):
recency (days since last purchase), frequency (distinct purchase days), transactions, monetary
mean and total, tenure (days since first purchase), mean/std/max inter-purchase gap (between
distinct purchase days; 0 when there is only one), purchases in the last 30 and 90 days, and the
ratio recency / (mean gap + 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

FEATURES: tuple[str, ...] = (
    "recency",
    "frequency",
    "transactions",
    "monetary_mean",
    "monetary_total",
    "tenure",
    "gap_mean",
    "gap_std",
    "gap_max",
    "recent_30",
    "recent_90",
    "overdue",
)


def customer_features(
    transactions: pd.DataFrame,
    cutoff: pd.Timestamp | str,
    *,
    customer_col: str = "customer_id",
    time_col: str = "date",
    value_col: str = "dollar_value",
) -> pd.DataFrame:
    """Per-customer features from transactions before ``cutoff``.

    Args:
        transactions: one row per transaction with a customer id, a datetime64 time column and a
            numeric value column.
        cutoff: end (exclusive) of the calibration period.

    Returns:
        DataFrame indexed by customer id (only customers with at least one transaction before
        ``cutoff``), columns :data:`FEATURES`, all float.

    Raises:
        KeyError: if a column is missing; TypeError if ``time_col`` is not datetime64.
    """
    cutoff = pd.Timestamp(cutoff)
    if not pd.api.types.is_datetime64_any_dtype(transactions[time_col]):
        raise TypeError(f"column {time_col!r} must be datetime64")
    tx = transactions.loc[transactions[time_col] < cutoff, [customer_col, time_col, value_col]]
    day = tx[time_col].dt.normalize()
    grouped = tx.groupby(customer_col)
    first = grouped[time_col].min()
    last = grouped[time_col].max()
    out = pd.DataFrame(index=first.index)
    out["recency"] = (cutoff - last).dt.total_seconds() / 86400.0
    out["tenure"] = (cutoff - first).dt.total_seconds() / 86400.0
    out["transactions"] = grouped.size().astype(float)
    out["monetary_total"] = grouped[value_col].sum().astype(float)
    out["monetary_mean"] = out["monetary_total"] / out["transactions"]

    days = (
        pd.DataFrame({"c": tx[customer_col].to_numpy(), "d": day.to_numpy()})
        .drop_duplicates()
        .sort_values(["c", "d"])
    )
    out["frequency"] = days.groupby("c").size().astype(float)
    gaps = days.groupby("c")["d"].diff().dt.total_seconds() / 86400.0
    gap_stats = gaps.groupby(days["c"]).agg(["mean", "std", "max"])
    out["gap_mean"] = gap_stats["mean"]
    out["gap_std"] = gap_stats["std"]
    out["gap_max"] = gap_stats["max"]
    age = (cutoff - tx[time_col]).dt.total_seconds() / 86400.0
    out["recent_30"] = (age <= 30).groupby(tx[customer_col]).sum().astype(float)
    out["recent_90"] = (age <= 90).groupby(tx[customer_col]).sum().astype(float)
    out = out.fillna({"gap_mean": 0.0, "gap_std": 0.0, "gap_max": 0.0})
    out["overdue"] = out["recency"] / (out["gap_mean"] + 1.0)
    return out.loc[:, list(FEATURES)].astype(float)


def churn_labels(
    transactions: pd.DataFrame,
    customers: pd.Index,
    start: pd.Timestamp | str,
    end: pd.Timestamp | str,
    *,
    customer_col: str = "customer_id",
    time_col: str = "date",
) -> pd.Series:
    """``True`` for each customer in ``customers`` with no transaction in ``[start, end)`` (bool Series)."""
    t = transactions[time_col]
    active = pd.Index(
        transactions.loc[(t >= pd.Timestamp(start)) & (t < pd.Timestamp(end)), customer_col].unique()
    )
    return pd.Series(~customers.isin(active), index=customers, name="churned")


def make_classifier(random_state: int = 0) -> HistGradientBoostingClassifier:
    """The default churn model: gradient-boosted trees (handles skewed, unscaled features)."""
    return HistGradientBoostingClassifier(
        max_iter=200, learning_rate=0.05, max_leaf_nodes=15, random_state=random_state
    )


@dataclass(frozen=True)
class ChurnReport:
    """Result of :func:`evaluate_time_split`."""

    roc_auc: float
    n_train: int
    n_test: int
    train_churn_rate: float
    test_churn_rate: float
    model: HistGradientBoostingClassifier


def evaluate_time_split(
    transactions: pd.DataFrame,
    train_cutoff: pd.Timestamp | str,
    test_cutoff: pd.Timestamp | str,
    horizon: pd.Timedelta | str,
    *,
    customer_col: str = "customer_id",
    time_col: str = "date",
    value_col: str = "dollar_value",
    random_state: int = 0,
) -> ChurnReport:
    """Train on (features before ``train_cutoff``, churn in the following ``horizon``), score on ``test_cutoff``.

    Raises:
        ValueError: if the training label window reaches past ``test_cutoff`` (leakage) or a
            split has a single class.
    """
    train_cutoff, test_cutoff, horizon = (
        pd.Timestamp(train_cutoff),
        pd.Timestamp(test_cutoff),
        pd.Timedelta(horizon),
    )
    if train_cutoff + horizon > test_cutoff:
        raise ValueError("training label window must end before the test cut-off")
    cols = {"customer_col": customer_col, "time_col": time_col}

    def split(cutoff: pd.Timestamp) -> tuple[pd.DataFrame, pd.Series]:
        x = customer_features(transactions, cutoff, value_col=value_col, **cols)
        y = churn_labels(transactions, x.index, cutoff, cutoff + horizon, **cols)
        if y.nunique() < 2:
            raise ValueError(f"labels at {cutoff.date()} have a single class")
        return x, y

    x_train, y_train = split(train_cutoff)
    x_test, y_test = split(test_cutoff)
    model = make_classifier(random_state).fit(x_train.to_numpy(), y_train.to_numpy())
    score = model.predict_proba(x_test.to_numpy())[:, 1]
    return ChurnReport(
        roc_auc=float(roc_auc_score(y_test.to_numpy(), score)),
        n_train=len(y_train),
        n_test=len(y_test),
        train_churn_rate=float(y_train.mean()),
        test_churn_rate=float(y_test.mean()),
        model=model,
    )
