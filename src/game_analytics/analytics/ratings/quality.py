"""Model quality of the win/draw/loss prediction on a RankingJob's matches: held-out log loss, Brier score,
reliability diagram and match quality, against the home-advantage baseline (pure, no I/O).

The model is :mod:`.prediction`'s ordered logit on leakage-free Glicko-2 features: every match is scored with the
ratings from before its rating period (fixed wall-clock periods of ``period_seconds`` from the Unix epoch, as the
RankingJob's Glicko-2 periods; default 7 days). The **held-out season** is the last ``holdout_days`` (default 365,
one football season) before the newest match; the model is fitted on every earlier match and scored on the
held-out ones. The **baseline** predicts the training frequencies of away win / draw / home win for every match
(it knows the home advantage and nothing about the players).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from game_analytics.analytics.ratings.glicko2 import Glicko2Config, Glicko2Ratings, rate_periods
from game_analytics.analytics.ratings.prediction import (
    OrderedLogit,
    fit_ordered_logit,
    match_quality,
    multiclass_brier,
    multiclass_log_loss,
    outcome_class,
    rating_feature,
)

__all__ = ["MatchModelQuality", "match_model_quality", "reliability_table"]


@dataclass(frozen=True)
class MatchModelQuality:
    """Held-out quality (see the module docstring). Log loss in nats, Brier in [0, 2] (multi-category form);
    ``mean_match_quality`` is the mean :func:`.prediction.match_quality` of the held-out pairings; ``reliability``
    is :func:`reliability_table` of the held-out predictions; ``ratings``/``players`` the final Glicko-2 state."""

    model: OrderedLogit
    n_train: int
    n_test: int
    holdout_start: pd.Timestamp
    log_loss: float
    brier: float
    baseline_log_loss: float
    baseline_brier: float
    mean_match_quality: float
    reliability: pd.DataFrame
    players: list[str]
    ratings: Glicko2Ratings


def reliability_table(y: np.ndarray, proba: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Reliability diagram data over all three outcome classes pooled: per probability bin (width ``1/bins``),
    ``predicted`` (mean predicted probability), ``observed`` (share of those predictions whose outcome happened)
    and ``predictions``; empty bins left out. ``y`` shape (m,), ``proba`` shape (m, 3)."""
    p = np.asarray(proba, dtype=float).ravel()
    hit = (np.eye(3)[np.asarray(y)] == 1).ravel()
    idx = np.minimum((p * bins).astype(int), bins - 1)
    frame = pd.DataFrame({"bin": idx, "p": p, "hit": hit})
    out = frame.groupby("bin").agg(predicted=("p", "mean"), observed=("hit", "mean"), predictions=("p", "size"))
    out["predictions"] = out["predictions"].astype(int)
    return out.reset_index(drop=True)


def match_model_quality(matches: pd.DataFrame, *, period_seconds: float = 7 * 86400.0, holdout_days: float = 365.0,
                        config: Glicko2Config | None = None) -> MatchModelQuality:  # fmt: skip
    """Fit and score the outcome model on ``matches`` (see the module docstring).

    Args:
        matches: columns ``home``, ``away`` (player ids), ``home_score``, ``away_score``, ``occurred_at``
            (datetime64, tz-aware or naive UTC), in any order.

    Raises:
        ValueError: no match before or in the held-out window, or a failed fit.
    """
    m = matches.sort_values("occurred_at", kind="stable").reset_index(drop=True)
    if m.empty:
        raise ValueError("no matches")
    when = pd.to_datetime(m["occurred_at"], utc=True)
    players = sorted(set(m["home"]) | set(m["away"]))
    index = {p: i for i, p in enumerate(players)}
    home = m["home"].map(index).to_numpy()
    away = m["away"].map(index).to_numpy()
    y = outcome_class(m["home_score"].to_numpy(), m["away_score"].to_numpy())
    seconds = (when - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    period = np.floor(seconds / period_seconds).astype(np.int64)
    final, pre = rate_periods(Glicko2Ratings.initial(len(players), config), period, home, away, y / 2.0, config,
                              return_pre_match=True)  # fmt: skip
    x = rating_feature(pre.rating[:, 0], pre.rd[:, 0], pre.rating[:, 1], pre.rd[:, 1])
    start = when.max() - pd.Timedelta(days=holdout_days)
    test = (when > start).to_numpy()
    if test.all() or not test.any():
        raise ValueError("need matches both before and inside the held-out window")
    model = fit_ordered_logit(x[~test], y[~test])
    proba = model.predict_proba(x[test])
    freq = np.bincount(y[~test], minlength=3) / int((~test).sum())
    base = np.tile(freq, (int(test.sum()), 1))
    return MatchModelQuality(
        model=model, n_train=int((~test).sum()), n_test=int(test.sum()), holdout_start=start,
        log_loss=multiclass_log_loss(y[test], proba), brier=multiclass_brier(y[test], proba),
        baseline_log_loss=multiclass_log_loss(y[test], base), baseline_brier=multiclass_brier(y[test], base),
        mean_match_quality=float(match_quality(proba).mean()), reliability=reliability_table(y[test], proba),
        players=players, ratings=final,
    )  # fmt: skip
