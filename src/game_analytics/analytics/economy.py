"""In-game economy metrics: inequality, wealth distribution, inflation, trade volume, wealth jumps.

All functions are pure and work on numpy arrays or pandas frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray


def _nonnegative_1d(values: ArrayLike) -> NDArray[np.float64]:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError("values must be 1-D")
    if not np.all(np.isfinite(v)) or np.any(v < 0):
        raise ValueError("values must be finite and non-negative")
    return v


def gini(values: ArrayLike) -> float:
    """Gini coefficient of non-negative amounts (0 = perfect equality, (n-1)/n = one holder has all).

    Sorted-array formula: with ``x_(1) <= ... <= x_(n)``,
    ``G = 2 * sum_i i * x_(i) / (n * sum_i x_(i)) - (n + 1) / n``
    (K. Damgaard and J. Weiner, "Describing inequality in plant size or fecundity", Ecology 81(4), 2000,
    eq. 2; the population form, without the n/(n-1) small-sample correction).

    Returns 0.0 when all amounts are zero. Raises ValueError on empty, negative or non-finite input.
    """
    v = np.sort(_nonnegative_1d(values))
    n = v.size
    if n == 0:
        raise ValueError("gini of an empty array is undefined")
    total = v.sum()
    if total == 0:
        return 0.0
    ranks = np.arange(1, n + 1, dtype=np.float64)
    return float(2.0 * np.dot(ranks, v) / (n * total) - (n + 1.0) / n)


def top_share(values: ArrayLike, fraction: float) -> float:
    """Share of the total held by the richest ``ceil(fraction * n)`` holders (in [0, 1]).

    Raises ValueError unless ``0 < fraction <= 1`` and values are valid (see :func:`gini`).
    """
    if not 0 < fraction <= 1:
        raise ValueError("fraction must be in (0, 1]")
    v = np.sort(_nonnegative_1d(values))[::-1]
    if v.size == 0:
        raise ValueError("empty input")
    total = v.sum()
    if total == 0:
        return 0.0
    k = int(np.ceil(fraction * v.size - 1e-12))
    return float(v[:k].sum() / total)


@dataclass(frozen=True)
class WealthSummary:
    """Distribution summary of per-player wealth."""

    count: int
    total: float
    mean: float
    quantiles: dict[float, float]
    top_1_share: float
    top_10_share: float
    gini: float


def wealth_summary(
    values: ArrayLike, quantiles: Sequence[float] = (0.1, 0.25, 0.5, 0.75, 0.9, 0.99)
) -> WealthSummary:
    """Count, total, mean, quantiles (linear interpolation), top-1%/10% shares and Gini of ``values`` (n,)."""
    v = _nonnegative_1d(values)
    if v.size == 0:
        raise ValueError("empty input")
    qs = np.quantile(v, quantiles)
    return WealthSummary(
        count=int(v.size),
        total=float(v.sum()),
        mean=float(v.mean()),
        quantiles={float(q): float(x) for q, x in zip(quantiles, qs, strict=True)},
        top_1_share=top_share(v, 0.01),
        top_10_share=top_share(v, 0.10),
        gini=gini(v),
    )


def laspeyres_price_index(prices: ArrayLike, base_quantities: ArrayLike) -> NDArray[np.float64]:
    """Laspeyres price index per period, base period = 1.

    ``P_t = sum_i p_{t,i} q_{0,i} / sum_i p_{0,i} q_{0,i}``: the cost of the base period's basket at
    period ``t`` prices (ILO/IMF "Consumer Price Index Manual", 2004, chapter 15).

    Args:
        prices: shape (periods, items), positive unit prices.
        base_quantities: shape (items,), non-negative basket quantities of period 0.

    Returns:
        shape (periods,).
    """
    p = np.asarray(prices, dtype=np.float64)
    q = np.asarray(base_quantities, dtype=np.float64)
    if p.ndim != 2 or q.shape != (p.shape[1],):
        raise ValueError("prices must be (periods, items) and base_quantities (items,)")
    if np.any(p <= 0) or np.any(q < 0) or not np.any(q > 0):
        raise ValueError("prices must be positive and the basket non-empty")
    cost = p @ q
    return cost / cost[0]


def inflation_rate(level: ArrayLike) -> NDArray[np.float64]:
    """Period-over-period inflation ``level[t] / level[t-1] - 1``, shape (periods - 1,).

    ``level`` is a price index (e.g. :func:`laspeyres_price_index`) for price inflation, or the money
    supply (sum of all currency held) for monetary inflation; both must be positive.
    """
    x = np.asarray(level, dtype=np.float64)
    if x.ndim != 1 or np.any(x <= 0):
        raise ValueError("level must be a 1-D positive array")
    return x[1:] / x[:-1] - 1.0


def trade_volume(
    trades: pd.DataFrame, freq: str = "D", *, time_col: str = "time", value_col: str = "value"
) -> pd.DataFrame:
    """Number of trades and traded value per calendar bucket.

    Args:
        trades: one row per trade with a datetime64 ``time_col`` and numeric ``value_col``.
        freq: pandas offset alias for the bucket (``"D"``, ``"h"``, ``"W"`` ...).

    Returns:
        DataFrame indexed by bucket start with columns ``trades`` (int) and ``value`` (float); empty
        buckets inside the range are present with zeros.
    """
    grouped = trades.set_index(time_col)[value_col].resample(freq)
    return pd.DataFrame({"trades": grouped.count().astype(np.int64), "value": grouped.sum().astype(float)})


def sudden_wealth_changes(
    wealth: pd.DataFrame,
    window: int,
    ratio: float,
    *,
    min_wealth: float = 1.0,
    player_col: str = "player_id",
    time_col: str = "time",
    value_col: str = "wealth",
) -> pd.DataFrame:
    """Flag players whose wealth changed by a factor of at least ``ratio`` within ``window`` snapshots.

    For every player the snapshots are ordered by time; at snapshot ``t`` the change ratio is
    ``max(w_t, min_wealth) / max(w_{t-window}, min_wealth)`` (``min_wealth`` keeps near-empty
    wallets from producing huge ratios). A row is flagged when the ratio is ``>= ratio`` (sudden
    gain) or ``<= 1 / ratio`` (sudden loss).

    Args:
        wealth: long table, one row per (player, snapshot).
        window: look-back in snapshots (>= 1).
        ratio: threshold (> 1).

    Returns:
        DataFrame with columns ``player_col, time_col, before, after, ratio, direction`` ("gain" or
        "loss"), sorted by player and time.
    """
    if window < 1 or ratio <= 1 or min_wealth <= 0:
        raise ValueError("need window >= 1, ratio > 1, min_wealth > 0")
    w = wealth.sort_values([player_col, time_col], kind="stable")
    after = w[value_col].astype(float)
    before = w.groupby(player_col)[value_col].shift(window).astype(float)
    r = after.clip(lower=min_wealth) / before.clip(lower=min_wealth)
    flagged = before.notna() & ((r >= ratio) | (r <= 1.0 / ratio))
    out = pd.DataFrame(
        {
            player_col: w[player_col],
            time_col: w[time_col],
            "before": before,
            "after": after,
            "ratio": r,
        }
    )[flagged]
    out["direction"] = np.where(out["ratio"] >= 1.0, "gain", "loss")
    return out.reset_index(drop=True)
