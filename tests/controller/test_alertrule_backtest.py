"""AlertRule ``spec.mode: DryRun`` (rendered without any route to a receiver) and ``status.backtest`` /
``status.quality`` (the operator's bounded, cached backtest; the shipped measured quality), on the in-memory API and,
for the backtest itself, on the real PostgreSQL."""

from __future__ import annotations

import copy
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from game_analytics.alerting import measured
from game_analytics.alerting.backtest import Backtest, Incident
from game_analytics.alerting.quality import Quality
from game_analytics.alerting.routing import DEFAULT_ROUTE
from game_analytics.api.alertrule import AlertRuleSpec
from game_analytics.config import BacktestSettings, Images
from game_analytics.controller.alertrule import backtests, render
from game_analytics.controller.common import conditions
from game_analytics.controller.common.render import Owner
from game_analytics.monitoring import names
from game_analytics.workers.detection import DetectionWorker, parse_rule
from game_analytics.workers.load import copy_events

from .fake_cluster import FakeCluster, secret
from .test_reconcile import body, ready, run

SETTINGS = BacktestSettings()
IMAGES = Images(backtest=SETTINGS)
NOW = datetime(2026, 11, 30, 12, 34, tzinfo=UTC)


def dry(example: str = "alertrule-wealth-jump.yaml") -> dict:
    rule = body(example)
    rule["spec"]["mode"] = "DryRun"
    return rule


def fake_result(rule: str, spec: AlertRuleSpec, source, start: datetime, end: datetime, settings) -> Backtest:
    """Two paged incidents in the window: 3 pages, the last one firing 2 days before its end."""
    first = Incident(start + timedelta(days=1), start + timedelta(days=1), start + timedelta(days=1, hours=1),
                     [start + timedelta(days=1, seconds=10)])
    last_at = end - timedelta(days=2)
    last = Incident(last_at, last_at, None, [last_at + timedelta(seconds=10), last_at + timedelta(hours=4)])
    return Backtest(rule, spec.detector.kind(), start, end, timedelta(minutes=5), timedelta(), DEFAULT_ROUTE,
                    [first, last])


class Recorder:
    """A backtest run that records its calls (and may block or fail)."""

    def __init__(self, error: Exception | None = None, gate: threading.Event | None = None):
        self.calls: list[tuple[str, datetime, datetime]] = []
        self.error, self.gate = error, gate

    def __call__(self, rule, spec, source, start, end, settings) -> Backtest:
        self.calls.append((rule, start, end))
        if self.gate is not None:
            assert self.gate.wait(10)
        if self.error is not None:
            raise self.error
        return fake_result(rule, spec, source, start, end, settings)


@pytest.fixture
def install(monkeypatch: pytest.MonkeyPatch):
    """``install(run, clock=..., wait=...)``: the operator's backtester for these tests."""
    made: list[backtests.Backtester] = []

    def _install(run, clock=lambda: NOW, wait: float = 2.0) -> backtests.Backtester:
        instance = backtests.Backtester(SETTINGS, run=run, clock=clock, wait_seconds=wait)
        made.append(instance)
        monkeypatch.setattr(backtests, "backtester", lambda settings: instance)
        return instance

    yield _install
    for instance in made:
        instance.shutdown()


def backtested(rule: dict) -> dict:
    return conditions.get(rule["status"]["conditions"], backtests.CONDITION)


# -- DryRun ------------------------------------------------------------------------------------------------------


