"""The detection worker on real PostgreSQL with the CDNOW log: injected wealth jumps, transfer bursts and absurd
purchase patterns are flagged, recorded with evidence and queued once; metrics stay bounded."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from game_analytics.api.alertrule import (
    DETECTOR_CATEGORIES,
    DETECTOR_TYPES,
    WORKER_EVALUATED,
    Detector,
    Evaluator,
)
from game_analytics.api.common import parse_duration
from game_analytics.audit import AuditLog
from game_analytics.data.datasets import load_cdnow_master
from game_analytics.data.events import purchase_events
from game_analytics.monitoring import names, promql
from game_analytics.monitoring.promql import render
from game_analytics.storage.engine import make_engine
from game_analytics.workers import detection
from game_analytics.workers.detection import DetectionWorker, load_rules_dir
from game_analytics.workers.load import copy_events

_names = itertools.count()
END = datetime(1998, 6, 30, tzinfo=UTC)  # the last day of the CDNOW log




@pytest.fixture(scope="module")
def cdnow_template(postgres_server, _migrated_template) -> Iterator[str]:
    """Name of a database holding the CDNOW log, copied for every test."""
    name = f"ga_cdnow_tpl_{next(_names)}"
    dsn = postgres_server.create_database(name, template=_migrated_template)
    assert copy_events(purchase_events(load_cdnow_master()), dsn).dead_lettered == 0
    engine = make_engine(dsn)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()
    yield name
    postgres_server.drop_database(name)


@pytest.fixture
def store(postgres_server, cdnow_template: str) -> Iterator[Engine]:
    name = f"ga_detect_{next(_names)}"
    engine = make_engine(postgres_server.create_database(name, template=cdnow_template))
    yield engine
    engine.dispose()
    postgres_server.drop_database(name)


def write_rule(root: Path, name: str, detector: str, params: dict[str, Any], *, category: str = "player",
               severity: str = "critical", suspended: bool = False) -> str:  # fmt: skip
    """A rule.json as the operator renders it (controller/alertrule/render.py detector_config)."""
    rule = f"games/{name}"
    (root / name).mkdir(parents=True, exist_ok=True)
    (root / name / "rule.json").write_text(json.dumps({
        "rule": rule, "category": category, "severity": severity, "detector": detector, "params": params,
        "suspended": suspended,
    }))  # fmt: skip
    return rule


def insert(engine: Engine, events: list[dict[str, Any]]) -> None:
    assert copy_events(events, engine.url.render_as_string(hide_password=False)).inserted == len(events)


def purchase(i: str, player: str, when: datetime, amount: float, quantity: int = 1) -> dict[str, Any]:
    return {"event_id": f"inj-{i}", "event_type": "purchase", "occurred_at": when, "player_id": player,
            "game": "cdnow", "region": "US", "payload": {"quantity": quantity, "amount": amount, "currency": "USD"}}


def open_cases(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text("""
            SELECT d.rule, d.player_id, d.severity, d.score, d.evidence, i.priority, i.status::text AS status
            FROM detections d JOIN interventions i ON i.detection_id = d.id ORDER BY d.id""")).mappings()]


def scrape(worker: DetectionWorker) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body = generate_latest(worker.registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}  # fmt: skip


def test_injected_wealth_jump_flags_exactly_that_player(store: Engine, tmp_path: Path) -> None:
    cdnow = load_cdnow_master()
    victim = 4242
    before = cdnow.loc[cdnow["customer_id"] == victim, "dollar_value"].sum()
    assert 0 < before < 500
    insert(store, [purchase("jump", f"cdnow-{victim:05d}", END - timedelta(days=1), 50_000.0, 3)])
    rule = write_rule(tmp_path, "wealth-jump", "suddenWealthChange",
                      {"thresholdRatio": 20, "window": "30d", "minWealth": 500})  # fmt: skip
    worker = DetectionWorker(store, lambda: load_rules_dir(tmp_path), as_of="latest", model_dir=tmp_path / "m")

    result = worker.run_once()
    assert result.as_of == END and result.errors == []
    cases = open_cases(store)
    assert [c["player_id"] for c in cases] == [f"cdnow-{victim:05d}"]
    case = cases[0]
    assert case["status"] == "open" and case["priority"] == 1 and case["rule"] == rule
    evidence = case["evidence"]
    assert evidence["wealth_before"] == pytest.approx(before)
    assert evidence["wealth_after"] == pytest.approx(before + 50_000)
    assert evidence["ratio"] == pytest.approx((before + 50_000) / 500) == case["score"]
    assert evidence["direction"] == "gain" and evidence["as_of"].startswith("1998-06-30")

    found = scrape(worker)
    labels = (("category", "player"), ("detector", "suddenWealthChange"), ("rule", rule), ("severity", "critical"))
    assert found[(names.DETECTION_FLAGGED, labels)] == 1
    assert found[(names.DETECTIONS, (("category", "player"), ("rule", rule), ("severity", "critical")))] == 1

    # the same player flagged again in the same window: no second detection or intervention
    again = worker.run_once()
    assert again.flagged[rule] == 1 and again.inserted[rule] == 0
    assert len(open_cases(store)) == 1
    assert scrape(worker)[(names.DETECTIONS, (("category", "player"), ("rule", rule), ("severity", "critical")))] == 1

    # once the case is resolved, a new flag opens a new case
    with store.begin() as conn:
        conn.execute(text("UPDATE interventions SET status = 'resolved'"))
    assert worker.run_once().inserted[rule] == 1
    assert [c["status"] for c in open_cases(store)] == ["resolved", "open"]

    # the PromQL alert of such an AlertRule watches exactly this series
    expr = render(Detector.model_validate({"suddenWealthChange": {"thresholdRatio": 20}}), rule)
    assert f'rule="{rule}"' in expr and 'detector="suddenWealthChange"' in expr and names.DETECTION_FLAGGED in expr


def force_parallel_plans(engine: Engine) -> None:
    """Make every new connection to the store's database plan in parallel wherever it can: the planner picks such
    plans by itself once the table is big enough, and then float sums of the same rows may differ in their last
    bits from one pass to the next (the partial sums arrive in any order)."""
    with engine.begin() as conn:
        database = conn.execute(text("SELECT current_database()")).scalar_one()
        for name in ("parallel_setup_cost", "parallel_tuple_cost", "min_parallel_table_scan_size",
                     "min_parallel_index_scan_size"):  # fmt: skip
            conn.execute(text(f'ALTER DATABASE "{database}" SET {name} = 0'))
    engine.dispose()


def test_repeat_offence_is_linked_to_the_open_case_and_audited(store: Engine, tmp_path: Path) -> None:
    """Deterministic under parallel plans: the same offence seen again is recognised despite float noise in its
    evidence (interventions/detections.py same_evidence)."""
    force_parallel_plans(store)
    player = "cdnow-04242"
    insert(store, [purchase("jump", player, END - timedelta(days=2), 50_000.0, 3)])
    rule = write_rule(tmp_path, "wealth-jump", "suddenWealthChange",
                      {"thresholdRatio": 20, "window": "30d", "minWealth": 500})  # fmt: skip
    worker = DetectionWorker(store, lambda: load_rules_dir(tmp_path), as_of="latest", model_dir=tmp_path / "m")
    assert worker.run_once().inserted[rule] == 1
    insert(store, [purchase("jump-again", player, END - timedelta(days=1), 80_000.0, 2)])  # a second offence
    assert worker.run_once().inserted[rule] == 1
    assert worker.run_once().inserted[rule] == 0  # nothing new since
    with store.connect() as conn:
        case = conn.execute(text("SELECT id, occurrences, first_seen_at < last_seen_at AS spans, status::text "
                                 "FROM interventions")).one()  # fmt: skip
        linked = conn.execute(text("SELECT evidence->>'wealth_after' FROM detections WHERE intervention_id = :i "
                                   "ORDER BY id"), {"i": case.id}).scalars().all()  # fmt: skip
        audit = conn.execute(text("SELECT actor, action, source, object_ref FROM audit_log ORDER BY seq")).all()
    assert (case.occurrences, case.spans, case.status) == (2, True, "open") and len(linked) == 2
    assert float(linked[1]) > float(linked[0])
    assert [tuple(a) for a in audit] == [
        ("detection-worker", "intervention.open", "worker", f"intervention/{case.id}"),
        ("detection-worker", "intervention.occurrence", "worker", f"intervention/{case.id}"),
    ]


def test_same_evidence_tolerates_float_noise_only() -> None:
    from game_analytics.interventions.detections import same_evidence

    seen = {"wealth_before": 21.99000000000524, "wealth_after": 130021.99, "ratio": 260.04398000000003, "n": 3,
            "direction": "gain", "flag": True, "items": [1.0, "a"]}
    assert same_evidence(seen, {**seen, "wealth_before": 21.989999999990687, "ratio": 260.04398})
    assert not same_evidence(seen, {**seen, "wealth_after": 130022.0})  # a cent more is a new offence
    assert not same_evidence(seen, {**seen, "n": 4})
    assert not same_evidence(seen, {**seen, "direction": "loss"})
    assert not same_evidence(seen, {**seen, "flag": 1})  # a boolean is not a number
    assert not same_evidence(seen, {k: v for k, v in seen.items() if k != "n"})
    assert not same_evidence(seen, {**seen, "items": [1.0]})


def test_no_natural_cdnow_customer_is_flagged(store: Engine, tmp_path: Path) -> None:
    write_rule(tmp_path, "wealth-jump", "suddenWealthChange", {"thresholdRatio": 20, "window": "30d", "minWealth": 500})
    result = DetectionWorker(store, lambda: load_rules_dir(tmp_path), as_of="latest").run_once()
    assert result.flagged == {"games/wealth-jump": 0}
    assert open_cases(store) == []


def test_rapid_transfer_burst(store: Engine, tmp_path: Path) -> None:
    t = END - timedelta(minutes=30)

    def trade(i: int, player: str, minutes: float) -> dict[str, Any]:
        return {"event_id": f"tr-{player}-{i}", "event_type": "trade", "occurred_at": t + timedelta(minutes=minutes),
                "player_id": player, "game": "cdnow", "region": "US",
                "payload": {"counterparty_id": f"mule-{i % 7}", "item_id": "cd", "quantity": 1, "value": 12.0}}

    burst = [trade(i, "cdnow-00007", i * 0.5) for i in range(30)]
    normal = [trade(i, "cdnow-00008", i * 9) for i in range(3)]
    old = [trade(i, "cdnow-00009", -600 - i) for i in range(40)]  # a burst, but 10 hours earlier
    insert(store, burst + normal + old)
    rule = write_rule(tmp_path, "transfers", "rapidAssetTransfer", {"count": 20, "window": "1h"}, severity="warning")
    result = DetectionWorker(store, lambda: load_rules_dir(tmp_path), as_of="latest").run_once()
    assert result.flagged == {rule: 1}
    case = open_cases(store)[0]
    assert case["player_id"] == "cdnow-00007" and case["priority"] == 2
    assert case["evidence"]["transfers"] == 30 and case["evidence"]["counterparties"] == 7
    assert case["evidence"]["value"] == pytest.approx(360.0)


def test_absurd_purchase_pattern_gets_the_top_anomaly_score(store: Engine, tmp_path: Path) -> None:
    whale = "cdnow-99999"
    insert(store, [purchase(f"a{i}", whale, datetime(1997, 3, 1, tzinfo=UTC) + timedelta(days=i), 9_000.0, 900)
                   for i in range(60)])  # fmt: skip
    rule = write_rule(tmp_path, "odd-buyers", "anomalyScore", {"activityType": "purchase", "threshold": 0.75},
                      category="anomaly", severity="info")  # fmt: skip
    models = tmp_path / "models"
    worker = DetectionWorker(store, lambda: load_rules_dir(tmp_path), as_of="latest", model_dir=models)
    result = worker.run_once()

    scores = pd.read_csv(models / "games_odd-buyers.purchase.scores.csv", index_col=0)
    assert scores.index[0] == whale
    assert scores["score"].iloc[0] > 0.75 and scores["score"].iloc[0] > scores["score"].iloc[1]
    assert len(scores) == load_cdnow_master()["customer_id"].nunique() + 1
    assert (models / "games_odd-buyers.purchase.joblib").is_file()
    cases = open_cases(store)
    assert whale in [c["player_id"] for c in cases] and len(cases) == result.flagged[rule] < 20
    top = max(cases, key=lambda c: c["score"])
    assert top["player_id"] == whale and top["priority"] == 3
    assert top["evidence"]["features"]["events"] == 60


def test_contamination_reaches_the_forest_and_a_change_refits(store: Engine, tmp_path: Path) -> None:
    from game_analytics.analytics.anomaly import ActivityAnomalyDetector

    models = tmp_path / "models"
    for share in (0.05, 0.2):
        write_rule(tmp_path, "odd", "anomalyScore", {"activityType": "purchase", "threshold": 0.75,
                                                     "contamination": share}, category="anomaly", severity="info")
        DetectionWorker(store, lambda: load_rules_dir(tmp_path), as_of="latest", model_dir=models).run_once()
        detector = ActivityAnomalyDetector.from_bytes((models / "games_odd.purchase.joblib").read_bytes())
        assert detector.contamination == share and detector.models["purchase"].contamination == share
        # independent check: the share of scored players above the forest's cutoff is the contamination
        scores = pd.read_csv(models / "games_odd.purchase.scores.csv", index_col=0)["score"]
        cutoff = detector.cutoffs()["purchase"]
        assert (scores > cutoff).mean() == pytest.approx(share, abs=0.01)


def test_metrics_are_bounded_and_suspended_rules_do_nothing(store: Engine, tmp_path: Path) -> None:
    insert(store, [purchase("jump", "cdnow-04242", END - timedelta(days=1), 50_000.0)])
    params = {"thresholdRatio": 20, "window": "30d", "minWealth": 500}
    write_rule(tmp_path, "paused", "suddenWealthChange", params, suspended=True)
    worker = DetectionWorker(store, lambda: load_rules_dir(tmp_path), as_of="latest")
    result = worker.run_once()
    assert result.flagged == {} and open_cases(store) == []
    found = scrape(worker)
    assert not any(key[0] == names.DETECTION_FLAGGED for key in found)
    assert found[(names.DETECTION_RULES, (("state", "suspended"),))] == 1

    active = write_rule(tmp_path, "active", "suddenWealthChange", params)
    worker.run_once()
    body = generate_latest(worker.registry).decode()
    # never a player id in a label: the page's description reads the rule's top cases by rank (value = the
    # intervention id), at most names.TOP_CASES series per rule
    assert [line for line in body.splitlines() if "cdnow-" in line] == []
    assert [line for line in body.splitlines() if line.startswith(names.DETECTION_TOP_CASE)] == [
        f'{names.DETECTION_TOP_CASE}{{rank="1",rule="{active}"}} 1.0']
    flagged = [key for key in scrape(worker) if key[0] == names.DETECTION_FLAGGED]
    assert [dict(labels)["rule"] for _, labels in flagged] == [active]
    assert {name for name, _ in flagged[0][1]} == {"rule", "detector", "category", "severity"}

    # suspending the active rule removes its series and it writes nothing more
    write_rule(tmp_path, "active", "suddenWealthChange", params, suspended=True)
    with store.begin() as conn:
        conn.execute(text("UPDATE interventions SET status = 'dismissed'"))
    assert worker.run_once().flagged == {}
    assert not any(key[0] in (names.DETECTION_FLAGGED, names.DETECTION_TOP_CASE) for key in scrape(worker))
    assert [c["status"] for c in open_cases(store)] == ["dismissed"]


def test_login_market_and_monopoly_detectors(db_dsn: str, tmp_path: Path) -> None:
    now = datetime(2024, 3, 1, 12, tzinfo=UTC)
    events: list[dict[str, Any]] = []

    def add(kind: str, player: str, minutes_ago: float, payload: dict[str, Any], region: str = "EU") -> None:
        events.append({"event_id": f"e{len(events)}", "event_type": kind, "player_id": player, "game": "mmo",
                       "region": region, "occurred_at": now - timedelta(minutes=minutes_ago), "payload": payload})

    for i, region in enumerate(["EU", "US", "BR", "JP"]):  # traveller: 4 regions within the hour
        add("login", "traveller", 10 + i, {}, region)
    for i in range(3):
        add("login", "homebody", 10 + i, {})
    for i in range(10):  # sword price: 10 per unit last hour, 30 per unit now
        add("trade", f"t{i}", 90 + i, {"counterparty_id": "x", "item_id": "sword", "quantity": 1, "value": 10.0})
        add("trade", f"t{i}", 5 + i, {"counterparty_id": "x", "item_id": "sword", "quantity": 1, "value": 30.0})
        add("trade", f"t{i}", 95 + i, {"counterparty_id": "x", "item_id": "shield", "quantity": 2, "value": 20.0})
        add("trade", f"t{i}", 6 + i, {"counterparty_id": "x", "item_id": "shield", "quantity": 2, "value": 21.0})
    add("trade", "baron", 1, {"counterparty_id": "x", "item_id": "castle", "quantity": 1, "value": 5000.0})
    engine = make_engine(db_dsn)
    try:
        insert(engine, events)
        write_rule(tmp_path, "logins", "unusualLoginPattern", {"maxDistinctRegions": 2, "window": "1h"})
        write_rule(tmp_path, "prices", "marketManipulation", {"priceChange": 0.5, "window": "1h"}, category="economic")
        write_rule(tmp_path, "monopoly", "monopolyFormation", {"marketShare": 0.5, "window": "1d"},
                   category="economic")  # fmt: skip
        result = DetectionWorker(engine, lambda: load_rules_dir(tmp_path), as_of=now).run_once()
        assert result.flagged == {"games/logins": 1, "games/prices": 1, "games/monopoly": 1}
        by_rule = {c["rule"]: c for c in open_cases(engine)}
        assert by_rule["games/logins"]["player_id"] == "traveller"
        assert by_rule["games/logins"]["evidence"]["distinct_regions"] == 4
        prices = by_rule["games/prices"]
        assert prices["player_id"] is None and prices["evidence"]["subject"] == "item:mmo/sword"
        assert prices["evidence"]["relative_change"] == pytest.approx(2.0)
        monopoly = by_rule["games/monopoly"]
        assert monopoly["player_id"] == "baron"
        assert monopoly["evidence"]["share"] == pytest.approx(5000 / (5000 + 400 + 410))
    finally:
        engine.dispose()


def test_invalid_rules_are_reported_with_their_file(store: Engine, tmp_path: Path, capsys) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "rule.json").write_text(json.dumps(
        {"rule": "games/bad", "category": "player", "detector": "suddenWealthChange", "params": {"thresholdRatio": 0.5}}))
    (tmp_path / "broken.json").write_text("{not json")
    rules, errors = load_rules_dir(tmp_path)
    assert rules == [] and len(errors) == 2
    assert any("bad/rule.json: params.thresholdRatio" in e for e in errors)
    dsn = store.url.render_as_string(hide_password=False)
    assert detection.main(["--dsn", dsn, "--rules-dir", str(tmp_path), "--once", "--as-of", "latest"]) == 1
    assert "params.thresholdRatio" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        detection.main(["--dsn", dsn, "--rules-dir", str(tmp_path / "missing"), "--once"])
    assert "--rules-dir" in capsys.readouterr().err
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("0s", allow_zero=True) == timedelta(0)  # a detector window may be zero
    with pytest.raises(ValueError, match="duration"):
        parse_duration("1 hour")


def test_the_detector_lists_derive_from_one_table() -> None:
    """api.alertrule.DETECTOR_TYPES is the one table: the CRD's union members, the categories, the PromQL
    renderer's worker-evaluated set and the worker's detectors cannot disagree with it."""
    from game_analytics.workers.detectors import DETECTORS

    assert list(DETECTOR_TYPES) == list(Detector().model_json_schema(by_alias=True)["properties"])
    assert DETECTOR_CATEGORIES == {name: t.category for name, t in DETECTOR_TYPES.items()}
    assert promql.WORKER_EVALUATED is WORKER_EVALUATED
    assert set(DETECTORS) == {n for n, t in DETECTOR_TYPES.items() if t.evaluator is Evaluator.WORKER}
    for name, kind in DETECTOR_TYPES.items():  # what each evaluator renders: a worker gauge, or a template
        flagged = names.DETECTION_FLAGGED in render(Detector.model_validate({name: DETECTOR_PARAMS[name]}), "ns/r")
        assert flagged is (kind.evaluator is Evaluator.WORKER), name


DETECTOR_PARAMS: dict[str, dict[str, Any]] = {
    "suddenWealthChange": {"thresholdRatio": 3.0}, "rapidAssetTransfer": {"count": 20}, "unusualLoginPattern": {},
    "currencyInflation": {"rate": 0.05}, "marketManipulation": {"priceChange": 0.5},
    "monopolyFormation": {"marketShare": 0.4}, "highErrorRate": {"ratio": 0.05},
    "lowEngagement": {"minActivePlayers": 100}, "ingestLag": {"maxLagSeconds": 120}, "anomalyScore": {},
    "churnRisk": {}, "forecastDeviation": {}, "promql": {"expr": "up == 0"},
}  # fmt: skip


def test_auto_resolve_after_the_condition_stays_clear(store: Engine, tmp_path: Path) -> None:
    player = "cdnow-04242"
    insert(store, [purchase("jump", player, END - timedelta(days=1), 50_000.0, 3)])
    rule = write_rule(tmp_path, "wealth-jump", "suddenWealthChange",
                      {"thresholdRatio": 20, "window": "30d", "minWealth": 500})  # fmt: skip
    document = json.loads((tmp_path / "wealth-jump" / "rule.json").read_text())
    (tmp_path / "wealth-jump" / "rule.json").write_text(json.dumps({**document, "autoResolveAfter": "1d"}))
    worker = DetectionWorker(store, lambda: load_rules_dir(tmp_path), as_of=END, model_dir=tmp_path / "m")
    assert worker.run_once().inserted[rule] == 1

    def case() -> Any:
        with store.connect() as conn:
            return conn.execute(text("SELECT id, status::text, resolution, resolved_by, clear_since, version "
                                     "FROM interventions")).one()  # fmt: skip

    worker.as_of = END + timedelta(days=12)  # still inside the 30 d window: flagged, nothing tracked
    assert worker.run_once().flagged[rule] == 1 and case().clear_since is None
    worker.as_of = clear = END + timedelta(days=40)  # the jump left the window: clear since now
    assert worker.run_once().flagged[rule] == 0
    assert (case().status, case().clear_since) == ("open", clear)
    worker.as_of = END + timedelta(days=40, hours=23)  # clear for 23 h < 1 d: still open, clear_since kept
    worker.run_once()
    assert (case().status, case().clear_since) == ("open", clear)
    worker.as_of = END + timedelta(days=41, minutes=1)
    worker.run_once()
    resolved = case()
    assert (resolved.status, resolved.resolution, resolved.resolved_by) == ("resolved", "auto-cleared",
                                                                            "detection-worker")  # fmt: skip
    with store.connect() as conn:
        entry = conn.execute(text("SELECT actor, action, source, object_ref, before->>'status', after->>'status', "
                                  "after->>'resolution', justification, context FROM audit_log ORDER BY seq DESC "
                                  "LIMIT 1")).one()  # fmt: skip
    assert tuple(entry[:7]) == ("detection-worker", "intervention.resolve", "worker", f"intervention/{resolved.id}",
                                "open", "resolved", "auto-cleared")  # fmt: skip
    assert "autoResolveAfter 86400s" in entry.justification
    assert entry.context["auto_resolve"]["clear_since"] == clear.isoformat()
    assert AuditLog(store).verify().ok


def test_parse_rule_reads_auto_resolve_after() -> None:
    doc = {"rule": "games/x", "category": "player", "detector": "rapidAssetTransfer", "params": {"count": 3}}
    assert detection.parse_rule(doc).auto_resolve_after is None
    assert detection.parse_rule({**doc, "autoResolveAfter": "90m"}).auto_resolve_after == timedelta(minutes=90)
    with pytest.raises(detection.RuleError, match="autoResolveAfter"):
        detection.parse_rule({**doc, "autoResolveAfter": "soon"})


def test_top_cases_are_ranked_bounded_and_their_ranks_removed() -> None:
    """The top-case gauge holds at most names.TOP_CASES ranks per rule, highest score first, subjects without an
    intervention left out; ranks past a shorter list are removed, a forgotten rule leaves none."""
    worker = DetectionWorker(None, lambda: ([], []))  # type: ignore[arg-type] - no database needed here
    rule = detection.RuleConfig("ga/r", "player", "critical", "suddenWealthChange", None)
    current = {f"p{i}": (float(i), 100 + i) for i in range(8)} | {"no-case": (99.0, None)}
    top = worker.top_cases(current)
    assert top == [("p7", 107), ("p6", 106), ("p5", 105), ("p4", 104), ("p3", 103)]

    def ranks() -> dict[str, float]:
        return {dict(labels)["rank"]: v for (name, labels), v in scrape(worker).items()
                if name == names.DETECTION_TOP_CASE}

    worker._export(rule, len(current), top)
    assert ranks() == {"1": 107, "2": 106, "3": 105, "4": 104, "5": 103}
    worker._export(rule, 2, worker.top_cases({"a": (1.0, 7), "b": (2.0, 9)}))
    assert ranks() == {"1": 9, "2": 7}
    worker.forget(rule.rule)
    assert ranks() == {}


def test_scoped_wealth_query_equals_the_whole_population_query(store: Engine) -> None:
    """The streaming path's one-scan suddenWealthChange (``Context.players``) flags exactly what the whole-population
    query flags among those players, with the same evidence: gains, losses, several currencies, players below
    ``minWealth`` and players without a change in the window, on the CDNOW log."""
    from game_analytics.api.alertrule import SuddenWealthChange
    from game_analytics.workers import detectors

    def gems(i: str, player: str, when: datetime, delta: int) -> dict[str, Any]:
        return {"event_id": f"inj-{i}", "event_type": "currency_change", "occurred_at": when, "player_id": player,
                "game": "cdnow", "region": "US", "payload": {"delta": delta, "currency": "GEMS", "reason": "quest"}}

    insert(store, [purchase("up", "cdnow-04242", END - timedelta(days=2), 50_000.0),
                   gems("g0", "cdnow-00007", END - timedelta(days=40), 5_000),
                   gems("g1", "cdnow-00007", END - timedelta(days=1), -4_500),  # a loss, in gems
                   purchase("small", "cdnow-00011", END - timedelta(days=1), 3.0)])  # fmt: skip
    params = SuddenWealthChange(threshold_ratio=3, window="30d", min_wealth=100)
    with store.connect() as conn:
        players = ["cdnow-04242", "cdnow-00007", "cdnow-00011", "cdnow-00001", "nobody"] + [
            r[0] for r in conn.execute(text("SELECT DISTINCT player_id FROM events WHERE occurred_at > :t "
                                            "ORDER BY 1 LIMIT 300"), {"t": END - timedelta(days=30)})]  # fmt: skip

        def run(scope: list[str] | None) -> list[tuple]:
            ctx = detectors.Context(conn, END, [], "games/x", Path("/tmp"), 3600.0, scope)
            return sorted((f.subject, f.evidence["currency"], round(f.score, 9), f.evidence["wealth_before"],
                           f.evidence["wealth_after"]) for f in detectors.sudden_wealth_change(ctx, params))

        scoped, whole = run(players), [f for f in run(None) if f[0] in set(players)]
    assert scoped == whole
    assert {("cdnow-04242", "USD"), ("cdnow-00007", "GEMS")} <= {(s, c) for s, c, *_ in scoped}


def test_scoped_evaluations_plan_with_the_actual_player_list(store: Engine, tmp_path: Path) -> None:
    """The custom-plan guard (``DetectionWorker.evaluate``): every query of a player-scoped evaluation runs with
    ``plan_cache_mode = force_custom_plan`` (a generic plan searched ``player_id = ANY($1)`` linearly per row: the
    8-52 s stalls of docs/alerting.md), only inside its own transaction, and a whole pass keeps the server's
    default. Read from the server in the transaction of each statement, after it ran."""
    from sqlalchemy import event

    write_rule(tmp_path, "wealth-jump", "suddenWealthChange",
               {"thresholdRatio": 20, "window": "30d", "minWealth": 500})  # fmt: skip
    worker = DetectionWorker(store, lambda: load_rules_dir(tmp_path), as_of="latest", model_dir=tmp_path / "m")
    (rule,), errors = load_rules_dir(tmp_path)
    assert errors == []
    seen: list[tuple[str, str]] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        if "FROM" in statement.upper() and "plan_cache_mode" not in statement:
            (mode,) = cursor.connection.execute("SHOW plan_cache_mode").fetchone()
            seen.append((statement.split()[0], mode))

    event.listen(store, "after_cursor_execute", record)
    try:
        worker.evaluate(rule, END, players=["cdnow-04242", "cdnow-00007"])
        scoped, seen[:] = list(seen), []
        worker.evaluate(rule, END)
        whole = list(seen)
    finally:
        event.remove(store, "after_cursor_execute", record)
    assert scoped and {mode for _, mode in scoped} == {"force_custom_plan"}, scoped
    assert whole and {mode for _, mode in whole} == {"auto"}, "SET LOCAL must not outlive the scoped transaction"
    with store.connect() as conn:
        assert conn.execute(text("SHOW plan_cache_mode")).scalar() == "auto"
