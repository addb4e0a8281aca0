"""The backtest agrees with the live path.

The demo's data (the CDNOW log plus demo-style injections: $25,000 purchases of modest customers, and a long burst
of transfers) goes through the live path: the detection worker itself (``DetectionWorker.run_once``, recording
detections and cases) at every evaluation step with ``as_of`` set to the step, its ``flagged`` figure per rule
read as Prometheus would scrape it, then a step-by-step simulation of Prometheus' ``for`` and of Alertmanager's
aggregation group (a timer per group: first flush after ``group_wait``, then every ``group_interval``, a
notification when ``repeat_interval`` has passed since the last).  The backtest (``alerts backtest``'s replay and
engine) runs over the same span; the page counts and the start times must be equal.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from game_analytics.alerting.backtest import backtest
from game_analytics.alerting.replay import replay, steps
from game_analytics.alerting.routing import DEFAULT_ROUTE, RouteTiming
from game_analytics.api.alertrule import AlertRuleSpec
from game_analytics.data.datasets import load_cdnow_master
from game_analytics.data.events import purchase_events
from game_analytics.storage.engine import make_engine
from game_analytics.workers.detection import DetectionWorker, load_rules_dir
from game_analytics.workers.load import copy_events

_names = itertools.count()
M = timedelta(minutes=1)
START = datetime(1998, 6, 30, 0, 30, tzinfo=UTC)  # after the last CDNOW day
END = START + timedelta(hours=12)
STEP = 5 * M


def purchase(i: int, player: str, minute: int, amount: float) -> dict:
    return {"event_id": f"live-p{i}", "event_type": "purchase", "occurred_at": START + minute * M,
            "player_id": player, "game": "cdnow", "region": "US",
            "payload": {"quantity": 400, "amount": amount, "currency": "USD"}}


def trade(i: int, minute: int) -> dict:
    return {"event_id": f"live-t{i}", "event_type": "trade", "occurred_at": START + minute * M,
            "player_id": "cdnow-00002", "game": "cdnow", "region": "US",
            "payload": {"counterparty_id": f"mule-{i % 3}", "item_id": "cd", "quantity": 1, "value": 12.0}}


@pytest.fixture(scope="module")
def store(postgres_server, _migrated_template) -> Iterator[Engine]:
    name = f"ga_live_{next(_names)}"
    dsn = postgres_server.create_database(name, template=_migrated_template)
    assert copy_events(purchase_events(load_cdnow_master()), dsn).dead_lettered == 0
    planted = [purchase(1, "cdnow-00010", 37, 25_000.0), purchase(2, "cdnow-00011", 152, 25_000.0),
               purchase(3, "cdnow-00012", 190, 25_000.0), purchase(4, "cdnow-00013", 450, 25_000.0)]
    burst = [trade(i, 100 + 10 * i) for i in range(43)]  # 7 h of a trade every 10 minutes
    assert copy_events(planted + burst, dsn).inserted == len(planted) + len(burst)
    engine = make_engine(dsn)
    yield engine
    engine.dispose()
    postgres_server.drop_database(name)


RULES = {
    "wealth-jump": {"category": "player", "detector": "suddenWealthChange",
                    "params": {"thresholdRatio": 5, "window": "1h", "minWealth": 100}},
    "transfers": {"category": "player", "detector": "rapidAssetTransfer", "params": {"count": 3, "window": "1h"}},
}


def live_pages(flagged: list[tuple[datetime, int]], for_: timedelta, route: RouteTiming,
               end: datetime) -> list[tuple[datetime, datetime]]:
    """``(page time, firing start)`` of every notification, stepping through Prometheus' evaluations and the
    Alertmanager group's flushes in time order (at one instant the evaluation comes first)."""
    wait, interval, repeat = route.durations()
    out: list[tuple[datetime, datetime]] = []
    pending = firing = None
    group: dict | None = None

    def flush_until(t: datetime, inclusive: bool) -> None:
        while group is not None and (group["next"] < t or inclusive and group["next"] == t):
            f = group["next"]
            if group["last"] is None or f - group["last"] >= repeat:
                out.append((f, group["start"]))
                group["last"] = f
            group["next"] = f + interval

    for t, count in flagged:
        flush_until(t, inclusive=False)
        if count == 0:
            pending = firing = group = None  # resolved: the group is gone once its resolved notice is out
            continue
        pending = pending or t
        if firing is None and t - pending >= for_:
            firing = t
            group = {"start": t, "next": t + wait, "last": None}
    flush_until(end, inclusive=True)
    return out


@pytest.mark.parametrize(("name", "for_", "expect"), [("wealth-jump", "0s", (3, 3)), ("transfers", "0s", (1, 2)),
                                                      ("transfers", "30m", (1, 2)), ("wealth-jump", "30m", (3, 3))])
def test_live_path_and_backtest_agree(store: Engine, tmp_path: Path, name: str, for_: str,
                                      expect: tuple[int, int]) -> None:
    rule = RULES[name]
    (tmp_path / name).mkdir()
    (tmp_path / name / "rule.json").write_text(json.dumps({"rule": f"games/{name}", "severity": "critical", **rule}))
    worker = DetectionWorker(store, lambda: load_rules_dir(tmp_path), model_dir=tmp_path / "models")
    times = steps(START, END, STEP)
    flagged = []
    for t in times:
        worker.as_of = t
        result = worker.run_once()
        assert not result.errors
        flagged.append((t, result.flagged[f"games/{name}"]))
    live = live_pages(flagged, timedelta(minutes=int(for_[:-1])), DEFAULT_ROUTE, END)

    spec = AlertRuleSpec.model_validate({"category": "player", "detector": {rule["detector"]: rule["params"]},
                                         "for": for_, "runbookURL": "https://x.example/r"})  # fmt: skip
    samples = replay(store, f"games/{name}", spec, times)
    result = backtest(samples, rule=f"games/{name}", detector=rule["detector"], start=START, end=END, step=STEP,
                      for_=timedelta(minutes=int(for_[:-1])))  # fmt: skip
    assert [s.at for s in samples if s.subjects] == [t for t, n in flagged if n]
    assert result.page_times == [p for p, _ in live]
    assert [i.pages[0] for i in result.incidents if i.pages] == sorted({min(p for p, s in live if s == start)
                                                                        for _, start in live})
    assert (sum(1 for i in result.incidents if i.pages), len(result.page_times)) == expect