def test_dry_run_sends_nothing_to_alertmanager_and_has_no_route() -> None:
    rule = dry()
    spec = AlertRuleSpec.model_validate(rule["spec"])
    assert spec.channels, "the example has channels: DryRun must not route to them"
    children = render.render(Owner.from_body(rule), spec)
    kinds = [c["kind"] for c in children]
    assert kinds == ["PrometheusRule", "ConfigMap"], "no AlertmanagerConfig: no route to any receiver"
    (entry,) = children[0]["spec"]["groups"][0]["rules"]
    assert "alert" not in entry and entry["record"] == names.DRY_RUN_CONDITION
    assert entry["labels"]["alertname"] == "WhaleWealthJump" and entry["labels"]["rule"] == "games/whale-wealth-jump"
    live = render.render(Owner.from_body(body("alertrule-wealth-jump.yaml")), AlertRuleSpec.model_validate(
        body("alertrule-wealth-jump.yaml")["spec"]))
    assert entry["expr"] == live[0]["spec"]["groups"][0]["rules"][0]["expr"]
    import json

    document = json.loads(children[1]["data"][render.DETECTOR_CONFIG_KEY])
    assert "alert" not in document and document["mode"] == "DryRun"
    config = parse_rule(document)
    assert config.dry_run and config.alert is None, "the streaming path has nothing to send"


def test_switching_to_dry_run_prunes_the_route_and_back_restores_it() -> None:
    cluster, rule = FakeCluster(), body("alertrule-wealth-jump.yaml")
    run("AlertRule", rule, cluster)
    assert any("/alertmanagerconfigs/" in p for p in cluster.objects)
    rule["spec"]["mode"], rule["metadata"]["generation"] = "DryRun", 2
    outcome = run("AlertRule", rule, cluster)
    assert outcome.applied.pruned == ["AlertmanagerConfig/whale-wealth-jump"]
    assert ready(rule)["status"] == "True" and rule["status"]["mode"] == "DryRun"
    prom = next(o for p, o in cluster.objects.items() if "/prometheusrules/" in p)
    assert "alert" not in prom["spec"]["groups"][0]["rules"][0]
    rule["spec"]["mode"], rule["metadata"]["generation"] = "Live", 3
    run("AlertRule", rule, cluster)
    assert any("/alertmanagerconfigs/" in p for p in cluster.objects) and rule["status"]["mode"] == "Live"


def test_dry_run_still_checks_the_annotations_it_would_page_with() -> None:
    cluster, rule = FakeCluster(), dry()
    rule["spec"]["annotations"] = {"summary": "{{ $value"}
    run("AlertRule", rule, cluster)
    cond = ready(rule)
    assert (cond["status"], cond["reason"]) == ("False", "InvalidSpec")
    assert cond["message"].startswith("spec.annotations.summary")


def test_a_dry_run_rule_records_no_detection(db_dsn: str) -> None:
    from sqlalchemy import text

    from game_analytics.storage.engine import make_engine

    at = datetime(2026, 11, 30, 10, tzinfo=UTC)
    events = [{"event_id": f"dr-{i}", "event_type": "trade", "occurred_at": at + timedelta(minutes=i),
               "player_id": "p1", "game": "cdnow", "region": "US",
               "payload": {"counterparty_id": "m", "item_id": "x", "quantity": 1, "value": 1.0}} for i in range(4)]
    copy_events(events, db_dsn)
    doc = {"rule": "games/dry", "category": "player", "detector": "rapidAssetTransfer",
           "params": {"count": 3, "window": "1h"}, "mode": "DryRun"}
    engine = make_engine(db_dsn)
    try:
        worker = DetectionWorker(engine, lambda: ([parse_rule(doc)], []), as_of=at + timedelta(minutes=10))
        result = worker.run_once()
        assert result.flagged == {"games/dry": 1} and result.inserted == {"games/dry": 0}
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM detections")).scalar() == 0
            assert conn.execute(text("SELECT count(*) FROM interventions")).scalar() == 0
    finally:
        engine.dispose()


# -- status.backtest -----------------------------------------------------------------------------------------------


