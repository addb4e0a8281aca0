"""The detector-quality harness: every detector type run over the real data with and without planted anomalies.

:data:`MEASURED` names, per detector type, the rule measured (its parameters: the shipped example's where one
exists, else the documented defaults), the evaluation step, the spacing of the plants and the detection
tolerance.  :func:`measure_worker` replays a worker-evaluated detector over two stores (one with the plants of
:mod:`.plants`, one untouched) through :func:`game_analytics.alerting.replay.replay`; :func:`measure_promql`
asks a Prometheus whose TSDB holds both histories (:mod:`.plants_series`, namespaces ``planted`` and
``untouched``).  Both score with :func:`game_analytics.alerting.quality.score`.  The harness needs the services;
``benchmarks/bench_detector_quality.py`` starts them and prints the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from game_analytics.alerting.backtest import Sample, backtest, backtest_alerts
from game_analytics.alerting.quality import Plant, Quality, score
from game_analytics.alerting.replay import replay, steps
from game_analytics.api.alertrule import DETECTOR_TYPES, AlertRuleSpec

__all__ = ["MEASURED", "Measured", "measure_promql", "measure_worker", "spec_of"]

M, H, D = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


@dataclass(frozen=True)
class Measured:
    """How one detector type is measured: ``params`` of its rule, evaluation ``step``, ``spacing`` of the plants
    and the ``tolerance`` after a plant within which a flag counts as detecting it.  ``lead``: the plants are
    drawn this long before the measured span (``[start - lead, end - lead)``), for a detector that can only see a
    plant weeks after it (churnRisk: the stop of a customer's purchases)."""

    params: dict[str, Any]
    step: timedelta
    spacing: timedelta
    tolerance: timedelta
    lead: timedelta = timedelta()


MEASURED: dict[str, Measured] = {
    "suddenWealthChange": Measured({"thresholdRatio": 5, "window": "1h", "minWealth": 200}, 10 * M, D, H + 10 * M),
    "rapidAssetTransfer": Measured({"count": 10, "window": "10m"}, 5 * M, 12 * H, 20 * M),
    "unusualLoginPattern": Measured({"maxDistinctRegions": 2, "maxLogins": 50, "window": "1h"}, 10 * M, 12 * H,
                                    H + 10 * M),
    "marketManipulation": Measured({"priceChange": 0.5, "window": "1h"}, 10 * M, 12 * H, H + 10 * M),
    "monopolyFormation": Measured({"marketShare": 0.5, "window": "1d"}, H, 2 * D, D + H),
    "anomalyScore": Measured({"activityType": "purchase", "threshold": 0.81, "contamination": 0.01}, D, D, 2 * D),
    # the day's DAU is judged once the day is complete: the first step of the next day flags it
    "forecastDeviation": Measured({"metric": "dau", "level": 0.99, "historyDays": 56}, H, 14 * D, D + H),
    # the example's rule; a planted churner is flagged about 2-4.5 weeks after their last purchase, while the
    # risk is high and their CLV still over minClv (plants.plant_churners, docs/backtest.md)
    "churnRisk": Measured({"minTier": "high", "minClv": 50, "minPurchaseDays": 3, "maxCases": 50}, D, D, 35 * D,
                          lead=24 * D),
    "currencyInflation": Measured({"rate": 0.05, "window": "1d", "currency": "USD"}, 10 * M, 3 * D, D),
    "highErrorRate": Measured({"ratio": 0.05, "window": "5m"}, M, 12 * H, 10 * M),
    "ingestLag": Measured({"maxLagSeconds": 120}, M, 12 * H, 15 * M),
    "lowEngagement": Measured({"minActivePlayers": 100, "period": "1d"}, 10 * M, 2 * D, H),
}


def spec_of(detector: str, params: dict[str, Any]) -> AlertRuleSpec:
    """A minimal AlertRule spec running ``detector`` with ``params`` (``for: 0s``, the default route)."""
    category = DETECTOR_TYPES[detector].category
    return AlertRuleSpec.model_validate({"category": category.value if category else "system",
                                         "detector": {detector: params}, "runbookURL": "https://x.example/r"})


def measure_worker(detector: str, planted: Engine, untouched: Engine, plants: Sequence[Plant], start: datetime,
                   end: datetime, how: Measured | None = None) -> Quality:
    """Replay a worker-evaluated detector over both stores and score it (see the module docstring).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: a store cannot be read.
    """
    how = how or MEASURED[detector]
    spec, times = spec_of(detector, how.params), steps(start, end, how.step)
    with_plants = replay(planted, f"quality/{detector}", spec, times)
    samples = replay(untouched, f"quality/{detector}", spec, times)
    clean = backtest(samples, rule=f"quality/{detector}", detector=detector, start=start, end=end, step=how.step,
                     for_=timedelta())
    return score(detector, how.params, with_plants, plants, clean, tolerance=how.tolerance)


def _union(alerts: dict[str, tuple[dict[str, str], list[Sample]]], times: Sequence[datetime]) -> list[Sample]:
    subjects: list[set[str]] = [set() for _ in times]
    for _, samples in alerts.values():
        for i, s in enumerate(samples):
            subjects[i] |= s.subjects
    return [Sample(t, frozenset(s)) for t, s in zip(times, subjects, strict=True)]


def measure_promql(detector: str, url: str, plants: Sequence[Plant], start: datetime, end: datetime,
                   how: Measured | None = None) -> Quality:
    """Evaluate a PromQL detector's expression in namespaces ``planted`` and ``untouched`` of the Prometheus at
    ``url`` and score it.

    Raises:
        game_analytics.alerting.prometheus.PrometheusError: Prometheus cannot answer.
    """
    from game_analytics.alerting.prometheus import alert_samples

    how = how or MEASURED[detector]
    spec, times = spec_of(detector, how.params), steps(start, end, how.step)
    with_plants = _union(alert_samples(url, f"planted/{detector}", spec, times), times)
    clean = backtest_alerts(alert_samples(url, f"untouched/{detector}", spec, times), rule=f"untouched/{detector}",
                            detector=detector, start=start, end=end, step=how.step, for_=timedelta())  # fmt: skip
    return score(detector, how.params, with_plants, plants, clean, tolerance=how.tolerance)
