"""Elo ratings with a K-factor and a home advantage.

Source: Arpad Elo, "The Rating of Chessplayers, Past and Present" (1978); logistic form as used by
FIFA/World Football Elo: ``E_home = 1 / (1 + 10^(-(R_home + H - R_away) / 400))`` and
``R' = R + K * (S - E)``, zero-sum between the two players.

Matches are processed period by period. Within a period all matches use the ratings from the
start of the period and their updates are summed (vectorised with ``np.bincount``); with
``period=None`` every match is its own period, i.e. the classic sequential Elo.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray


@dataclass(frozen=True)
class EloConfig:
    """Elo parameters.

    Attributes:
        k: K-factor (rating points per unit of surprise).
        home_advantage: rating points added to the home side when computing expectations.
        initial_rating: rating of a new player.
        scale: logistic scale (400 in the original system).
    """

    k: float = 20.0
    home_advantage: float = 0.0
    initial_rating: float = 1500.0
    scale: float = 400.0

    def __post_init__(self) -> None:
        if self.k <= 0 or self.scale <= 0:
            raise ValueError("k and scale must be positive")


def elo_expected(
    rating_home: ArrayLike, rating_away: ArrayLike, home_advantage: float = 0.0, scale: float = 400.0
) -> NDArray[np.float64]:
    """Expected score of the home side in [0, 1] (arguments broadcast)."""
    diff = (
        np.asarray(rating_home, dtype=np.float64) + home_advantage - np.asarray(rating_away, dtype=np.float64)
    )
    return 1.0 / (1.0 + np.power(10.0, -diff / scale))


def rate_elo(
    n_players: int,
    home: ArrayLike,
    away: ArrayLike,
    score_home: ArrayLike,
    config: EloConfig | None = None,
    period: ArrayLike | None = None,
    initial: ArrayLike | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Run Elo over a list of matches.

    Args:
        n_players: number of players; indices are in ``[0, n_players)``.
        home, away: int arrays, shape (m,), player indices (``home`` gets the home advantage).
        score_home: float array, shape (m,): 1 home win, 0.5 draw, 0 away win.
        config: Elo parameters.
        period: optional array, shape (m,), of sortable period labels (see module docstring).
            Without it, matches are applied one by one in the given order.
        initial: optional starting ratings, shape (n_players,).

    Returns:
        ``(ratings, expected_home)``: final ratings, shape (n_players,), and the pre-match expected
        home score of every match, shape (m,), in input order.

    Raises:
        ValueError: on mismatched shapes or out-of-range indices.
    """
    config = config or EloConfig()
    h = np.asarray(home, dtype=np.intp)
    a = np.asarray(away, dtype=np.intp)
    s = np.asarray(score_home, dtype=np.float64)
    if h.ndim != 1 or h.shape != a.shape or h.shape != s.shape:
        raise ValueError("home, away and score_home must be 1-D arrays of equal length")
    if h.size and (min(h.min(), a.min()) < 0 or max(h.max(), a.max()) >= n_players):
        raise ValueError(f"player index out of range [0, {n_players})")
    ratings = (
        np.full(n_players, config.initial_rating, dtype=np.float64)
        if initial is None
        else np.array(initial, dtype=np.float64)
    )
    if ratings.shape != (n_players,):
        raise ValueError("initial must have shape (n_players,)")
    expected = np.empty(h.size)

    if period is None:
        # Sequential: plain Python floats are much faster than numpy scalars here.
        r = ratings.tolist()
        k, ha, sc = config.k, config.home_advantage, config.scale
        for i, (hi, ai, si) in enumerate(zip(h.tolist(), a.tolist(), s.tolist(), strict=True)):
            e = 1.0 / (1.0 + 10.0 ** (-(r[hi] + ha - r[ai]) / sc))
            expected[i] = e
            delta = k * (si - e)
            r[hi] += delta
            r[ai] -= delta
        return np.asarray(r), expected

    labels = np.asarray(period)
    if labels.shape != h.shape:
        raise ValueError("period must have the same shape as the match arrays")
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    cuts = np.flatnonzero(sorted_labels[1:] != sorted_labels[:-1]) + 1
    for sel in np.split(order, cuts) if h.size else []:
        e = elo_expected(ratings[h[sel]], ratings[a[sel]], config.home_advantage, config.scale)
        expected[sel] = e
        delta = config.k * (s[sel] - e)
        ratings = ratings + np.bincount(h[sel], delta, n_players) - np.bincount(a[sel], delta, n_players)
    return ratings, expected