def test_backtest_summary_is_written_and_cached_per_generation_and_hour(install) -> None:
    clock = [NOW]
    recorder = Recorder()
    install(recorder, clock=lambda: clock[0])
    cluster, rule = FakeCluster(), dry()
    run("AlertRule", rule, cluster, IMAGES)
    end = datetime(2026, 11, 30, 12, tzinfo=UTC)
    assert recorder.calls == [("games/whale-wealth-jump", end - timedelta(days=7), end)]
    assert rule["status"]["backtest"] == {"pages": 3, "pagesPerWeek": 3.0, "incidents": 2,
                                          "lastFired": "2026-11-28T12:00:00Z", "window": "7d", "step": "5m",
                                          "computedAt": "2026-11-30T12:00:00Z"}
    cond = backtested(rule)
    assert (cond["status"], cond["reason"]) == ("True", "Computed") and cond["message"].startswith("3 pages")
    again = run("AlertRule", rule, cluster, IMAGES)
    assert len(recorder.calls) == 1 and again.status_patch(rule["status"]) == {}, "cached: no rerun, no write"
    rule["spec"]["for"], rule["metadata"]["generation"] = "10m", 2
    run("AlertRule", rule, cluster, IMAGES)
    assert len(recorder.calls) == 2, "a spec change backtests again"
    clock[0] = NOW + timedelta(minutes=20)
    run("AlertRule", rule, cluster, IMAGES)
    assert len(recorder.calls) == 2, "the same hour: cached"
    clock[0] = NOW + timedelta(hours=1)
    run("AlertRule", rule, cluster, IMAGES)
    assert len(recorder.calls) == 3 and rule["status"]["backtest"]["computedAt"] == "2026-11-30T13:00:00Z"


def test_a_slow_backtest_never_blocks_the_reconcile(install) -> None:
    gate = threading.Event()
    install(Recorder(gate=gate), wait=0.2)
    cluster, rule = FakeCluster(), dry()
    started = time.monotonic()
    run("AlertRule", rule, cluster, IMAGES)
    assert time.monotonic() - started < 2.0
    cond = backtested(rule)
    assert (cond["status"], cond["reason"]) == ("Unknown", "Running") and "backtest" not in rule["status"]
    assert ready(rule)["status"] == "True", "the rule itself is reconciled meanwhile"
    gate.set()
    time.sleep(0.3)
    run("AlertRule", rule, cluster, IMAGES)
    assert backtested(rule)["reason"] == "Computed" and rule["status"]["backtest"]["pages"] == 3


def test_a_rule_queued_behind_another_backtest_does_not_wait_for_it(install) -> None:
    """1,000 rules created at once: each reconcile waited its 2 s while the one backtest thread worked through
    the queue (1,000 x 2 s over 8 reconcile threads); now only a backtest that runs at once is waited for."""
    gate = threading.Event()
    install(Recorder(gate=gate), wait=5.0)
    cluster = FakeCluster()
    first, second = dry(), body("alertrule-wealth-jump.yaml", name="whale-wealth-jump-2")
    second["spec"]["mode"] = "DryRun"
    second["metadata"]["uid"] = "uid-whale-wealth-jump-2"
    waiting = threading.Thread(target=run, args=("AlertRule", first, cluster, IMAGES))
    waiting.start()  # its backtest runs (blocked on the gate); this reconcile waits up to 5 s for it
    time.sleep(0.2)
    started = time.monotonic()
    run("AlertRule", second, cluster, IMAGES)
    assert time.monotonic() - started < 2.0, "queued behind the first: no wait"
    assert backtested(second)["reason"] == "Running" and ready(second)["status"] == "True"
    gate.set()
    waiting.join(10)
    assert backtested(first)["reason"] == "Computed", "alone in the queue: waited for and written at once"


