"""Per-player purchase days in SQL on ``events``: the input of the customer-base models (BG/NBD, Gamma-Gamma, the
churn classifier) in :mod:`game_analytics.analytics.churn.value`.

A *transaction* of these models is a purchase day: a player's ``purchase`` events of one UTC day in ``currency``
summed into one row (the convention of the CDNOW summaries of Fader, Hardie and Lee, whose data only have days).
"""

from __future__ import annotations

import pandas as pd

from .filters import Bind, Filters, fetch_frame, where

__all__ = ["purchase_days"]


def purchase_days(bind: Bind, filters: Filters, *, currency: str = "USD") -> pd.DataFrame:
    """Purchase days of the events matching ``filters`` (their time window included).

    Returns:
        Columns ``player_id`` (str), ``day`` (datetime64, naive UTC midnight), ``amount`` (float, money spent
        that day in ``currency``; purchases without an amount count 0) and ``purchases`` (int), ordered by player
        and day.
    """
    cond, params = where(filters)
    frame = fetch_frame(bind, f"""
        SELECT e.player_id, (e.occurred_at AT TIME ZONE 'UTC')::date AS day,
               coalesce(sum((e.payload->>'amount')::float8), 0) AS amount, count(*) AS purchases
        FROM events e
        WHERE {cond} AND e.event_type = 'purchase' AND coalesce(e.payload->>'currency', 'USD') = :currency
        GROUP BY 1, 2 ORDER BY 1, 2""", {**params, "currency": currency})
    if frame.empty:
        return pd.DataFrame({"player_id": pd.Series(dtype=str), "day": pd.Series(dtype="datetime64[ns]"),
                             "amount": pd.Series(dtype=float), "purchases": pd.Series(dtype="int64")})  # fmt: skip
    frame["day"] = pd.to_datetime(frame["day"])
    frame["amount"] = frame["amount"].astype(float)
    frame["purchases"] = frame["purchases"].astype("int64")
    return frame
