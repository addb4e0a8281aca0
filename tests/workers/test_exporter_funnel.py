"""Funnels on the exporter: a funnel ScheduledReport run by the report worker on the real PostgreSQL, then the
exporter's ``funnel_step_*`` gauges against a plain-Python walk of the same events (docs/reports.md "Funnels")."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from game_analytics.api.scheduledreport import FunnelReport, ReportFilters, ReportFormat, ReportType
from game_analytics.monitoring import names
from game_analytics.reports import ReportPeriod
from game_analytics.storage.engine import make_engine
from game_analytics.workers.exporter import AnalyticsCollector
from game_analytics.workers.report import RunConfig, run_reports

_names = itertools.count()
START = datetime(2024, 3, 1, tzinfo=UTC)
STEPS = [("login", {}), ("error", {"code": "tutorial_done"}), ("purchase", {})]
WINDOW = timedelta(days=2)


def _events() -> list[tuple[str, str, datetime, str, dict[str, str]]]:
    """60 players over 10 days: a login, maybe errors (some with another code), maybe purchases; fixed seed."""
    rng = random.Random(17)
    out = []
    for p in range(60):
        player = f"f{p:02d}"
        t = START + timedelta(hours=rng.uniform(0, 240))
        out.append((f"{player}-l", "login", t, player, {}))
        for k in range(rng.randint(0, 3)):
            t += timedelta(hours=rng.uniform(0, 30))
            out.append((f"{player}-t{k}", "error", t, player, {"code": rng.choice(["tutorial_done", "timeout"])}))
        for k in range(rng.randint(0, 2)):
            t += timedelta(hours=rng.uniform(0, 40))
            out.append((f"{player}-p{k}", "purchase", t, player, {"amount": "1.99", "currency": "USD"}))
    return out


def _walk(events, start: datetime, end: datetime) -> list[int]:  # type: ignore[no-untyped-def]
    """Players reaching each step: first login in the period, then each step's first match after the previous
    step's event, no later than the entry time plus the window, inside the period (plain loops)."""
    by_player: dict[str, list] = {}
    for event in sorted(events, key=lambda e: e[2]):
        if start <= event[2] < end:
            by_player.setdefault(event[3], []).append(event)
    reached = [0] * len(STEPS)
    for rows in by_player.values():
        def match(row, step) -> bool:  # type: ignore[no-untyped-def]
            return row[1] == step[0] and all(row[4].get(k) == v for k, v in step[1].items())
        at = next((i for i, r in enumerate(rows) if match(r, STEPS[0])), None)
        if at is None:
            continue
        reached[0] += 1
        t0 = rows[at][2]
        for k in range(1, len(STEPS)):
            at = next((i for i in range(at + 1, len(rows))
                       if match(rows[i], STEPS[k]) and rows[i][2] <= t0 + WINDOW), None)  # fmt: skip
            if at is None:
                break
            reached[k] += 1
    return reached


@pytest.fixture(scope="module")
def funnel_store(postgres_server, _migrated_template) -> Iterator[tuple[Engine, list]]:  # type: ignore[no-untyped-def]
    """A database holding :func:`_events` (game ``fun``)."""
    name = f"ga_exporter_funnel_{next(_names)}"
    engine = make_engine(postgres_server.create_database(name, template=_migrated_template))
    events = _events()
    with engine.begin() as conn:
        conn.execute(text("""
            INSERT INTO events (event_id, event_type, occurred_at, player_id, game, region, payload)
            VALUES (:id, :type, :at, :player, 'fun', 'EU', CAST(:payload AS jsonb))"""),
            [{"id": i, "type": kind, "at": at, "player": player, "payload": json.dumps(payload)}
             for i, kind, at, player, payload in events])  # fmt: skip
    yield engine, events
    engine.dispose()
    postgres_server.drop_database(name)


def _run(engine: Engine, tmp_path: Path, name: str, period: ReportPeriod) -> None:
    spec = FunnelReport.model_validate({"steps": [{"eventType": "login"},
                                                  {"eventType": "error", "payload": {"code": "tutorial_done"}},
                                                  {"eventType": "purchase"}], "conversionWindow": "2d"})
    config = RunConfig(name=name, namespace="ns", reports=[ReportType.FUNNEL], period=period,
                       filters=ReportFilters(), formats=[ReportFormat.JSON], output_dir=tmp_path, funnel=spec)
    assert run_reports(engine, config).ok


def _funnel_samples(engine: Engine) -> dict[tuple[str, str, str, str], float]:
    registry = CollectorRegistry()
    registry.register(AnalyticsCollector(engine, as_of="latest", ttl=0, background=False))
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            if s.name in (names.FUNNEL_STEP_PLAYERS, names.FUNNEL_STEP_CONVERSION):
                assert set(s.labels) == {"report", "step", "event_type"}  # bounded labels, never a player
                out[(s.name, s.labels["report"], s.labels["step"], s.labels["event_type"])] = s.value
    return out


def test_exporter_publishes_the_latest_funnel_run_against_python(funnel_store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    engine, events = funnel_store
    assert _funnel_samples(engine) == {}  # no funnel report has run: declared, no samples
    first_days, all_days = (ReportPeriod(START, START + timedelta(days=4)),
                            ReportPeriod(START, START + timedelta(days=14)))
    _run(engine, tmp_path, "onboarding", first_days)
    _run(engine, tmp_path, "onboarding", all_days)  # the newer run replaces the first one's figures
    _run(engine, tmp_path, "early", first_days)
    with engine.begin() as conn:  # a newer failed run (no steps recorded) must not hide the last success
        conn.execute(text("INSERT INTO report_runs (report_name, namespace, report_type, outcome, started_at) "
                          "VALUES ('onboarding', 'ns', 'funnel', 'failed', now() + interval '1 hour')"))
    found = _funnel_samples(engine)
    for report, period in (("ns/onboarding", all_days), ("ns/early", first_days)):
        reached = _walk(events, period.start, period.end)
        assert reached[0] > reached[1] > reached[2] > 0, reached  # the data exercise every step
        for i, (kind, _) in enumerate(STEPS):
            step = str(i + 1)
            assert found[(names.FUNNEL_STEP_PLAYERS, report, step, kind)] == reached[i]
            assert found[(names.FUNNEL_STEP_CONVERSION, report, step, kind)] == pytest.approx(reached[i] / reached[0])
    assert len(found) == 2 * 2 * len(STEPS)  # two reports x two families x three steps: nothing per player
    assert _walk(events, first_days.start, first_days.end) != _walk(events, all_days.start, all_days.end)