@pytest.mark.parametrize(("error", "reason"), [
    (backtests.BudgetExceeded("stopped after 60 s"), "BudgetExceeded"),
    (OSError("connection refused"), "BacktestFailed"),
    (backtests.NotBacktestable("detector ingestLag is evaluated by Prometheus"), "BacktestUnavailable"),
])
def test_a_failed_backtest_is_a_condition_not_a_crash_loop(install, error, reason) -> None:
    recorder = Recorder(error=error)
    install(recorder)
    cluster, rule = FakeCluster(), dry()
    outcome = run("AlertRule", rule, cluster, IMAGES)
    cond = backtested(rule)
    assert (cond["status"], cond["reason"]) == ("False", reason) and str(error) in cond["message"]
    assert ready(rule)["status"] == "True" and "backtest" not in rule["status"]
    again = run("AlertRule", rule, cluster, IMAGES)
    assert len(recorder.calls) == 1, "not retried at every resync"
    assert again.status_patch(rule["status"]) == {} and outcome.events == [("Normal", "Applied", outcome.events[0][2])]


def test_an_idle_rule_keeps_its_status_while_the_next_backtest_runs(install, monkeypatch) -> None:
    """Seen on the real apiserver: a retried failure, and each new hour's window, showed Running for one resync
    and the result at the next, so an idle rule's status was written twice per retry (test_idle_resync)."""
    clock, gate = [NOW], threading.Event()
    recorder = Recorder(error=OSError("connection refused"))
    install(recorder, clock=lambda: clock[0], wait=0.1)
    cluster, rule = FakeCluster(), dry()
    run("AlertRule", rule, cluster, IMAGES)
    assert backtested(rule)["reason"] == "BacktestFailed"
    monkeypatch.setattr(backtests, "RETRY_SECONDS", 0.0)
    recorder.gate = gate  # the retry is slow: still running at the next reconcile
    before = copy.deepcopy(rule["status"])
    run("AlertRule", rule, cluster, IMAGES)
    assert len(recorder.calls) == 2 and rule["status"] == before, "the failure stays shown"
    gate.set()
    recorder.gate, recorder.error = None, OSError("connection timed out")  # the same failure, other words
    time.sleep(0.3)
    before = copy.deepcopy(rule["status"])
    run("AlertRule", rule, cluster, IMAGES)  # the gated retry's result (refused), seen now
    run("AlertRule", rule, cluster, IMAGES)  # another retry: timed out
    assert len(recorder.calls) == 3 and rule["status"] == before, "the same kind of failure: no rewrite"
    recorder.error = KeyError("bad column")
    run("AlertRule", rule, cluster, IMAGES)
    assert "KeyError" in backtested(rule)["message"], "another kind of failure is shown"
    recorder.error = None
    run("AlertRule", rule, cluster, IMAGES)  # retried at once (RETRY_SECONDS 0), and it succeeds within the wait
    monkeypatch.setattr(backtests, "RETRY_SECONDS", 300.0)
    assert backtested(rule)["reason"] == "Computed", "the retry's result replaces the failure"
    gate.clear()
    recorder.gate = gate  # the next hour's backtest is slow
    clock[0] = NOW + timedelta(hours=1)
    before, calls = copy.deepcopy(rule["status"]), len(recorder.calls)
    run("AlertRule", rule, cluster, IMAGES)
    assert len(recorder.calls) == calls + 1 and rule["status"] == before, "last hour's result stays"
    rule["spec"]["for"], rule["metadata"]["generation"] = "10m", 2
    run("AlertRule", rule, cluster, IMAGES)
    assert backtested(rule)["reason"] == "Running", "a new spec is not shown with the old spec's result"
    gate.set()


