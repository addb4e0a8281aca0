"""The detection worker's model-based detectors: ``churnRisk`` (retention) and ``forecastDeviation`` (system).

Both read daily figures, so their result only changes when a UTC day completes: each is evaluated on the days
before ``as_of``'s UTC day, and the fitted result is cached in the worker's memory per rule, game, day and
parameters (:data:`CACHE_SIZE` entries, least recently used out).  A model is therefore fitted at most once a day
per rule and game, not on every 30-second pass; the passes in between cost one dictionary lookup per game.  A
backtest replay (:mod:`game_analytics.alerting.replay`) refits once per replayed day, as the worker would have.

``churnRisk``
    :func:`game_analytics.analytics.churn.value.score_customers` (BG/NBD P(alive), Gamma-Gamma CLV and the churn
    classifier; docs/analytics.md "Churn risk tiers") on the game's purchase days up to the last complete day.
    Flagged: players in tier ``minTier`` or above with at least ``minPurchaseDays`` purchase days and a CLV of at
    least ``minClv`` (``minClv`` 0 also keeps players without a CLV fit), the ``maxCases`` highest risks per game.
    The subject is the player; the evidence holds the risk, its two parts and the RFM figures behind them.  The
    rule's category is ``retention``, so its cases are retention interventions (``interventions list --detector
    churnRisk`` shows them with that category).
``forecastDeviation``
    DAU (distinct active players) or revenue (USD purchases) per UTC day; the last complete day ``D`` against
    :func:`game_analytics.analytics.forecast.ets_forecast` fitted on the ``historyDays`` days before ``D``
    (one day ahead, interval ``level``).  Flagged when the actual value is above the upper or below the lower
    bound (``direction``); no finding while a game has fewer than 14 days of history.  The subject is
    ``<metric>:<game>`` (``<metric>:all`` when the worker has no games: one series over every game).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import text

from game_analytics.storage.queries import Filters

__all__ = ["CACHE_SIZE", "churn_risk", "forecast_deviation"]

log = logging.getLogger(__name__)

#: fitted results kept in memory (rule x game x day x parameters), least recently used evicted
CACHE_SIZE = 256
_cache: OrderedDict[Hashable, Any] = OrderedDict()


def _cached(ctx: Any, key: tuple[Hashable, ...], compute: Callable[[], Any]) -> Any:
    """``compute()``, memoised under ``key`` and the store ``ctx.conn`` reads (two stores never share entries)."""
    key = (str(ctx.conn.engine.url), *key)
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    value = compute()
    _cache[key] = value
    while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return value


def _day_start(as_of: datetime) -> datetime:
    """Midnight UTC of ``as_of``'s day (aware): the end of the last complete day."""
    t = as_of.astimezone(UTC)
    return datetime(t.year, t.month, t.day, tzinfo=UTC)


def _games_with(ctx: Any, event_type: str, since: datetime | None, end: datetime) -> list[str]:
    """The worker's games, else every game with ``event_type`` events in ``[since, end)``."""
    if ctx.games:
        return list(ctx.games)
    sql = "SELECT DISTINCT game FROM events WHERE event_type = :type AND occurred_at < :end"
    params: dict[str, Any] = {"type": event_type, "end": end}
    if since is not None:
        sql += " AND occurred_at >= :since"
        params["since"] = since
    return [g for (g,) in ctx.conn.execute(text(sql + " ORDER BY 1"), params).all()]


# --- churnRisk ------------------------------------------------------------------------------------------------------


def _churn_findings(ctx: Any, game: str, end: datetime, p: Any) -> list[Any]:
    from game_analytics.analytics.churn.value import RISK_TIERS, score_customers
    from game_analytics.storage.queries.customers import purchase_days
    from game_analytics.workers.detectors import Finding

    days = purchase_days(ctx.conn, Filters(None, end, (game,)))
    if days["player_id"].nunique() < 2:
        return []
    observed_until = pd.Timestamp(end).tz_convert("UTC").tz_localize(None) - pd.Timedelta(days=1)
    try:
        scores = score_customers(days, observed_until)
    except ValueError:
        log.warning("churnRisk: the customer models of %s could not be fitted", game, exc_info=True)
        return []
    lowest = dict(RISK_TIERS)[p.min_tier.value]
    players = scores.players
    keep = (players["risk"] >= lowest) & (players["x"] + 1 >= p.min_purchase_days)
    if p.min_clv > 0:
        keep &= players["clv"].fillna(-np.inf) >= p.min_clv
    top = players[keep].sort_values(["risk", "amount_total"], ascending=[False, False]).head(p.max_cases)
    last = days.groupby("player_id")["day"].max()
    out = []
    for player, row in top.iterrows():
        clv = float(row["clv"]) if np.isfinite(row["clv"]) else None
        churn = float(row["churn_probability"]) if np.isfinite(row["churn_probability"]) else None
        out.append(Finding(str(player), str(player), float(row["risk"]), {
            "game": game, "tier": str(row["tier"]), "risk": float(row["risk"]), "p_alive": float(row["p_alive"]),
            "churn_probability": churn, "clv": clv, "purchase_days": int(row["x"]) + 1,
            "amount_total": float(row["amount_total"]), "last_purchase_day": last[player].date().isoformat(),
            "observed_until": observed_until.date().isoformat(), "min_tier": p.min_tier.value,
        }))  # fmt: skip
    return out


