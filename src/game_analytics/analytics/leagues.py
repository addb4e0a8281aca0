"""Percentiles, league tiers and deterministic leaderboard ordering."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

DEFAULT_CUTS: tuple[float, ...] = (50.0, 80.0, 95.0)
DEFAULT_TIERS: tuple[str, ...] = ("bronze", "silver", "gold", "diamond")


def percentile_ranks(values: ArrayLike) -> NDArray[np.float64]:
    """Percentile rank in [0, 100] of every value: the percentage of values strictly below it.

    Ties share the same percentile (the count of values strictly below, as ``rankdata(method="min") - 1``), so
    equally rated players always
    land in the same tier. Shape (n,) -> (n,). Raises ValueError on NaN.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError("values must be 1-D")
    if np.isnan(v).any():
        raise ValueError("values must not contain NaN")
    if v.size == 0:
        return v.copy()
    below = np.searchsorted(np.sort(v), v, side="left")  # numpy only: scipy.stats costs a second at start-up
    return below * 100.0 / v.size


def assign_tiers(
    percentiles: ArrayLike,
    cuts: Sequence[float] = DEFAULT_CUTS,
    names: Sequence[str] = DEFAULT_TIERS,
) -> NDArray[np.str_]:
    """Tier name per percentile: ``names[i]`` for ``cuts[i-1] <= p < cuts[i]``.

    With the defaults: bronze < 50 <= silver < 80 <= gold < 95 <= diamond.

    Raises:
        ValueError: unless ``cuts`` is strictly increasing and ``len(names) == len(cuts) + 1``.
    """
    c = np.asarray(cuts, dtype=np.float64)
    if len(names) != c.size + 1:
        raise ValueError("need exactly one more tier name than cut-points")
    if np.any(np.diff(c) <= 0):
        raise ValueError("cut-points must be strictly increasing")
    idx = np.searchsorted(c, np.asarray(percentiles, dtype=np.float64), side="right")
    return np.asarray(names)[idx]


def leaderboard_order(
    rating: ArrayLike, rd: ArrayLike, games: ArrayLike, player_id: ArrayLike
) -> NDArray[np.intp]:
    """Indices that sort players for a leaderboard, deterministic under ties.

    Order: rating descending, then rating deviation ascending (more certain first), then games
    played descending, then player id ascending (ids must be mutually comparable, e.g. all str or
    all int). All arguments have shape (n,).
    """
    r = np.asarray(rating, dtype=np.float64)
    d = np.asarray(rd, dtype=np.float64)
    g = np.asarray(games, dtype=np.float64)
    ids = np.asarray(player_id)
    if not (r.shape == d.shape == g.shape == ids.shape) or r.ndim != 1:
        raise ValueError("all arguments must be 1-D arrays of equal length")
    # np.lexsort sorts by the last key first; dense ranks make mixed dtypes sortable together.
    id_rank = np.unique(ids, return_inverse=True)[1]
    return np.lexsort((id_rank, -g, d, -r))