def test_a_restarted_operator_rewrites_no_backtest_status(install) -> None:
    """Seen in CI (test_idle_resync, after the operator-restart tests): a new operator process has an empty cache,
    so every rule showed Running and then its result again, two writes per rule, and each Computed one was
    recomputed. The live status now seeds the cache."""
    clock, gate = [NOW], threading.Event()
    install(Recorder(), clock=lambda: clock[0])
    cluster, rule = FakeCluster(), dry()
    failing = body("alertrule-wealth-jump.yaml", name="failing")
    failing["spec"]["mode"], failing["metadata"]["uid"] = "DryRun", "uid-failing"
    run("AlertRule", rule, cluster, IMAGES)
    assert backtested(rule)["reason"] == "Computed"
    install(Recorder(error=OSError("connection refused")), clock=lambda: clock[0])
    run("AlertRule", failing, cluster, IMAGES)
    assert backtested(failing)["reason"] == "BacktestFailed"

    restarted = Recorder(error=OSError("connection timed out"), gate=gate)  # a slow retry, the same failure
    install(restarted, clock=lambda: clock[0], wait=0.1)
    computed, failed = copy.deepcopy(rule["status"]), copy.deepcopy(failing["status"])
    assert run("AlertRule", rule, cluster, IMAGES).status_patch(computed) == {}
    assert restarted.calls == [], "this window's result is in the status: not recomputed"
    assert run("AlertRule", failing, cluster, IMAGES).status_patch(failed) == {}, "the failure stays while retried"
    assert [c[0] for c in restarted.calls] == ["games/failing"], "a failure is retried at once"
    gate.set()
    time.sleep(0.3)
    assert run("AlertRule", failing, cluster, IMAGES).status_patch(failed) == {}, "failed the same way: no write"
    rule["spec"]["for"], rule["metadata"]["generation"] = "10m", 2
    restarted.error = None
    run("AlertRule", rule, cluster, IMAGES)
    assert restarted.calls[-1][0] == "games/whale-wealth-jump", "another generation is backtested anew"
    clock[0] = NOW + timedelta(hours=1)
    install(Recorder(), clock=lambda: clock[0])
    run("AlertRule", rule, cluster, IMAGES)
    assert rule["status"]["backtest"]["computedAt"] == "2026-11-30T13:00:00Z", "the next window is computed"


def test_suspended_rules_are_not_backtested(install) -> None:
    recorder = Recorder()
    install(recorder)
    cluster, rule = FakeCluster(), dry()
    rule["spec"]["suspend"] = True
    run("AlertRule", rule, cluster, IMAGES)
    assert recorder.calls == [] and backtested(rule)["reason"] == "Suspended"


def test_without_backtest_settings_nothing_is_backtested(install) -> None:
    recorder = Recorder()
    install(recorder)
    cluster, rule = FakeCluster(), dry()
    run("AlertRule", rule, cluster)
    assert recorder.calls == [] and backtested(rule) is None and "backtest" not in rule["status"]


def test_settings_from_the_chart_environment() -> None:
    assert BacktestSettings.from_env({}) == BacktestSettings()
    assert BacktestSettings.from_env({"GAME_ANALYTICS_BACKTEST": "false"}) is None
    assert BacktestSettings.from_env({"GAME_ANALYTICS_BACKTEST_STEP": "10m",
                                      "GAME_ANALYTICS_BACKTEST_BUDGET_SECONDS": "5"}) == BacktestSettings(
        step="10m", budget_seconds=5.0)
    with pytest.raises(ValueError):
        BacktestSettings.from_env({"GAME_ANALYTICS_BACKTEST_STEP": "often"})


def run_transfer_burst(db_dsn: str) -> dict:
    """Store a 4-trade burst of player p1 at 2026-11-29 10:01-10:04 UTC and reconcile a DryRun rapidAssetTransfer
    rule (3 in 1h) whose GameDataSource Secret points at ``db_dsn``; the rule, with its status, is returned."""
    at = datetime(2026, 11, 29, 10, tzinfo=UTC)
    events = [{"event_id": f"bt-{i}", "event_type": "trade", "occurred_at": at + timedelta(minutes=1 + i),
               "player_id": "p1", "game": "cdnow", "region": "US",
               "payload": {"counterparty_id": "m", "item_id": "x", "quantity": 1, "value": 1.0}} for i in range(4)]
    copy_events(events, db_dsn)
    cluster = FakeCluster()
    cluster.add(secret("analytics-postgres", {"dsn": db_dsn}))
    rule = dry()
    rule["spec"]["category"] = "player"
    rule["spec"]["detector"] = {"rapidAssetTransfer": {"count": 3, "window": "1h"}}
    run("AlertRule", rule, cluster, IMAGES)
    return rule


