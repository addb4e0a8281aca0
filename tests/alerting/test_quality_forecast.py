"""The detector-quality harness for forecastDeviation: launch-day rushes planted into CDNOW's spring 1997 are each
flagged by the first evaluation after their day ends."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from game_analytics.alerting import plants as event_plants
from game_analytics.alerting.harness import MEASURED, measure_worker
from game_analytics.data.datasets import load_cdnow_master
from game_analytics.data.events import purchase_events
from game_analytics.storage.engine import make_engine
from game_analytics.workers.load import copy_events

_names = itertools.count()


def test_planted_dau_spikes_are_recovered(postgres_server, _migrated_template) -> None:
    start, end = datetime(1997, 5, 1, tzinfo=UTC), datetime(1997, 6, 14, tzinfo=UTC)
    base = [e for e in purchase_events(load_cdnow_master()) if e["occurred_at"] <= end]
    name = f"ga_quality_fc_{next(_names)}"
    untouched_dsn = postgres_server.create_database(name, template=_migrated_template)
    copy_events(base, untouched_dsn)
    how = MEASURED["forecastDeviation"]
    times = event_plants.plant_times(start, end - timedelta(days=1), 3, how.spacing, seed=7)
    planted = event_plants.plant_dau_spike(base, times, 7)
    planted_dsn = postgres_server.create_database(f"{name}_p", template=name)
    assert copy_events(planted.events, planted_dsn).inserted == len(planted.events)
    engines: list[Engine] = [make_engine(planted_dsn), make_engine(untouched_dsn)]
    try:
        q = measure_worker("forecastDeviation", engines[0], engines[1], planted.plants, start, end)
    finally:
        for engine in engines:
            engine.dispose()
        postgres_server.drop_database(f"{name}_p")
        postgres_server.drop_database(name)
    assert len(times) == 3 and q.plants == 3 and q.recall == 1.0, q.missed
    # each is flagged at the first hourly step of the next day: delay = the rest of the plant's day (+ group_wait)
    for plant, delay in zip(planted.plants, q.delays, strict=True):
        next_midnight = datetime.combine(plant.at.date() + timedelta(days=1), datetime.min.time(), UTC)
        assert next_midnight - plant.at <= delay <= next_midnight - plant.at + timedelta(seconds=30)
    assert q.untouched_pages <= 2, q.untouched_pages  # 99 % bands on six weeks of real DAU: at most a couple of natural pages
