"""Pure numeric helpers of the reports: churn, cohort retention, Lorenz curves, gap-free time series."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

__all__ = [
    "bucket_starts",
    "churn_rate",
    "cohort_matrix",
    "lorenz_curve",
    "periods_between",
    "retention_curve",
]


def churn_rate(active_previous: int, churned: int) -> float | None:
    """Share of the players active in the previous period who are not active in this one, in [0, 1].

    ``None`` when nobody was active in the previous period (the rate is undefined, not 0).

    Raises:
        ValueError: negative counts or ``churned > active_previous``.
    """
    if active_previous < 0 or churned < 0 or churned > active_previous:
        raise ValueError(f"invalid churn counts: {churned} churned of {active_previous}")
    return None if active_previous == 0 else churned / active_previous


def _naive(ts: datetime | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def _floor(ts: pd.Timestamp, unit: str) -> pd.Timestamp:
    ts = _naive(ts)
    if unit == "day":
        return ts.normalize()
    if unit == "week":  # weeks start on Monday, like PostgreSQL date_trunc('week', ...)
        return (ts - pd.Timedelta(days=ts.weekday())).normalize()
    if unit == "month":
        return pd.Timestamp(ts.year, ts.month, 1)
    raise ValueError(f"unknown bucket unit {unit!r}")


def bucket_starts(start: datetime, end: datetime, unit: str) -> pd.DatetimeIndex:
    """Start (naive UTC) of every ``unit`` bucket (``day``/``week``/``month``) overlapping ``[start, end)``."""
    freq = {"day": "D", "week": "W-MON", "month": "MS"}[unit]
    return pd.date_range(_floor(start, unit), _naive(end), freq=freq, inclusive="left")


def periods_between(cohort: pd.Series, bucket: pd.Series, unit: str) -> pd.Series:
    """Whole ``unit`` periods from ``cohort`` to ``bucket`` (both bucket starts, naive datetimes): the cohort age."""
    if unit == "month":
        return (bucket.dt.year - cohort.dt.year) * 12 + (bucket.dt.month - cohort.dt.month)
    days = (bucket - cohort).dt.days
    return days // 7 if unit == "week" else days


def cohort_matrix(activity: pd.DataFrame, unit: str) -> pd.DataFrame:
    """Cohort retention matrix from per-(cohort, bucket) active player counts.

    Args:
        activity: columns ``cohort`` (bucket start of the players' first activity), ``bucket`` (a bucket start),
            ``players`` (distinct cohort players active in that bucket); naive datetimes.
        unit: ``day``, ``week`` or ``month``.

    Returns:
        One row per cohort (ascending), columns ``cohort``, ``size`` (players active in the cohort's own bucket,
        i.e. all of them) and ``0, 1, 2, ...``: share of the cohort active ``k`` units after its first bucket, in
        [0, 1]; NaN where the cohort is not yet that old at the last observed bucket.
    """
    if activity.empty:
        return pd.DataFrame(columns=["cohort", "size"])
    a = activity.copy()
    a["age"] = periods_between(a["cohort"], a["bucket"], unit).astype(int)
    sizes = a[a["age"] == 0].set_index("cohort")["players"]
    wide = a.pivot_table(index="cohort", columns="age", values="players", aggfunc="sum").sort_index()
    max_age = int(a["age"].max())
    wide = wide.reindex(columns=range(max_age + 1))
    last_bucket = a["bucket"].max()
    observable = periods_between(pd.Series(wide.index), pd.Series([last_bucket] * len(wide)), unit).to_numpy()
    values = wide.to_numpy(dtype=float)
    ages = np.arange(max_age + 1)
    values = np.where(ages[None, :] <= observable[:, None], np.nan_to_num(values, nan=0.0), np.nan)
    size = sizes.reindex(wide.index).to_numpy(dtype=float)
    out = pd.DataFrame(values / size[:, None], columns=list(ages))
    out.insert(0, "size", size.astype(int))
    out.insert(0, "cohort", wide.index)
    return out


def retention_curve(matrix: pd.DataFrame) -> pd.DataFrame:
    """Average retention by cohort age, weighted by cohort size over the cohorts observable at that age.

    Args:
        matrix: output of :func:`cohort_matrix`.

    Returns:
        Columns ``age`` (int), ``retention`` (in [0, 1]), ``cohorts`` (how many cohorts contribute).
    """
    ages = [c for c in matrix.columns if isinstance(c, int | np.integer)]
    rows = []
    for age in ages:
        col = matrix[age]
        ok = col.notna()
        if not ok.any():
            continue
        weights = matrix.loc[ok, "size"].astype(float)
        rows.append({"age": int(age), "retention": float((col[ok] * weights).sum() / weights.sum()),
                     "cohorts": int(ok.sum())})  # fmt: skip
    return pd.DataFrame(rows, columns=["age", "retention", "cohorts"])


def lorenz_curve(values: np.ndarray | pd.Series, points: int = 101) -> pd.DataFrame:
    """Lorenz curve of non-negative amounts sampled at ``points`` population shares.

    Returns columns ``population_share`` (0..1, poorest first) and ``amount_share`` (cumulative share of the
    total held by that poorest share; linear interpolation between holders). Empty or all-zero input gives the
    line of equality.
    """
    v = np.sort(np.asarray(values, dtype=float))
    grid = np.linspace(0.0, 1.0, points)
    if v.size == 0 or v.sum() <= 0:
        return pd.DataFrame({"population_share": grid, "amount_share": grid})
    cum = np.concatenate([[0.0], np.cumsum(v) / v.sum()])
    pop = np.linspace(0.0, 1.0, v.size + 1)
    return pd.DataFrame({"population_share": grid, "amount_share": np.interp(grid, pop, cum)})