def test_the_operator_backtests_the_real_store(db_dsn: str, install) -> None:
    """The real run (backtests.run_backtest) over PostgreSQL, the DSN read from the GameDataSource's Secret: a
    4-trade burst at 10:01-10:04 is flagged by rapidAssetTransfer (3 in 1h) from the 10:05 step to 11:00."""
    install(backtests.run_backtest)
    rule = run_transfer_burst(db_dsn)
    assert backtested(rule)["reason"] == "Computed", backtested(rule)
    assert rule["status"]["backtest"] == {"pages": 1, "pagesPerWeek": 1.0, "incidents": 1,
                                          "lastFired": "2026-11-29T10:05:00Z", "window": "7d", "step": "5m",
                                          "computedAt": "2026-11-30T12:00:00Z"}


def test_the_time_budget_stops_a_long_replay(db_dsn: str, install) -> None:
    copy_events([{"event_id": f"tb-{i}", "event_type": "trade", "occurred_at": NOW - timedelta(minutes=5 * i),
                  "player_id": "p1", "game": "cdnow", "region": "US",
                  "payload": {"counterparty_id": "m", "item_id": "x", "quantity": 1, "value": 1.0}}
                 for i in range(2000)], db_dsn)
    spec = AlertRuleSpec.model_validate({"category": "player", "runbookURL": "https://x.example/r",
                                         "detector": {"rapidAssetTransfer": {"count": 3, "window": "1h"}}})
    tight = BacktestSettings(budget_seconds=0.01)
    start, end = backtests.window(NOW, tight)
    with pytest.raises(backtests.BudgetExceeded, match="stopped after 0.01 s"):
        backtests.run_backtest("games/x", spec, backtests.Source(db_dsn, (), ""), start, end, tight)


# -- status.quality ------------------------------------------------------------------------------------------------


def test_status_shows_the_measured_quality_of_the_detector_type(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "quality.yaml"
    row = Quality("suddenWealthChange", {}, plants=5, detected=5, runs=6, true_runs=5,
                  delays=[timedelta(minutes=3)], untouched_pages=1, weeks=1.0)
    measured.write([row], "bench_detector_quality (test)", path, now=datetime(2026, 12, 1, tzinfo=UTC))
    monkeypatch.setattr(measured, "QUALITY_FILE", path)
    cluster, rule = FakeCluster(), body("alertrule-wealth-jump.yaml")
    run("AlertRule", rule, cluster)
    assert rule["status"]["quality"] == {"precision": 0.8333, "recall": 1.0, "falsePagesPerWeek": 1.0,
                                         "plants": 5, "measuredAt": "2026-12-01T00:00:00Z",
                                         "source": "bench_detector_quality (test)"}
    other = body("alertrule-ingest-lag.yaml")
    run("AlertRule", other, cluster)
    assert "quality" not in other["status"], "a type the file does not hold gets no figures"


def _depth(tb) -> int:
    n = 0
    while tb is not None:
        n, tb = n + 1, tb.tb_next
    return n


def test_a_failed_backtest_does_not_keep_each_reconciles_stack(install) -> None:
    """Seen in the scale bench (tracemalloc, docs/scaling.md): ``future.result()`` re-raised the cached failure's
    one exception object at every resync, each raise prepended that reconcile's frames to its traceback, and the
    frames kept every reconcile's body, spec and children alive (RSS grew after all Ready)."""
    error = OSError("connection refused")
    install(Recorder(error=error))
    cluster, rule = FakeCluster(), dry()
    run("AlertRule", rule, cluster, IMAGES)
    depth = _depth(error.__traceback__)
    for _ in range(5):
        run("AlertRule", rule, cluster, IMAGES)
    assert backtested(rule)["reason"] == "BacktestFailed"
    assert _depth(error.__traceback__) == depth, "each reconcile's frames were added to the failure's traceback"
