"""Customer value and churn risk per player: RFM summary, BG/NBD + Gamma-Gamma CLV, churn classifier, risk tiers.

Pure: the input is a frame of purchase days (one row per player and UTC day with the amount spent, e.g.
:func:`game_analytics.storage.queries.customers.purchase_days`). Definitions (docs/analytics.md):

* **RFM summary** at ``observed_until`` (the last observed day), time unit ``unit_days`` (7 = weeks, as the
  published CDNOW fits): ``x`` repeat purchase days (days after the first), ``t_x`` time from the first to the last
  purchase day, ``T`` time from the first purchase day to ``observed_until``, ``zbar`` mean amount of the repeat
  days (0 when ``x == 0``).
* **CLV**: :func:`game_analytics.analytics.churn.gammagamma.clv` over ``periods`` periods of ``period_days``
  days discounted at ``discount_rate`` per period (defaults: 12 months of 28 days at 1 % a month).
* **P(alive)**: BG/NBD; **churn probability**: the gradient-boosted classifier of
  :mod:`.classifier` trained on the previous ``horizon_days`` (features before ``end - horizon``, label no
  purchase in ``[end - horizon, end)``) and applied to the features at ``end`` (NaN when the training window has
  a single class).
* **Risk score** = mean of ``1 - P(alive)`` and the churn probability (``1 - P(alive)`` alone without a classifier);
  **tiers** :data:`RISK_TIERS`: high >= 0.7, medium >= 0.4, else low.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from . import bgnbd, gammagamma
from .classifier import FEATURES, churn_labels, customer_features, make_classifier

__all__ = ["RISK_TIERS", "CustomerScores", "risk_tier", "rfm_summary", "score_customers"]

#: (tier, lowest risk score of the tier), highest tier first
RISK_TIERS: tuple[tuple[str, float], ...] = (("high", 0.7), ("medium", 0.4), ("low", 0.0))


def risk_tier(score: np.ndarray | pd.Series) -> np.ndarray:
    """The tier name of each risk score in [0, 1] (shape kept), per :data:`RISK_TIERS`."""
    values = np.asarray(score, dtype=float)
    out = np.full(values.shape, RISK_TIERS[-1][0], dtype=object)
    for name, low in reversed(RISK_TIERS[:-1]):
        out[values >= low] = name
    return out


def rfm_summary(days: pd.DataFrame, observed_until: pd.Timestamp, *, unit_days: float = 7.0) -> pd.DataFrame:
    """Per-player ``x, t_x, T, zbar`` (see the module docstring) plus ``amount_total`` (all days) and ``first_day``.

    Args:
        days: columns ``player_id``, ``day`` (datetime64), ``amount``; one row per player and day, days after
            ``observed_until`` are ignored.

    Returns:
        DataFrame indexed by ``player_id``, sorted. Raises KeyError on a missing column.
    """
    until = pd.Timestamp(observed_until).normalize()
    d = days.loc[days["day"] <= until, ["player_id", "day", "amount"]].sort_values(["player_id", "day"])
    g = d.groupby("player_id", sort=True)
    first, last = g["day"].min(), g["day"].max()
    x = (g.size() - 1).astype("int64")
    repeat_total = g["amount"].sum() - d.drop_duplicates("player_id").set_index("player_id")["amount"]
    out = pd.DataFrame({
        "x": x, "t_x": (last - first).dt.days / unit_days, "T": (until - first).dt.days / unit_days,
        "zbar": np.where(x > 0, repeat_total / x.where(x > 0, 1), 0.0), "amount_total": g["amount"].sum(),
        "first_day": first,
    })  # fmt: skip
    out.index.name = "player_id"
    return out


@dataclass
class CustomerScores:
    """Result of :func:`score_customers`: ``players`` (index ``player_id``: the RFM columns, ``p_alive``,
    ``expected_purchases`` over the horizon, ``expected_spend``, ``clv``, ``churn_probability``, ``risk``,
    ``tier`` and the classifier's :data:`FEATURES`) and the fitted models."""

    players: pd.DataFrame
    bgnbd: bgnbd.BGNBDParams
    gammagamma: gammagamma.GammaGammaParams | None
    classifier_trained: bool
    notes: list[str] = field(default_factory=list)


def score_customers(days: pd.DataFrame, observed_until: pd.Timestamp, *, horizon_days: int = 28,
                    periods: int = 12, period_days: float = 28.0, discount_rate: float = 0.01,
                    unit_days: float = 7.0) -> CustomerScores:  # fmt: skip
    """Fit the models on ``days`` up to ``observed_until`` and score every player (see the module docstring).

    Raises:
        ValueError: fewer than 2 players, or the BG/NBD fit fails.
    """
    summary = rfm_summary(days, observed_until, unit_days=unit_days)
    if len(summary) < 2:
        raise ValueError("need at least 2 players with purchases")
    notes: list[str] = []
    b = bgnbd.fit(summary["x"], summary["t_x"], summary["T"])
    spenders = summary[(summary["x"] > 0) & (summary["zbar"] > 0)]
    gg = None
    out = summary.copy()
    out["p_alive"] = bgnbd.probability_alive(b, summary["x"], summary["t_x"], summary["T"])
    out["expected_purchases"] = bgnbd.conditional_expected_purchases(
        b, horizon_days / unit_days, summary["x"], summary["t_x"], summary["T"])
    if len(spenders) >= 10:
        try:
            gg = gammagamma.fit(spenders["x"], spenders["zbar"])
        except ValueError as exc:
            notes.append(f"Gamma-Gamma fit failed: {exc}")
    if gg is not None and gg.q > 1:
        out["expected_spend"] = gammagamma.expected_spend(gg, summary["x"], summary["zbar"])
        out["clv"] = gammagamma.clv(b, gg, summary["x"], summary["t_x"], summary["T"], summary["zbar"],
                                    periods=periods, period_length=period_days / unit_days,
                                    discount_rate=discount_rate)  # fmt: skip
    else:
        out["expected_spend"] = np.nan
        out["clv"] = np.nan
        notes.append("No CLV: fewer than 10 players with repeat purchases or no finite mean spend (q <= 1).")

    end = pd.Timestamp(observed_until).normalize() + pd.Timedelta(days=1)
    horizon = pd.Timedelta(days=horizon_days)
    tx = days.loc[days["day"] < end, ["player_id", "day", "amount"]]
    cols = {"customer_col": "player_id", "time_col": "day", "value_col": "amount"}
    features = customer_features(tx, end, **cols)
    trained = False
    out["churn_probability"] = np.nan
    x_train = customer_features(tx, end - horizon, **cols)
    if len(x_train) >= 10:
        y_train = churn_labels(tx, x_train.index, end - horizon, end, customer_col="player_id", time_col="day")
        if y_train.nunique() == 2:
            with threadpool_limits(1):  # OpenMP threads on a shared node cost 20x on a few thousand rows
                model = make_classifier().fit(x_train.to_numpy(), y_train.to_numpy())
                out.loc[features.index, "churn_probability"] = model.predict_proba(features.to_numpy())[:, 1]
            trained = True
    if not trained:
        notes.append(f"No churn classifier: the {horizon_days} days before the end have a single class.")
    out = out.join(features[list(FEATURES)])
    dead = 1.0 - out["p_alive"]
    out["risk"] = np.where(out["churn_probability"].notna(), (dead + out["churn_probability"]) / 2.0, dead)
    out["tier"] = risk_tier(out["risk"])
    return CustomerScores(out, b, gg, trained, notes)
