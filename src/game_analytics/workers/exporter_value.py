"""The exporter's slow section: game KPIs, the CLV distribution and churn-risk tiers per game (docs/analytics.md).

These need a model fit per game (BG/NBD, Gamma-Gamma, the churn classifier) and a pass over each game's whole
purchase history, so :class:`PlayerValueSection` recomputes them at most every ``interval`` seconds (or when the
evaluation time moves) and serves the families it built last in between. Every label is bounded:

* ``KPI{game, kpi}``: the KPIs of :func:`game_analytics.storage.queries.kpis.kpis` over the 30 days
  ``(as_of - 30 d, as_of]`` (undefined ratios left out);
* ``PLAYER_CLV{game}``: gauge histogram of the players' discounted CLV over the fixed :data:`names.CLV_BUCKETS`;
* ``CHURN_RISK_PLAYERS{game, tier}``: players per risk tier (every tier, 0 included);
* ``RANKING_MODEL_LOG_LOSS`` / ``RANKING_MODEL_BRIER{game, ranking, model="ratings|baseline"}``: the win/draw/loss
  model of each RankingJob's game on its most recent held-out season against the home-advantage baseline, and
  ``RANKING_MATCH_QUALITY{game, ranking}``: the mean match quality of those recent pairings
  (:mod:`game_analytics.analytics.ratings.quality`).
* ``FORECAST{game, metric="dau|revenue", bound="forecast|lower|upper"}``: the ETS forecast of the current UTC day
  (the day of ``as_of``) with its 95 % prediction interval, fitted on the complete days before it;
  ``FORECAST_30D{game, metric}``: mean DAU / total revenue forecast over the 30 days from that day;
  ``FORECAST_MAPE{game, metric}``: the backtest error (a share) of the same model over the last 30 complete days
  (:mod:`game_analytics.analytics.forecast`, as the activity and economy reports; docs/analytics.md);
* ``CHURN_CLASSIFIER_AUC{game}``: ROC AUC of the churn classifier on a time split (trained on the features before
  ``as_of - 56 d`` and churn in the 28 days after, scored on the features before ``as_of - 28 d`` against churn in
  the last 28 days), left out when a split has a single class;
  ``MODEL_FIT_TIMESTAMP{game, model="customer_value|outcome|forecast"}``: Unix time of the fit these families come from
  (age since refit = now minus it).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import Connection, text
from threadpoolctl import threadpool_limits

from game_analytics.analytics.churn.classifier import evaluate_time_split
from game_analytics.analytics.churn.value import RISK_TIERS, score_customers
from game_analytics.analytics.forecast import backtest, ets_forecast
from game_analytics.analytics.ratings.quality import MatchModelQuality, match_model_quality
from game_analytics.monitoring import names
from game_analytics.storage.queries import Filters
from game_analytics.storage.queries.customers import purchase_days
from game_analytics.storage.queries.kpis import daily_series, kpis
from game_analytics.storage.queries.ratings import board_games, game_matches
from game_analytics.workers.buckets import le_buckets

__all__ = ["FORECAST_HORIZON_DAYS", "KPI_NAMES", "KPI_WINDOW", "PlayerValueSection", "daily_history"]

log = logging.getLogger(__name__)

#: the window the exported KPIs cover, ending at the evaluation time
KPI_WINDOW = timedelta(days=30)
#: the exported KPIs (the ``kpi`` label values): a fixed list
KPI_NAMES = ("mean_dau", "active_players", "stickiness", "revenue", "paying_players", "arpdau", "arppu", "conversion",
             "new_players", "returning_players", "d1", "d7", "d30", "sessions_per_dau", "session_mean_seconds")


class PlayerValueSection:
    """Builds the families of the module docstring; ``interval``: seconds a result is reused for one as-of."""

    def __init__(self, interval: float = 600.0) -> None:
        self.interval = interval
        self._built: tuple[datetime, float, list[Metric]] | None = None

    def families(self, conn: Connection, as_of: datetime, games: Sequence[str]) -> list[Metric]:
        """The families at ``as_of``, reused for ``interval`` s while ``as_of`` has moved less than ``interval``.

        ``as_of`` moves on every refresh with ``--as-of now`` (the clock) or ``latest`` under ingest, so reuse must
        not require the same instant, or the models would be refitted on every refresh.

        Raises SQLAlchemy errors of the queries; a failing model fit only leaves that game's CLV and tiers out.
        """
        if self._built is not None:
            at, when, families = self._built
            if abs(as_of - at) < timedelta(seconds=self.interval) and time.monotonic() - when < self.interval:
                return families
        families = self._build(conn, as_of, games)
        self._built = (as_of, time.monotonic(), families)
        return families

    def _build(self, conn: Connection, as_of: datetime, games: Sequence[str]) -> list[Metric]:
        kpi = GaugeMetricFamily(names.KPI, "Game KPIs of the 30 days ending at the evaluation time (ARPDAU, ARPPU, "
                                "conversion, D1/D7/D30 retention, stickiness, ...; docs/analytics.md).",
                                labels=["game", "kpi"])  # fmt: skip
        clv = GaugeHistogramMetricFamily(names.PLAYER_CLV, "Players by discounted 12-month customer lifetime value "
                                         "(BG/NBD x Gamma-Gamma, fixed buckets).", labels=["game"])  # fmt: skip
        tiers = GaugeMetricFamily(names.CHURN_RISK_PLAYERS, "Players per churn-risk tier (P(alive) and the churn "
                                  "classifier).", labels=["game", "tier"])  # fmt: skip
        auc = GaugeMetricFamily(names.CHURN_CLASSIFIER_AUC, "ROC AUC of the churn classifier on a time split "
                                "(28-day horizon).", labels=["game"])  # fmt: skip
        fitted = GaugeMetricFamily(names.MODEL_FIT_TIMESTAMP, "Unix time of the model fit the exported figures "
                                   "come from.", labels=["game", "model"])  # fmt: skip
        forecasts = (
            GaugeMetricFamily(names.FORECAST, "ETS forecast of the current UTC day's DAU or revenue (USD) with its "
                              "95 % prediction interval.", labels=["game", "metric", "bound"]),
            GaugeMetricFamily(names.FORECAST_30D, f"Forecast over the next {FORECAST_HORIZON_DAYS} days: mean DAU, "
                              "total revenue (USD).", labels=["game", "metric"]),
            GaugeMetricFamily(names.FORECAST_MAPE, f"Backtest MAPE (a share) of the forecast over the last "
                              f"{FORECAST_HORIZON_DAYS} complete days.", labels=["game", "metric"]),
        )  # fmt: skip
        tick = timedelta(microseconds=1)
        end, start = as_of + tick, as_of - KPI_WINDOW + tick  # (as_of - 30 d, as_of], as the exporter's periods
        sql = "SELECT DISTINCT game FROM events WHERE occurred_at > :since AND occurred_at < :end"
        params: dict = {"since": as_of - KPI_WINDOW, "end": end}
        if games:
            sql += " AND game = ANY(CAST(:games AS text[]))"
            params["games"] = list(games)
        for (game,) in conn.execute(text(sql + " ORDER BY 1"), params).all():
            values = kpis(conn, Filters(start, end, (game,)))
            for key in KPI_NAMES:
                value = float(values[key])
                if math.isfinite(value):
                    kpi.add_metric([game, key], value)
            _add_forecasts(conn, game, as_of, forecasts, fitted)
            days = purchase_days(conn, Filters(None, end, (game,)))
            if days["player_id"].nunique() < 2:
                continue
            try:
                scores = score_customers(days, pd.Timestamp(as_of).tz_convert("UTC").tz_localize(None))
            except ValueError:
                log.warning("customer models of %s could not be fitted", game, exc_info=True)
                continue
            fitted.add_metric([game, "customer_value"], time.time())
            value = _classifier_auc(days, as_of)
            if value is not None:
                auc.add_metric([game], value)
            counts = scores.players["tier"].value_counts()
            for tier, _ in RISK_TIERS:
                tiers.add_metric([game, tier], int(counts.get(tier, 0)))
            values_clv = scores.players["clv"].to_numpy(dtype=float)
            values_clv = values_clv[np.isfinite(values_clv)]
            if values_clv.size:
                bounds = np.asarray(names.CLV_BUCKETS, dtype=float)
                # bucket i holds bounds[i-1] < clv <= bounds[i] (upper-inclusive), the last one +Inf
                per_bucket = np.bincount(np.searchsorted(bounds, values_clv, side="left"), minlength=len(bounds) + 1)
                cumulative = [int(n) for n in np.cumsum(per_bucket)]
                clv.add_metric([game], le_buckets(names.CLV_BUCKETS, cumulative), gsum_value=float(values_clv.sum()))
        return [kpi, clv, tiers, auc, *forecasts, fitted, *self._ranking_quality(conn, as_of, games, fitted)]

    @staticmethod
    def _ranking_quality(conn: Connection, as_of: datetime, games: Sequence[str],
                         fitted: GaugeMetricFamily) -> list[Metric]:  # fmt: skip
        labels = ["game", "ranking", "model"]
        log_loss = GaugeMetricFamily(names.RANKING_MODEL_LOG_LOSS, "Win/draw/loss log loss (nats) on the most "
                                     "recent held-out season: ratings model and home-advantage baseline.",
                                     labels=labels)  # fmt: skip
        brier = GaugeMetricFamily(names.RANKING_MODEL_BRIER, "Win/draw/loss Brier score (0 best, 2 worst) on the "
                                  "most recent held-out season.", labels=labels)  # fmt: skip
        quality = GaugeMetricFamily(names.RANKING_MATCH_QUALITY, "Mean match quality (normalised outcome entropy, "
                                    "1 = balanced) of the held-out season's pairings.",
                                    labels=["game", "ranking"])  # fmt: skip
        quality_by_game: dict[str, MatchModelQuality | None] = {}
        for board, game in board_games(conn):
            if game == "unknown" or (games and game not in games):
                continue
            if game not in quality_by_game:
                try:
                    quality_by_game[game] = match_model_quality(game_matches(conn, game, as_of + timedelta(microseconds=1)))
                except ValueError:
                    quality_by_game[game] = None
                else:
                    fitted.add_metric([game, "outcome"], time.time())
            q = quality_by_game[game]
            if q is None:
                continue
            for model, loss, score in (("ratings", q.log_loss, q.brier),
                                       ("baseline", q.baseline_log_loss, q.baseline_brier)):
                log_loss.add_metric([game, board, model], loss)
                brier.add_metric([game, board, model], score)
            quality.add_metric([game, board], q.mean_match_quality)
        return [log_loss, brier, quality]


#: horizon of the churn classifier's time split
AUC_HORIZON = pd.Timedelta(days=28)


def _classifier_auc(days: pd.DataFrame, as_of: datetime) -> float | None:
    """ROC AUC of the churn classifier on the time split of the module docstring; None when it is undefined."""
    end = pd.Timestamp(as_of).tz_convert("UTC").tz_localize(None).normalize() + pd.Timedelta(days=1)
    try:
        with threadpool_limits(1):  # as the classifier's fit in score_customers
            report = evaluate_time_split(days[days["day"] < end], end - 2 * AUC_HORIZON, end - AUC_HORIZON, AUC_HORIZON,
                                         customer_col="player_id", time_col="day", value_col="amount")
    except ValueError:  # a single class, or too few players before a cutoff
        return None
    return report.roc_auc if math.isfinite(report.roc_auc) else None


#: the forecast horizon (days), as the reports' (reports/forecasts.py)
FORECAST_HORIZON_DAYS = 30
#: the forecasts are fitted on at most this many days before the current one (a fit on 730 days takes ~0.2 s, on
#: 12 years 5 s: the report's whole-history fit would make the exporter's cost grow with the game's age)
FORECAST_HISTORY_DAYS = 730


def daily_history(conn: Connection, game: str, metric: str, as_of: datetime) -> pd.Series:
    """``metric`` ("dau" or "revenue") of ``game`` per complete UTC day before ``as_of``'s day (naive day index; days
    without activity 0): the last :data:`FORECAST_HISTORY_DAYS` days, or from the game's first day with data when
    the game has no event (for revenue: no purchase) before them."""
    day = pd.Timestamp(as_of).tz_convert("UTC").normalize()
    since = day - pd.Timedelta(days=FORECAST_HISTORY_DAYS)
    filters = Filters(since.to_pydatetime(), day.to_pydatetime(), (game,))
    series = daily_series(conn, filters, metric)
    kind = " AND event_type = 'purchase'" if metric == "revenue" else ""  # a game without purchases has no revenue
    older = conn.execute(text(f"SELECT EXISTS (SELECT 1 FROM events WHERE game = :game AND occurred_at < :since{kind})"),
                         {"game": game, "since": since.to_pydatetime()}).scalar_one()  # fmt: skip
    if older:
        first = since.tz_localize(None)
    elif series.empty:
        return series
    else:
        first = series.index.min()
    index = pd.date_range(first, day.tz_localize(None), freq="D", inclusive="left")
    return series.reindex(index, fill_value=0.0).astype(float)


def _add_forecasts(conn: Connection, game: str, as_of: datetime, families: tuple[GaugeMetricFamily, ...],
                   fitted: GaugeMetricFamily) -> None:  # fmt: skip
    """Add ``game``'s DAU and revenue forecasts to ``families`` (FORECAST, FORECAST_30D, FORECAST_MAPE); a metric
    with under 14 days of history has no forecast, one with under 44 no backtest."""
    point, horizon, error = families
    done = False
    for metric in ("dau", "revenue"):
        history = daily_history(conn, game, metric, as_of)
        try:
            forecast = ets_forecast(history, FORECAST_HORIZON_DAYS).frame
        except (ValueError, np.linalg.LinAlgError):
            continue
        done = True
        first = forecast.iloc[0]
        for bound in ("forecast", "lower", "upper"):
            point.add_metric([game, metric, bound], float(first[bound]))
        values = forecast["forecast"]
        horizon.add_metric([game, metric], float(values.mean() if metric == "dau" else values.sum()))
        try:
            mape, _ = backtest(history, FORECAST_HORIZON_DAYS)
        except (ValueError, np.linalg.LinAlgError):
            continue
        if math.isfinite(mape):
            error.add_metric([game, metric], mape)
    if done:
        fitted.add_metric([game, "forecast"], time.time())
