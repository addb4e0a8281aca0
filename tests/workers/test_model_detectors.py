"""The churnRisk and forecastDeviation detectors on the real PostgreSQL with the CDNOW log, against independent
computations in pandas and statsmodels; the detection worker opens retention cases for churnRisk."""

from __future__ import annotations

import itertools
import json
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, text

from game_analytics.analytics.churn.value import score_customers
from game_analytics.api.alertrule import ChurnRisk, ForecastDeviation
from game_analytics.data.datasets import load_cdnow_master
from game_analytics.data.events import customer_player_id, purchase_events
from game_analytics.storage.engine import make_engine
from game_analytics.workers import model_detectors
from game_analytics.workers.detection import DetectionWorker, load_rules_dir
from game_analytics.workers.detectors import Context
from game_analytics.workers.load import copy_events

_names = itertools.count()


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    return load_cdnow_master()


@pytest.fixture(scope="module")
def cdnow_template(postgres_server, _migrated_template, cdnow: pd.DataFrame) -> Iterator[str]:
    name = f"ga_model_det_tpl_{next(_names)}"
    dsn = postgres_server.create_database(name, template=_migrated_template)
    assert copy_events(purchase_events(cdnow), dsn).dead_lettered == 0
    yield name
    postgres_server.drop_database(name)


@pytest.fixture
def store(postgres_server, cdnow_template: str) -> Iterator[Engine]:
    name = f"ga_model_det_{next(_names)}"
    engine = make_engine(postgres_server.create_database(name, template=cdnow_template))
    yield engine
    engine.dispose()
    postgres_server.drop_database(name)


def _run(engine: Engine, detector: Any, params: Any, as_of: datetime, rule: str = "games/r") -> list:
    with engine.connect() as conn:
        return detector(Context(conn, as_of, ["cdnow"], rule, Path("/nonexistent"), 3600.0), params)


# --- churnRisk ------------------------------------------------------------------------------------------------------


def _independent_churn(cdnow: pd.DataFrame, end: pd.Timestamp, min_days: int, top: int) -> pd.DataFrame:
    """Purchase days from the raw CDNOW records (pandas, not SQL), scored by the documented model."""
    raw = cdnow[cdnow["date"] < end]
    days = (raw.assign(player_id=raw["customer_id"].map(customer_player_id), day=raw["date"].dt.normalize())
            .groupby(["player_id", "day"], as_index=False)["dollar_value"].sum().rename(columns={"dollar_value": "amount"}))  # fmt: skip
    players = score_customers(days, end - pd.Timedelta(days=1)).players
    keep = players[(players["risk"] >= 0.7) & (players["x"] + 1 >= min_days)]
    return keep.sort_values(["risk", "amount_total"], ascending=[False, False]).head(top)


def test_churn_risk_flags_the_highest_risk_repeat_customers(store: Engine, cdnow: pd.DataFrame,
                                                            tmp_path: Path) -> None:  # fmt: skip
    as_of = datetime(1997, 9, 30, 12, tzinfo=UTC)  # 6 months of history; the day's own purchases are not used
    params = ChurnRisk(max_cases=25, min_purchase_days=3)
    found = _run(store, model_detectors.churn_risk, params, as_of)
    expected = _independent_churn(cdnow, pd.Timestamp("1997-09-30"), 3, 25)
    assert len(expected) == 25 and [f.subject for f in found] == list(expected.index)
    for f, (_, row) in zip(found, expected.iterrows(), strict=True):
        assert f.score == pytest.approx(row["risk"], rel=1e-9) and f.evidence["tier"] == "high"
        assert f.evidence["p_alive"] == pytest.approx(row["p_alive"], rel=1e-9)
        assert f.evidence["purchase_days"] == row["x"] + 1 >= 3 and f.evidence["observed_until"] == "1997-09-29"

    # End to end: the worker opens retention interventions for them, once.
    (tmp_path / "r" / "churn").mkdir(parents=True)
    (tmp_path / "r" / "churn" / "rule.json").write_text(json.dumps({
        "rule": "games/churn", "category": "retention", "severity": "info", "detector": "churnRisk",
        "params": {"maxCases": 25, "minPurchaseDays": 3},
    }))  # fmt: skip
    worker = DetectionWorker(store, lambda: load_rules_dir(tmp_path / "r"), as_of=as_of, games=["cdnow"])
    assert worker.run_once().inserted["games/churn"] == 25
    assert worker.run_once().inserted["games/churn"] == 0  # cached for the day: the same offence, nothing new
    with store.connect() as conn:
        cases = conn.execute(text("SELECT category, priority, count(*) FROM interventions GROUP BY 1, 2")).all()
    assert cases == [("retention", 3, 25)]


def test_churn_risk_min_clv_and_the_cap(store: Engine) -> None:
    as_of = datetime(1997, 9, 30, tzinfo=UTC)
    everyone = _run(store, model_detectors.churn_risk, ChurnRisk(max_cases=10_000, min_purchase_days=1), as_of)
    valuable = _run(store, model_detectors.churn_risk, ChurnRisk(max_cases=10_000, min_purchase_days=1,
                                                                 min_clv=20.0), as_of)  # fmt: skip
    assert 0 < len(valuable) < len(everyone)
    assert all(f.evidence["clv"] is not None and f.evidence["clv"] >= 20.0 for f in valuable)
    assert {f.subject for f in valuable} <= {f.subject for f in everyone}
    assert [f.score for f in everyone] == sorted((f.score for f in everyone), reverse=True)


