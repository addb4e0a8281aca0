"""The detection worker's detectors: one function per worker-evaluated detector type, SQL over ``events``.

A detector takes a :class:`Context` (the rule's transaction, the evaluation time ``as_of``, the games) and the
rule's validated parameters, and returns the flagged subjects as :class:`Finding` objects:

``suddenWealthChange``
    wealth = cumulative net flow per (player, game, currency) - see :mod:`game_analytics.storage.queries.economy`.
    ``before`` = wealth at ``as_of - window``, ``after`` = wealth at ``as_of``; with ``floor = max(minWealth, 1)``
    the ratio is ``max(after, floor) / max(before, floor)`` (the same convention as
    :func:`game_analytics.analytics.economy.sudden_wealth_changes`); flagged when ``ratio >= thresholdRatio`` or
    ``ratio <= 1 / thresholdRatio`` and ``max(before, after) >= minWealth``.
``rapidAssetTransfer``
    at least ``count`` outgoing ``trade`` events of one player in the window.
``unusualLoginPattern``
    more than ``maxDistinctRegions`` distinct regions or more than ``maxLogins`` ``login`` events in the window.
``marketManipulation``
    an item whose unit price (trade ``value / quantity``, purchase ``amount / quantity``) in the window differs
    from its unit price in the window before by more than ``priceChange`` (relative); the subject is the item.
``monopolyFormation``
    a player holding more than ``marketShare`` of a game's transaction value (trades and purchases) in the window.
``anomalyScore``
    Isolation Forest (:mod:`game_analytics.analytics.anomaly`; Liu, Ting and Zhou, ICDM 2008) over per-player
    features of the activity type ``activityType`` (events, total / mean / max amount, active days, amount and
    events per active day), fitted on all players (:data:`ANOMALY_MAX_SAMPLES` per tree) and refitted when older
    than ``refit_seconds``; players scoring above ``threshold`` are flagged.  The fitted model and the latest
    scores are persisted as files in ``model_dir`` (``<rule>.<activity>.joblib`` and
    ``<rule>.<activity>.scores.csv``).
``churnRisk``, ``forecastDeviation``
    daily models (churn-risk tiers, ETS forecasts): :mod:`game_analytics.workers.model_detectors`.

Which detector types exist, and which of them this module evaluates (the others are PromQL templates), is the
detector table ``api.alertrule.DETECTOR_TYPES``; :data:`DETECTORS` is derived from it.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, text

from game_analytics.analytics.anomaly import ActivityAnomalyDetector
from game_analytics.api.alertrule import DETECTOR_TYPES, WORKER_EVALUATED
from game_analytics.api.common import parse_duration
from game_analytics.storage.derived import STATE_NAME
from game_analytics.storage.queries import Filters, clauses
from game_analytics.workers.model_detectors import churn_risk, forecast_deviation

__all__ = ["ANOMALY_FEATURES", "DETECTORS", "EVENT_TYPES", "PLAYER_SCOPED", "Context", "Finding", "anomaly_features"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Finding:
    """A flagged subject: ``subject`` (player id, or ``item:<id>``), ``player_id`` (None for non-players),
    ``score`` (the detector's figure: ratio, count, share, anomaly score) and ``evidence`` (JSON-able)."""

    subject: str
    player_id: str | None
    score: float
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    """What a detector needs besides its parameters."""

    conn: Connection
    as_of: datetime
    games: list[str]
    rule: str
    model_dir: Path
    refit_seconds: float
    #: only these players (the streaming path's touched and flagged subjects); None = every player
    players: Sequence[str] | None = None


def _games(ctx: Context, alias: str = "e") -> tuple[str, dict[str, Any]]:
    """``" AND <alias>.game = ANY(...)"`` (empty without games) and its parameters: the query layer's filter."""
    return clauses(Filters(games=tuple(ctx.games)), alias, prefix="ctx")


def _players(ctx: Context, alias: str = "e") -> tuple[str, dict[str, Any]]:
    """``" AND <alias>.player_id = ANY(...)"`` with ``ctx.players`` (empty for every player) and its parameters."""
    if ctx.players is None:
        return "", {}
    return f" AND {alias}.player_id = ANY(:ctx_players)", {"ctx_players": list(ctx.players)}


def _rows(ctx: Context, sql: str, params: dict[str, Any]) -> list[Any]:
    return ctx.conn.execute(text(sql), params).mappings().all()


#: the flagging condition of suddenWealthChange over ``before`` and ``after`` wealth (SQL expressions)
_WEALTH_RATIO = "greatest({after}, :floor) / greatest({before}, :floor)"
_WEALTH_FLAGGED = (f"greatest({{after}}, {{before}}) >= :min_wealth AND ({_WEALTH_RATIO} >= :threshold "
                   f"OR {_WEALTH_RATIO} <= 1.0 / :threshold)")
# numeric sums: exact, so the same rows give the same evidence in every pass, whatever the plan
_FLOW = ("CASE e.event_type WHEN 'purchase' THEN (e.payload->>'amount')::numeric "
         "ELSE (e.payload->>'delta')::numeric END")  # fmt: skip
_FLOWS = "e.event_type IN ('purchase', 'currency_change') AND e.player_id IS NOT NULL"
_MARKET = "e.game, coalesce(e.payload->>'currency', 'USD') AS currency, e.player_id"
#: the events the catch-up had not folded into ``player_balances``: not visible in the snapshot it recorded,
#: read by the same statement as the balances (``folded_at``), so both are of the same catch-up whatever commits
#: meanwhile. ``:xmin`` is the xmin of that snapshot as read just before the statement, a lower bound of the one
#: the statement reads (catch-ups serialize and record ever later snapshots; every transaction below a snapshot's
#: xmin is visible in it): a parameter of its own, so that a custom plan estimates the ``xact_id`` index range
_UNFOLDED = "e.xact_id >= :xmin AND NOT pg_visible_in_snapshot(e.xact_id::text::xid8, (SELECT snap FROM folded_at))"
_SNAPSHOT = "SELECT snapshot FROM aggregate_state WHERE name = :name"


def _wealth_change_sql(ctx: Context, folded: bool) -> str:
    """suddenWealthChange in one statement, for ``ctx.players`` or every player: ``moved`` is each (game,
    currency, player) with a flow in the window and its change there; ``after`` its wealth at ``as_of``.

    With ``folded`` the wealth is the running balance (``player_balances``, exact at the catch-up's snapshot
    ``:snapshot``) plus the flows of the events that catch-up had not folded in, minus those after ``as_of``: the
    cost is the window's and the newest events', not the players' whole history (a player's wealth is the sum
    of all their flows; summing it at 44,000 touched players per streaming batch read 4.35M rows per batch).
    Without it, the sum of every flow up to ``as_of``. Both give the same numeric figures."""
    games, _ = _games(ctx)
    scope, _ = _players(ctx)
    unfolded = _UNFOLDED if folded else "e.occurred_at <= :as_of"
    balance = "coalesce(b.wealth, 0) + coalesce(u.flow, 0) - coalesce(l.flow, 0)" if folded else "coalesce(u.flow, 0)"
    joins = ("LEFT JOIN player_balances b USING (game, currency, player_id) "
             "LEFT JOIN unfolded u USING (game, currency, player_id) "
             "LEFT JOIN later l USING (game, currency, player_id)") if folded else \
        "LEFT JOIN unfolded u USING (game, currency, player_id)"  # fmt: skip
    later = f""", later AS (
        SELECT {_MARKET}, sum({_FLOW}) AS flow FROM events e
        WHERE {_FLOWS} AND e.occurred_at > :as_of{games}{scope} GROUP BY 1, 2, 3
    )""" if folded else ""
    before, after = "(w.after - m.change)", "w.after"
    state = ("folded_at AS MATERIALIZED (SELECT CAST(snapshot AS pg_snapshot) AS snap FROM aggregate_state "
             "WHERE name = :name), ") if folded else ""
    return f"""
    WITH {state}moved AS MATERIALIZED (
        SELECT {_MARKET}, sum({_FLOW}) AS change FROM events e
        WHERE {_FLOWS} AND e.occurred_at > :since AND e.occurred_at <= :as_of{games}{scope} GROUP BY 1, 2, 3
    ), unfolded AS (
        SELECT {_MARKET}, sum({_FLOW}) AS flow FROM events e
        WHERE {_FLOWS} AND {unfolded}{games}{scope} GROUP BY 1, 2, 3
    ){later}
    SELECT m.game, m.currency, m.player_id, {before} AS before, {after} AS after,
           {_WEALTH_RATIO.format(after=after, before=before)} AS ratio
    FROM moved m {joins} CROSS JOIN LATERAL (SELECT {balance} AS after) AS w
    WHERE {_WEALTH_FLAGGED.format(after=after, before=before)}
    ORDER BY ratio DESC, player_id
    """


def sudden_wealth_change(ctx: Context, p: Any) -> list[Finding]:
    """suddenWealthChange (module docstring) at ``ctx.as_of``, from the running balances when a catch-up has
    run (:func:`game_analytics.storage.derived.catch_up`; the detection worker runs one before each whole pass
    and the streaming path every few seconds).

    The balances and the snapshot they are exact at are read by one statement, so under one statement snapshot
    and without a lock: a catch-up committing at any time is either wholly in it or not at all. (Reading the
    snapshot in a statement of its own and checking it again afterwards lost this race at every fold while the
    query ran, and after 3 losses fell back to the sum of every event, seconds per batch under load.) Without
    any catch-up yet, the sum of every flow up to ``as_of``."""
    params: dict[str, Any] = {"since": ctx.as_of - parse_duration(p.window, allow_zero=True), "as_of": ctx.as_of,
                              "floor": max(float(p.min_wealth), 1.0), "min_wealth": float(p.min_wealth),
                              "threshold": float(p.threshold_ratio), **_games(ctx)[1], **_players(ctx)[1]}  # fmt: skip
    snapshot = ctx.conn.execute(text(_SNAPSHOT), {"name": STATE_NAME}).scalar()
    if snapshot is None:
        rows = _rows(ctx, _wealth_change_sql(ctx, False), params)
    else:
        rows = _rows(ctx, _wealth_change_sql(ctx, True),
                     {**params, "name": STATE_NAME, "xmin": int(snapshot.split(":")[0])})  # fmt: skip
    out = []
    for r in rows:
        ratio = float(r["ratio"])
        out.append(Finding(r["player_id"], r["player_id"], ratio, {
            "game": r["game"], "currency": r["currency"], "wealth_before": float(r["before"]),
            "wealth_after": float(r["after"]), "ratio": ratio, "direction": "gain" if ratio >= 1 else "loss",
            "threshold_ratio": float(p.threshold_ratio), "min_wealth": float(p.min_wealth),
        }))  # fmt: skip
    return out


def rapid_asset_transfer(ctx: Context, p: Any) -> list[Finding]:
    game_cond, params = _games(ctx)
    scope, scope_params = _players(ctx)
    params.update(scope_params)
    sql = f"""
    SELECT e.player_id, e.game, count(*) AS transfers, count(DISTINCT e.payload->>'counterparty_id') AS counterparties,
           coalesce(sum((e.payload->>'value')::float8), 0) AS value
    FROM events e
    WHERE e.event_type = 'trade' AND e.occurred_at > :since AND e.occurred_at <= :as_of {game_cond}{scope}
    GROUP BY 1, 2 HAVING count(*) >= :count ORDER BY transfers DESC, player_id
    """
    params.update(since=ctx.as_of - parse_duration(p.window, allow_zero=True), as_of=ctx.as_of, count=p.count)
    return [Finding(r["player_id"], r["player_id"], float(r["transfers"]), {
        "game": r["game"], "transfers": int(r["transfers"]), "counterparties": int(r["counterparties"]),
        "value": float(r["value"]), "count_threshold": p.count,
    }) for r in _rows(ctx, sql, params)]  # fmt: skip


def unusual_login_pattern(ctx: Context, p: Any) -> list[Finding]:
    game_cond, params = _games(ctx)
    scope, scope_params = _players(ctx)
    params.update(scope_params)
    sql = f"""
    SELECT e.player_id, e.game, count(*) AS logins, count(DISTINCT e.region) AS regions,
           (array_agg(DISTINCT e.region))[1:10] AS sample_regions
    FROM events e
    WHERE e.event_type = 'login' AND e.occurred_at > :since AND e.occurred_at <= :as_of {game_cond}{scope}
    GROUP BY 1, 2 HAVING count(DISTINCT e.region) > :max_regions OR count(*) > :max_logins
    ORDER BY regions DESC, logins DESC, player_id
    """
    params.update(since=ctx.as_of - parse_duration(p.window, allow_zero=True), as_of=ctx.as_of,
                  max_regions=p.max_distinct_regions, max_logins=p.max_logins)  # fmt: skip
    return [Finding(r["player_id"], r["player_id"], float(r["regions"]), {
        "game": r["game"], "logins": int(r["logins"]), "distinct_regions": int(r["regions"]),
        "regions": list(r["sample_regions"] or []), "max_distinct_regions": p.max_distinct_regions,
        "max_logins": p.max_logins,
    }) for r in _rows(ctx, sql, params)]  # fmt: skip


def market_manipulation(ctx: Context, p: Any) -> list[Finding]:
    game_cond, params = _games(ctx)
    window = parse_duration(p.window, allow_zero=True)
    sql = f"""
    WITH priced AS (
        SELECT e.game, coalesce(e.payload->>'item_id', 'item') AS item, e.occurred_at > :since AS current,
               CASE e.event_type WHEN 'trade' THEN (e.payload->>'value')::float8
                                 ELSE (e.payload->>'amount')::float8 END AS value,
               (e.payload->>'quantity')::float8 AS quantity
        FROM events e
        WHERE e.event_type IN ('trade', 'purchase') AND e.occurred_at > :previous AND e.occurred_at <= :as_of
          AND (e.event_type = 'purchase' OR e.payload ? 'value') {game_cond}
    ), prices AS (
        SELECT game, item,
               sum(value) FILTER (WHERE current) / nullif(sum(quantity) FILTER (WHERE current), 0) AS now,
               sum(value) FILTER (WHERE NOT current) / nullif(sum(quantity) FILTER (WHERE NOT current), 0) AS before,
               count(*) FILTER (WHERE current) AS trades
        FROM priced GROUP BY 1, 2
    )
    SELECT game, item, now, before, now / before - 1 AS change, trades FROM prices
    WHERE before > 0 AND now IS NOT NULL AND abs(now / before - 1) > :threshold
    ORDER BY abs(now / before - 1) DESC, game, item
    """
    params.update(since=ctx.as_of - window, previous=ctx.as_of - 2 * window, as_of=ctx.as_of,
                  threshold=float(p.price_change))  # fmt: skip
    return [Finding(f"item:{r['game']}/{r['item']}", None, abs(float(r["change"])), {
        "game": r["game"], "item": r["item"], "unit_price_before": float(r["before"]),
        "unit_price_now": float(r["now"]), "relative_change": float(r["change"]), "trades": int(r["trades"]),
        "price_change_threshold": float(p.price_change),
    }) for r in _rows(ctx, sql, params)]  # fmt: skip


def monopoly_formation(ctx: Context, p: Any) -> list[Finding]:
    game_cond, params = _games(ctx)
    sql = f"""
    WITH volume AS (
        SELECT e.game, e.player_id,
               sum(CASE e.event_type WHEN 'purchase' THEN (e.payload->>'amount')::float8
                                     ELSE coalesce((e.payload->>'value')::float8, 0) END) AS value
        FROM events e
        WHERE e.event_type IN ('trade', 'purchase') AND e.player_id IS NOT NULL
          AND e.occurred_at > :since AND e.occurred_at <= :as_of {game_cond}
        GROUP BY 1, 2
    ), shares AS (
        SELECT game, player_id, value, value / nullif(sum(value) OVER (PARTITION BY game), 0) AS share,
               count(*) OVER (PARTITION BY game) AS traders
        FROM volume
    )
    SELECT * FROM shares WHERE share > :share ORDER BY share DESC, player_id
    """
    params.update(since=ctx.as_of - parse_duration(p.window, allow_zero=True), as_of=ctx.as_of, share=float(p.market_share))
    return [Finding(r["player_id"], r["player_id"], float(r["share"]), {
        "game": r["game"], "value": float(r["value"]), "share": float(r["share"]), "traders": int(r["traders"]),
        "market_share_threshold": float(p.market_share),
    }) for r in _rows(ctx, sql, params)]  # fmt: skip


ANOMALY_FEATURES = ("events", "total", "mean", "max", "active_days", "per_day", "events_per_day")
#: the players each tree of the forest is grown on (all players when fewer).  scikit-learn's "auto" (256) limits a
#: tree's depth to 8, so every point isolated near the root gets about the same score and a planted anomaly scored
#: 0.777 against 0.771 for the strangest real CDNOW customer; at 4,096 (depth 12) it is 0.833 against 0.794
#: (benchmarks/bench_detector_quality.py, docs/backtest.md "anomalyScore")
ANOMALY_MAX_SAMPLES = 4096


def anomaly_features(ctx: Context, activity: str) -> pd.DataFrame:
    """Per-player features of event type ``activity`` up to ``as_of``: one row per player (index ``player_id``),
    columns :data:`ANOMALY_FEATURES` plus ``activity``.  The amount is ``amount`` (purchases), ``value``
    (trades), ``|delta|`` (currency changes), ``session_seconds`` (logouts), else 0; ``per_day`` is the amount and
    ``events_per_day`` the number of events per active day (a burst of many small events in one day is what
    tells a bot or a card test from a big spender)."""
    game_cond, params = _games(ctx)
    sql = f"""
    SELECT e.player_id, count(*) AS events, sum(a) AS total, avg(a) AS mean, max(a) AS max,
           count(DISTINCT date_trunc('day', e.occurred_at AT TIME ZONE 'UTC')) AS active_days
    FROM (SELECT e.*, coalesce((e.payload->>'amount')::float8, (e.payload->>'value')::float8,
                               abs((e.payload->>'delta')::float8), (e.payload->>'session_seconds')::float8, 0) AS a
          FROM events e) AS e
    WHERE e.event_type = :activity AND e.player_id IS NOT NULL AND e.occurred_at <= :as_of {game_cond}
    GROUP BY 1 ORDER BY 1
    """
    params.update(activity=activity, as_of=ctx.as_of)
    frame = pd.DataFrame(_rows(ctx, sql, params))
    if frame.empty:
        return frame
    frame = frame.set_index("player_id").astype(float)
    frame["per_day"] = frame["total"] / frame["active_days"]
    frame["events_per_day"] = frame["events"] / frame["active_days"]
    frame["activity"] = activity
    return frame


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def anomaly_score(ctx: Context, p: Any) -> list[Finding]:
    features = anomaly_features(ctx, p.activity_type)
    if len(features) < 2:
        return []
    base = ctx.model_dir / f"{_safe(ctx.rule)}.{_safe(p.activity_type)}"
    model_file = base.with_name(base.name + ".joblib")
    detector = None
    if model_file.exists() and time.time() - model_file.stat().st_mtime < ctx.refit_seconds:
        try:
            detector = ActivityAnomalyDetector.from_bytes(model_file.read_bytes())
        except (TypeError, ValueError, EOFError):
            log.warning("discarding unreadable anomaly model %s", model_file)
    contamination = float(p.contamination)
    # log1p: amounts are heavy-tailed; the forest isolates on ranges, so compressing them keeps scale sane
    x = _transform(features)
    # a model grown with another per-tree sample ("auto": before ANOMALY_MAX_SAMPLES) is refitted; min(): a
    # population smaller than ANOMALY_MAX_SAMPLES is used whole (a growing one does not refit before refit_seconds)
    grown = getattr(detector, "max_samples", None)
    if (detector is None or list(detector.features) != list(ANOMALY_FEATURES)
            or getattr(detector, "contamination", None) != contamination
            or not isinstance(grown, int) or grown > ANOMALY_MAX_SAMPLES):  # fmt: skip
        detector = ActivityAnomalyDetector(ANOMALY_FEATURES, random_state=0, contamination=contamination,
                                           max_samples=min(ANOMALY_MAX_SAMPLES, len(x)))  # fmt: skip
        detector.fit(x)
        ctx.model_dir.mkdir(parents=True, exist_ok=True)
        tmp = model_file.with_suffix(".tmp")
        tmp.write_bytes(detector.to_bytes())
        os.replace(tmp, model_file)
    scores = detector.score(x)
    scored = features.assign(score=scores).sort_values("score", ascending=False)
    scored[["score", *ANOMALY_FEATURES]].to_csv(base.with_name(base.name + ".scores.csv"))
    flagged = scored[scored["score"] > p.threshold]
    cutoff = detector.cutoffs().get(p.activity_type, float("nan"))
    return [Finding(str(player), str(player), float(row.score), {
        "activity_type": p.activity_type, "score": float(row.score), "threshold": float(p.threshold),
        "contamination": contamination, "contamination_cutoff": cutoff, "outlier": bool(row.score > cutoff),
        "features": {f: float(getattr(row, f)) for f in ANOMALY_FEATURES},
    }) for player, row in zip(flagged.index, flagged.itertuples(index=False), strict=True)]  # fmt: skip


def _transform(features: pd.DataFrame) -> pd.DataFrame:
    out = features.copy()
    out[list(ANOMALY_FEATURES)] = np.log1p(out[list(ANOMALY_FEATURES)].clip(lower=0))
    return out


_IMPLEMENTATIONS: dict[str, Callable[[Context, Any], list[Finding]]] = {
    "suddenWealthChange": sudden_wealth_change,
    "rapidAssetTransfer": rapid_asset_transfer,
    "unusualLoginPattern": unusual_login_pattern,
    "marketManipulation": market_manipulation,
    "monopolyFormation": monopoly_formation,
    "anomalyScore": anomaly_score,
    "churnRisk": churn_risk,
    "forecastDeviation": forecast_deviation,
}
if set(_IMPLEMENTATIONS) != WORKER_EVALUATED:  # the detector table (api.alertrule.DETECTOR_TYPES) decides
    raise ImportError(f"detectors implemented {sorted(_IMPLEMENTATIONS)} != worker-evaluated {sorted(WORKER_EVALUATED)}")

#: detectors whose subjects are players and that can be evaluated for some players only (``Context.players``):
#: the streaming path evaluates these for the players an event touched (and those already flagged)
PLAYER_SCOPED: frozenset[str] = frozenset({"suddenWealthChange", "rapidAssetTransfer", "unusualLoginPattern"})

#: detector type -> the event types that can change its findings (the streaming path re-evaluates on these)
EVENT_TYPES: dict[str, frozenset[str] | None] = {
    "suddenWealthChange": frozenset({"purchase", "currency_change"}),
    "rapidAssetTransfer": frozenset({"trade"}),
    "unusualLoginPattern": frozenset({"login"}),
    "marketManipulation": frozenset({"trade", "purchase"}),
    "monopolyFormation": frozenset({"trade", "purchase"}),
    "anomalyScore": None,  # a forest fitted on the population: evaluated by the periodic pass only
    "churnRisk": None,  # daily models (workers/model_detectors.py): the periodic pass only
    "forecastDeviation": None,
}

#: detector type -> its evaluation, for every type ``api.alertrule.DETECTOR_TYPES`` has the worker evaluate
DETECTORS: dict[str, Callable[[Context, Any], list[Finding]]] = {
    name: _IMPLEMENTATIONS[name] for name in DETECTOR_TYPES if name in WORKER_EVALUATED
}
