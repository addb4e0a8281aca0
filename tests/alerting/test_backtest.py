"""The AlertRule backtest: the pure engine (for, group_wait, repeat_interval) and, on real PostgreSQL with the CDNOW
log plus planted transfer bursts, the replay through the detection worker's own detectors."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from game_analytics import cli
from game_analytics.alerting import cli as alerts_cli
from game_analytics.alerting.backtest import Sample, backtest, incidents
from game_analytics.alerting.replay import NotBacktestable, replay, steps
from game_analytics.alerting.routing import DEFAULT_ROUTE, RouteTiming
from game_analytics.api.alertrule import AlertRuleSpec
from game_analytics.data.datasets import load_cdnow_master
from game_analytics.data.events import purchase_events
from game_analytics.storage.engine import make_engine
from game_analytics.workers.load import copy_events

ROOT = Path(__file__).resolve().parents[2]
M = timedelta(minutes=1)
_names = itertools.count()


def at(minute: int) -> datetime:
    return datetime(2020, 1, 6, tzinfo=UTC) + minute * M  # a Monday


def samples(flags: dict[int, set[str]], last: int, step: int = 10) -> list[Sample]:
    return [Sample(at(m), frozenset(flags.get(m, set()))) for m in range(0, last + 1, step)]


def run(s: list[Sample], for_: timedelta = timedelta(), route: RouteTiming = DEFAULT_ROUTE, end: int = 600):
    return backtest(s, rule="games/r", detector="rapidAssetTransfer", start=at(0), end=at(end), step=10 * M,
                    for_=for_, route=route)  # fmt: skip


def test_for_delays_and_suppresses_firing() -> None:
    s = samples({10: {"a"}, 20: {"a", "b"}, 30: {"b"}, 60: {"c"}}, 100)
    assert [(i.pending_at, i.firing_at, i.resolved_at) for i in incidents(s, timedelta())] == [
        (at(10), at(10), at(40)), (at(60), at(60), at(70))]
    assert [(i.firing_at, i.resolved_at) for i in incidents(s, 20 * M)] == [(at(30), at(40))]
    assert incidents(s, 21 * M) == []
    with pytest.raises(ValueError, match="strictly increasing"):
        incidents(list(reversed(s)), timedelta())


def test_group_wait_and_repeat_interval_make_the_pages() -> None:
    s = samples({m: {"x"} for m in range(100, 700, 10)}, 800)  # firing 100..700 (10 h)
    result = run(s, end=800)
    assert result.page_times == [at(100) + timedelta(seconds=10), at(340) + timedelta(seconds=10),
                                 at(580) + timedelta(seconds=10)]  # fmt: skip
    hourly = RouteTiming(("alertname",), "10s", "1m", "1h")
    assert len(run(s, route=hourly, end=800).page_times) == 10
    # an incident resolving within group_wait pages nobody
    slow = RouteTiming(("alertname",), "15m", "5m", "4h")
    short = run(samples({10: {"y"}}, 100), route=slow)
    assert short.page_times == [] and short.to_dict()["unpaged_incidents"] == 1
    # still firing at the end of the span: paged up to the end
    assert run(samples({m: {"z"} for m in range(0, 610, 10)}, 600)).page_times == [at(0) + timedelta(seconds=10),
                                                                                  at(240) + timedelta(seconds=10),
                                                                                  at(480) + timedelta(seconds=10)]


def test_summary_figures() -> None:
    s = samples({10: {"a"}, 200: {"a", "b"}, 300: {"b"}}, 7 * 24 * 60 - 10)
    result = backtest(s, rule="games/r", detector="rapidAssetTransfer", start=at(0), end=at(7 * 24 * 60),
                      step=10 * M, for_=timedelta())  # fmt: skip
    d = result.to_dict()
    assert d["pages"] == 3 and d["incidents"] == 3 and d["pages_per_week"] == pytest.approx(3.0)
    # pages at Mon 00:10, 03:20 and 05:00: a tie, broken by the earliest hour of the week
    assert d["busiest_hour_of_week"] == {"weekday": "Mon", "hour_utc": 0, "pages": 1}
    assert d["top_subjects"][0] == {"subject": "a", "incidents": 2, "steps": 2}
    assert json.loads(json.dumps(d))["timeline"][0]["first_page"] == (at(10) + timedelta(seconds=10)).isoformat()


def test_steps_are_bounded() -> None:
    assert steps(at(0), at(30), 10 * M) == [at(0), at(10), at(20), at(30)]
    with pytest.raises(ValueError, match="exceed"):
        steps(at(0), at(0) + timedelta(days=10_000), M)


def test_a_promql_rule_without_prometheus_is_not_backtested(tmp_path: Path, capsys) -> None:
    spec = AlertRuleSpec.model_validate({"category": "system", "detector": {"ingestLag": {"maxLagSeconds": 60}},
                                         "runbookURL": "https://x.example/r"})  # fmt: skip
    with pytest.raises(NotBacktestable, match="query_range"):
        replay(None, "games/lag", spec, [at(0)])  # type: ignore[arg-type]
    path = tmp_path / "lag.yaml"
    path.write_text(json.dumps({"kind": "AlertRule", "metadata": {"name": "lag"}, "spec": spec.to_api()}))
    code = alerts_cli.main(["backtest", "-f", str(path), "--from", "2020-01-01", "--to", "2020-01-02",
                            "--dsn", "postgresql+psycopg://nobody@127.0.0.1:1/none", "--output", "json"])  # fmt: skip
    assert code == 1 and json.loads(capsys.readouterr().out)["backtested"] is False


# --- on PostgreSQL ---------------------------------------------------------------------------------------------

T0 = datetime(1998, 6, 20, 2, tzinfo=UTC)  # the short burst
T2 = datetime(1998, 6, 20, 6, tzinfo=UTC)  # the long one


def trade(i: int, player: str, when: datetime) -> dict[str, Any]:
    return {"event_id": f"bt-{player}-{i}", "event_type": "trade", "occurred_at": when, "player_id": player,
            "game": "cdnow", "region": "US",
            "payload": {"counterparty_id": f"mule-{i % 3}", "item_id": "cd", "quantity": 1, "value": 12.0}}




@pytest.fixture(scope="module")
def planted(postgres_server, _migrated_template) -> Iterator[Engine]:
    """CDNOW plus two planted transfer bursts: 3 trades at T0+1..3m (flagged 50 minutes with count 3 / 1h), and
    one trade every 10 minutes from T2+1m for 7 hours (flagged from T2+30m to T2+7h40m)."""
    name = f"ga_backtest_{next(_names)}"
    dsn = postgres_server.create_database(name, template=_migrated_template)
    assert copy_events(purchase_events(load_cdnow_master()), dsn).dead_lettered == 0
    short = [trade(i, "cdnow-00001", T0 + (i + 1) * M) for i in range(3)]
    long = [trade(i, "cdnow-00002", T2 + (1 + 10 * i) * M) for i in range(43)]
    assert copy_events(short + long, dsn).inserted == 46
    engine = make_engine(dsn)
    yield engine
    engine.dispose()
    postgres_server.drop_database(name)


def transfer_rule() -> AlertRuleSpec:
    return AlertRuleSpec.model_validate({"category": "player", "detector": {"rapidAssetTransfer": {
        "count": 3, "window": "1h"}}, "runbookURL": "https://x.example/r"})  # fmt: skip


def test_planted_history_gives_the_known_page_count(planted: Engine) -> None:
    start, end = datetime(1998, 6, 20, tzinfo=UTC), datetime(1998, 6, 21, tzinfo=UTC)
    times = steps(start, end, 10 * M)
    found = replay(planted, "games/transfers", transfer_rule(), times)
    flagged = [(s.at, sorted(s.subjects)) for s in found if s.subjects]
    assert flagged[0] == (T0 + 10 * M, ["cdnow-00001"]) and flagged[-1] == (T2 + 460 * M, ["cdnow-00002"])
    assert len(flagged) == 6 + 44

    def pages(for_: timedelta = timedelta(), route: RouteTiming = DEFAULT_ROUTE) -> int:
        return len(backtest(found, rule="games/transfers", detector="rapidAssetTransfer", start=start, end=end,
                            step=10 * M, for_=for_, route=route).page_times)  # fmt: skip

    assert pages() == 3  # short: 1; long (7h20m firing, repeat 4h): 2
    assert pages(for_=timedelta(hours=1)) == 2  # the 50-minute burst never fires; the long one still repeats once
    assert pages(route=RouteTiming(DEFAULT_ROUTE.group_by, "10s", "1m", "1h")) == 9  # 1 + 8 hourly pages


def test_cli_backtests_the_example_rule(planted: Engine, capsys) -> None:
    dsn = planted.url.render_as_string(hide_password=False)
    code = cli.main(["alerts", "backtest", "-f", str(ROOT / "examples/alertrule-wealth-jump.yaml"),
                     "--from", "1998-06-01", "--to", "1998-06-30", "--step", "1h", "--dsn", dsn, "--output", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["backtested"] is True and out["detector"] == "suddenWealthChange"
    assert out["evaluated_steps"] == 29 * 24 + 1 and out["pages"] == len(out["timeline"]) - out["unpaged_incidents"]
    assert alerts_cli.main(["backtest", "-f", str(ROOT / "examples/alertrule-wealth-jump.yaml"), "--from",
                            "1998-06-29", "--to", "1998-06-30", "--step", "1h", "--dsn", dsn]) == 0
    assert "pages:" in capsys.readouterr().out