# --- forecastDeviation ----------------------------------------------------------------------------------------------


def _independent_band(daily: pd.Series, day: pd.Timestamp, history: int, level: float) -> tuple[float, float, float]:
    """statsmodels' ETS (additive error, damped additive trend, weekly seasonality) fitted here directly."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    y = daily.loc[day - pd.Timedelta(days=history): day - pd.Timedelta(days=1)].asfreq("D", fill_value=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ETSModel(y, error="add", trend="add", damped_trend=True, seasonal="add",
                       seasonal_periods=7).fit(disp=False, maxiter=500)  # fmt: skip
        frame = fit.get_prediction(start=len(y), end=len(y)).summary_frame(alpha=1 - level)
    return (max(float(frame["mean"].iloc[0]), 0.0), max(float(frame["pi_lower"].iloc[0]), 0.0),
            max(float(frame["pi_upper"].iloc[0]), 0.0))  # fmt: skip


def _cdnow_dau(cdnow: pd.DataFrame) -> pd.Series:
    return cdnow.groupby(cdnow["date"].dt.normalize())["customer_id"].nunique().astype(float).asfreq("D", fill_value=0.0)


def test_forecast_deviation_fires_on_a_planted_spike_and_agrees_with_statsmodels(store: Engine,
                                                                                 cdnow: pd.DataFrame) -> None:  # fmt: skip
    day = pd.Timestamp("1998-03-10")
    as_of = datetime(1998, 3, 11, 9, tzinfo=UTC)  # evaluates 1998-03-10, the last complete day
    params = ForecastDeviation(metric="dau", level=0.95, history_days=90)
    forecast, lower, upper = _independent_band(_cdnow_dau(cdnow), day, 90, 0.95)
    actual = float(_cdnow_dau(cdnow).loc[day])
    natural = _run(store, model_detectors.forecast_deviation, params, as_of)
    assert (len(natural) == 1) == (not lower <= actual <= upper)

    # Plant 3x the band's upper bound of extra players on that day: it leaves the band, above.
    extra = int(3 * upper) + 1
    copy_events([{"event_id": f"spike-{i}", "event_type": "purchase", "occurred_at": datetime(1998, 3, 10, 15, tzinfo=UTC),
                  "player_id": f"spike-{i}", "game": "cdnow", "payload": {"quantity": 1, "amount": 9.99}}
                 for i in range(extra)], store.url.render_as_string(hide_password=False))  # fmt: skip
    model_detectors._cache.clear()
    (finding,) = _run(store, model_detectors.forecast_deviation, params, as_of)
    ev = finding.evidence
    assert finding.subject == "dau:cdnow" and ev["direction"] == "above" and ev["day"] == "1998-03-10"
    assert ev["actual"] == actual + extra
    assert (ev["forecast"], ev["lower"], ev["upper"]) == pytest.approx((forecast, lower, upper), rel=1e-4, abs=1e-3)
    below = _run(store, model_detectors.forecast_deviation, ForecastDeviation(metric="dau", history_days=90, direction="below"), as_of)
    assert below == []


def test_forecast_deviation_revenue_and_short_history(store: Engine, cdnow: pd.DataFrame) -> None:
    # Revenue on a day inside the log, against the same independent fit on the raw records.
    revenue = cdnow.groupby(cdnow["date"].dt.normalize())["dollar_value"].sum().asfreq("D", fill_value=0.0)
    day = pd.Timestamp("1997-11-20")
    params = ForecastDeviation(metric="revenue", level=0.99, history_days=120)
    forecast, lower, upper = _independent_band(revenue, day, 120, 0.99)
    found = _run(store, model_detectors.forecast_deviation, params, datetime(1997, 11, 21, tzinfo=UTC))
    inside = lower <= revenue.loc[day] <= upper
    assert (found == []) == inside
    if found:
        assert found[0].evidence["upper"] == pytest.approx(upper, rel=1e-4)
    # Ten days into the log there is too little history for a forecast: nothing is flagged, nothing raises.
    assert _run(store, model_detectors.forecast_deviation, params, datetime(1997, 1, 11, tzinfo=UTC)) == []


def test_cache_is_bounded_and_keyed_by_day(store: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    model_detectors._cache.clear()
    monkeypatch.setattr(model_detectors, "CACHE_SIZE", 3)
    params = ForecastDeviation(history_days=30)
    calls: list[datetime] = []
    band = model_detectors._band
    monkeypatch.setattr(model_detectors, "_band", lambda ctx, m, g, day, p: calls.append(day) or band(ctx, m, g, day, p))
    for hour in (1, 5, 23):  # three passes on one day: one fit
        _run(store, model_detectors.forecast_deviation, params, datetime(1998, 2, 1, hour, tzinfo=UTC))
    assert len(calls) == 1
    for d in range(2, 7):
        _run(store, model_detectors.forecast_deviation, params, datetime(1998, 2, d, tzinfo=UTC))
    assert len(calls) == 6 and len(model_detectors._cache) == 3
    assert np.all(np.diff([c.timestamp() for c in calls]) == timedelta(days=1).total_seconds())
