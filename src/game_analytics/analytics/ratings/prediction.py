"""Win/draw/loss probabilities from ratings, match quality, and their evaluation.

Model: an ordered logit (proportional-odds model; P. McCullagh, "Regression Models for Ordinal
Data", JRSS B 42, 1980) on the outcome classes ``0 = away win < 1 = draw < 2 = home win``::

    eta = beta * x + gamma * home
    P(away) = sigmoid(-c - eta)
    P(draw) = sigmoid(c - eta) - sigmoid(-c - eta)
    P(home) = 1 - sigmoid(c - eta)

where ``x`` is the Glicko-2 rating difference scaled by ``g(sqrt(phi_h^2 + phi_a^2))`` (the
argument of Glickman's expected score), ``home`` is 1 when the first side plays at home, and the
symmetric cut-points ``+-c`` make a neutral pairing of equal players symmetric. ``beta``,
``gamma`` and ``c`` are fitted by maximum likelihood with :func:`scipy.optimize.minimize`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from game_analytics.analytics.ratings.glicko2 import (
    GLICKO2_SCALE,
    Glicko2Config,
    Glicko2Ratings,
    rate_periods,
)

#: Outcome classes, in the order of the probability columns.
AWAY_WIN, DRAW, HOME_WIN = 0, 1, 2


def rating_feature(
    rating_a: ArrayLike, rd_a: ArrayLike, rating_b: ArrayLike, rd_b: ArrayLike
) -> NDArray[np.float64]:
    """``g(sqrt(phi_a^2 + phi_b^2)) * (mu_a - mu_b)`` on the Glicko-2 scale (logit of the expected score)."""
    mu_d = (np.asarray(rating_a, dtype=np.float64) - np.asarray(rating_b, dtype=np.float64)) / GLICKO2_SCALE
    phi = np.hypot(np.asarray(rd_a, dtype=np.float64), np.asarray(rd_b, dtype=np.float64)) / GLICKO2_SCALE
    return mu_d / np.sqrt(1.0 + 3.0 * phi * phi / math.pi**2)


def outcome_class(goals_home: ArrayLike, goals_away: ArrayLike) -> NDArray[np.int64]:
    """Map scores to classes ``0`` away win, ``1`` draw, ``2`` home win."""
    return (np.sign(np.asarray(goals_home) - np.asarray(goals_away)) + 1).astype(np.int64)


@dataclass(frozen=True)
class OrderedLogit:
    """Fitted win/draw/loss model (see module docstring).

    Attributes:
        beta: weight of the rating feature.
        gamma: home advantage on the latent (logit) scale.
        cut: half-width ``c`` > 0 of the draw band.
        log_likelihood: training log-likelihood (nats).
    """

    beta: float
    gamma: float
    cut: float
    log_likelihood: float = float("nan")

    def predict_proba(self, x: ArrayLike, home: ArrayLike = 1.0) -> NDArray[np.float64]:
        """Class probabilities, shape (m, 3), columns (away win, draw, home win) for features ``x`` (m,)."""
        return _proba(
            np.asarray(x, dtype=np.float64),
            np.asarray(home, dtype=np.float64),
            self.beta,
            self.gamma,
            self.cut,
        )


def _proba(
    x: NDArray[np.float64], home: NDArray[np.float64], beta: float, gamma: float, cut: float
) -> NDArray[np.float64]:
    eta = beta * x + gamma * home
    lo = expit(-cut - eta)
    hi = expit(cut - eta)
    return np.stack(np.broadcast_arrays(lo, hi - lo, 1.0 - hi), axis=-1)


def fit_ordered_logit(x: ArrayLike, y: ArrayLike, home: ArrayLike = 1.0) -> OrderedLogit:
    """Maximum-likelihood fit of :class:`OrderedLogit`.

    Args:
        x: float array, shape (m,), rating feature (e.g. :func:`rating_feature`).
        y: int array, shape (m,), classes 0/1/2 (see :func:`outcome_class`).
        home: 1 if side ``a`` plays at home, 0 on neutral ground (scalar or shape (m,)).

    Raises:
        ValueError: on empty input, bad classes, or if the optimiser fails.
    """
    xv = np.asarray(x, dtype=np.float64)
    yv = np.asarray(y)
    hv = np.broadcast_to(np.asarray(home, dtype=np.float64), xv.shape)
    if xv.ndim != 1 or xv.shape != yv.shape or xv.size == 0:
        raise ValueError("x and y must be non-empty 1-D arrays of equal length")
    if not np.all(np.isin(yv, (0, 1, 2))):
        raise ValueError("y must contain classes 0, 1, 2 only")

    def nll(p: NDArray[np.float64]) -> float:
        beta, gamma, log_c = p
        c = math.exp(log_c)
        eta = beta * xv + gamma * hv
        a, b = -c - eta, c - eta
        # log P per class, computed stably.
        lp_away = log_expit(a)
        lp_home = log_expit(-b)
        # sigmoid(b) - sigmoid(a) = sigmoid(b) * sigmoid(-a) * (1 - exp(a - b)), with a < b.
        lp_draw = log_expit(b) + log_expit(-a) + np.log(-np.expm1(a - b))
        ll = np.where(yv == 0, lp_away, np.where(yv == 1, lp_draw, lp_home))
        return -float(ll.sum())

    res = minimize(nll, x0=np.array([1.0, 0.0, math.log(0.5)]), method="BFGS")
    if not np.all(np.isfinite(res.x)):
        raise ValueError(f"ordered logit fit failed: {res.message}")
    beta, gamma, log_c = res.x
    return OrderedLogit(
        beta=float(beta), gamma=float(gamma), cut=math.exp(log_c), log_likelihood=-float(res.fun)
    )


def match_quality(proba: ArrayLike) -> NDArray[np.float64]:
    """Match quality in [0, 1]: normalised entropy ``H(p) / ln 3`` of the (away, draw, home) probabilities.

    1 means all three outcomes are equally likely (a perfectly balanced pairing); values near 0
    mean the result is a foregone conclusion. ``proba`` has shape (..., 3).
    """
    p = np.clip(np.asarray(proba, dtype=np.float64), 1e-15, 1.0)
    return -(p * np.log(p)).sum(axis=-1) / math.log(3.0)


def predict_pairing(
    model: OrderedLogit,
    rating_a: ArrayLike,
    rd_a: ArrayLike,
    rating_b: ArrayLike,
    rd_b: ArrayLike,
    home: ArrayLike = 1.0,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Outcome probabilities and match quality for pairings of Glicko-2 rated players.

    Args:
        model: a fitted :class:`OrderedLogit`.
        rating_a, rd_a, rating_b, rd_b: Glicko-scale ratings and deviations (broadcast, shape (m,)).
        home: 1 if ``a`` plays at home, 0 on neutral ground.

    Returns:
        ``(proba, quality)``: shape (m, 3) probabilities of (b wins, draw, a wins) and shape (m,)
        :func:`match_quality`.
    """
    proba = model.predict_proba(np.atleast_1d(rating_feature(rating_a, rd_a, rating_b, rd_b)), home)
    return proba, match_quality(proba)