def churn_risk(ctx: Any, p: Any) -> list[Any]:
    """The ``churnRisk`` detector (see the module docstring): findings per game, highest risk first."""
    end = _day_start(ctx.as_of)
    out: list[Any] = []
    for game in _games_with(ctx, "purchase", None, end):
        key = ("churnRisk", ctx.rule, game, end, p.model_dump_json())
        out += _cached(ctx, key, lambda game=game: _churn_findings(ctx, game, end, p))
    return out


# --- forecastDeviation ----------------------------------------------------------------------------------------------


def _daily(ctx: Any, metric: str, games: tuple[str, ...], start: datetime, end: datetime) -> pd.Series:
    """``metric`` per UTC day in ``[start, end)`` (naive day index; days without activity 0)."""
    from game_analytics.storage.queries.kpis import daily_series

    series = daily_series(ctx.conn, Filters(start, end, games), metric)
    index = pd.date_range(pd.Timestamp(start).tz_convert(None), pd.Timestamp(end).tz_convert(None), freq="D",
                          inclusive="left")  # fmt: skip
    return series.reindex(index, fill_value=0.0).astype(float)


def _band(ctx: Any, metric: str, games: tuple[str, ...], day: datetime, p: Any) -> dict[str, Any] | None:
    """The one-day-ahead forecast of ``day`` from the ``historyDays`` before it, or None (too little history)."""
    from game_analytics.analytics.forecast import ets_forecast

    history = _daily(ctx, metric, games, day - timedelta(days=p.history_days), day)
    active = np.flatnonzero(history.to_numpy() > 0)
    if active.size == 0 or history.size - active[0] < 14:
        return None
    history = history.iloc[active[0]:]  # from the game's first active day
    try:
        forecast = ets_forecast(history, 1, alpha=1.0 - p.level)
    except (ValueError, np.linalg.LinAlgError):
        log.warning("forecastDeviation: no forecast of %s for %s", metric, games or "all games", exc_info=True)
        return None
    row = forecast.frame.iloc[0]
    return {"forecast": float(row["forecast"]), "lower": float(row["lower"]), "upper": float(row["upper"]),
            "model": forecast.model, "history_days": int(history.size)}  # fmt: skip


def forecast_deviation(ctx: Any, p: Any) -> list[Any]:
    """The ``forecastDeviation`` detector (see the module docstring): at most one finding per game."""
    from game_analytics.workers.detectors import Finding

    day = _day_start(ctx.as_of) - timedelta(days=1)
    metric = p.metric.value
    groups = [(g,) for g in ctx.games] or [()]
    out = []
    for games in groups:
        key = ("forecastDeviation", ctx.rule, games, day, p.model_dump_json())
        band = _cached(ctx, key, lambda games=games: _band(ctx, metric, games, day, p))
        if band is None:
            continue
        actual = float(_daily(ctx, metric, games, day, day + timedelta(days=1)).iloc[0])
        above, below = actual > band["upper"], actual < band["lower"]
        direction = p.direction.value
        if not ((above and direction in ("both", "above")) or (below and direction in ("both", "below"))):
            continue
        name = games[0] if games else "all"
        deviation = (actual - band["forecast"]) / band["forecast"] if band["forecast"] > 0 else float("inf")
        out.append(Finding(f"{metric}:{name}", None, abs(deviation) if np.isfinite(deviation) else actual, {
            "game": name, "metric": metric, "day": day.date().isoformat(), "actual": actual,
            "forecast": band["forecast"], "lower": band["lower"], "upper": band["upper"], "level": p.level,
            "direction": "above" if above else "below",
            "relative_deviation": deviation if np.isfinite(deviation) else None, "model": band["model"],
            "history_days": band["history_days"],
        }))  # fmt: skip
    return out