def multiclass_brier(y: ArrayLike, proba: ArrayLike) -> float:
    """Mean over matches of ``sum_k (p_k - 1[y = k])^2`` (Brier 1950, multi-category form; range [0, 2])."""
    p = np.asarray(proba, dtype=np.float64)
    onehot = np.eye(p.shape[1])[np.asarray(y)]
    return float(((p - onehot) ** 2).sum(axis=1).mean())


def multiclass_log_loss(y: ArrayLike, proba: ArrayLike) -> float:
    """Mean negative log-probability of the observed class (nats)."""
    p = np.asarray(proba, dtype=np.float64)
    yv = np.asarray(y)
    return float(-np.log(np.clip(p[np.arange(yv.size), yv], 1e-15, 1.0)).mean())


def glicko2_match_features(
    matches: pd.DataFrame, config: Glicko2Config | None = None
) -> tuple[pd.DataFrame, list[str], Glicko2Ratings]:
    """Leakage-free Glicko-2 features for a football-style match table.

    One rating period per (``Year``, ``Round``); each match sees only ratings from before its round.

    Args:
        matches: columns ``HomeTeam``, ``AwayTeam``, ``HomeGoals``, ``AwayGoals``, ``Round``, ``Year``.
        config: Glicko-2 parameters.

    Returns:
        ``(features, teams, final_ratings)``: ``features`` has the input index and columns
        ``x`` (see :func:`rating_feature`), ``y`` (outcome class), ``Year``, ``rating_home``,
        ``rating_away``; ``teams`` maps player index -> team name.
    """
    teams = sorted(set(matches["HomeTeam"]) | set(matches["AwayTeam"]))
    index = {t: i for i, t in enumerate(teams)}
    home = matches["HomeTeam"].map(index).to_numpy()
    away = matches["AwayTeam"].map(index).to_numpy()
    y = outcome_class(matches["HomeGoals"].to_numpy(), matches["AwayGoals"].to_numpy())
    period = matches["Year"].to_numpy().astype(np.int64) * 1000 + matches["Round"].to_numpy().astype(np.int64)
    final, pre = rate_periods(
        Glicko2Ratings.initial(len(teams), config), period, home, away, y / 2.0, config, return_pre_match=True
    )
    features = pd.DataFrame(
        {
            "x": rating_feature(pre.rating[:, 0], pre.rd[:, 0], pre.rating[:, 1], pre.rd[:, 1]),
            "y": y,
            "Year": matches["Year"].to_numpy(),
            "rating_home": pre.rating[:, 0],
            "rating_away": pre.rating[:, 1],
        },
        index=matches.index,
    )
    return features, teams, final


@dataclass(frozen=True)
class HoldoutReport:
    """Held-out evaluation of the rating model against the class-frequency baseline."""

    model: OrderedLogit
    baseline: NDArray[np.float64]  # class frequencies (away, draw, home) in training
    n_train: int
    n_test: int
    log_loss: float
    brier: float
    baseline_log_loss: float
    baseline_brier: float


def evaluate_holdout(
    features: pd.DataFrame, train_years: tuple[int, int], test_years: tuple[int, int]
) -> HoldoutReport:
    """Fit on ``train_years`` (inclusive range), score on ``test_years``.

    The baseline predicts the training frequencies of away win / draw / home win for every match
    (it knows the home advantage, nothing about the teams).
    """
    yr = features["Year"]
    train = features[(yr >= train_years[0]) & (yr <= train_years[1])]
    test = features[(yr >= test_years[0]) & (yr <= test_years[1])]
    if train.empty or test.empty:
        raise ValueError("empty training or test split")
    model = fit_ordered_logit(train["x"].to_numpy(), train["y"].to_numpy())
    proba = model.predict_proba(test["x"].to_numpy())
    freq = np.bincount(train["y"].to_numpy(), minlength=3) / len(train)
    base = np.tile(freq, (len(test), 1))
    y_test = test["y"].to_numpy()
    return HoldoutReport(
        model=model,
        baseline=freq,
        n_train=len(train),
        n_test=len(test),
        log_loss=multiclass_log_loss(y_test, proba),
        brier=multiclass_brier(y_test, proba),
        baseline_log_loss=multiclass_log_loss(y_test, base),
        baseline_brier=multiclass_brier(y_test, base),
    )
