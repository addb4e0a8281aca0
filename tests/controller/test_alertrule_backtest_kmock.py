"""The real Kopf operator (kmock API over HTTP) backtests a DryRun AlertRule over the real PostgreSQL into
``status.backtest`` through the status subresource, and renders it without an AlertmanagerConfig."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from devtools.waiting import wait_for
from game_analytics.controller.common import conditions
from game_analytics.workers.load import copy_events

from .test_handlers_kmock import (  # noqa: F401 - pytest fixtures
    ALERTMANAGERCONFIGS,
    ALERTRULES,
    NAMESPACE,
    PROMETHEUSRULES,
    WAIT_SECONDS,
    api,
    create_data_source,
    example,
    operator,
)

pytestmark = pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning")


@pytest.fixture
def backtest_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The chart's backtest settings, read by the operator at startup (before the ``operator`` fixture)."""
    monkeypatch.setenv("GAME_ANALYTICS_BACKTEST", "true")
    monkeypatch.setenv("GAME_ANALYTICS_BACKTEST_STEP", "5m")


def test_dry_run_rule_is_backtested_into_its_status(backtest_env, db_dsn: str, api, operator) -> None:  # noqa: F811
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    burst = hour - timedelta(days=1)
    copy_events([{"event_id": f"km-{i}", "event_type": "trade", "occurred_at": burst + timedelta(minutes=1 + i),
                  "player_id": "p1", "game": "cdnow", "region": "US",
                  "payload": {"counterparty_id": "m", "item_id": "x", "quantity": 1, "value": 1.0}} for i in range(4)],
                db_dsn)
    api.patch("v1/secrets", NAMESPACE, "analytics-postgres",
              {"data": {"dsn": base64.b64encode(db_dsn.encode()).decode()}})
    create_data_source(api)
    rule = example("alertrule-wealth-jump.yaml", name="trial-transfers")
    rule["spec"].update(mode="DryRun", category="player", detector={"rapidAssetTransfer": {"count": 3, "window": "1h"}})
    api.create(rule)

    def backtested() -> dict | None:
        status = (api.get(ALERTRULES, NAMESPACE, "trial-transfers") or {}).get("status") or {}
        cond = conditions.get(status.get("conditions"), "Backtested")
        return status if cond and cond["reason"] == "Computed" and "backtest" in status else None

    status = wait_for("status.backtest", backtested, WAIT_SECONDS, interval=0.2)
    summary = status["backtest"]
    assert (summary["pages"], summary["incidents"]) == (1, 1)
    assert summary["lastFired"] == (burst + timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    assert summary["window"] == "7d" and summary["step"] == "5m" and status["mode"] == "DryRun"
    assert api.get(ALERTMANAGERCONFIGS, NAMESPACE, "trial-transfers") is None
    (entry,) = api.get(PROMETHEUSRULES, NAMESPACE, "trial-transfers")["spec"]["groups"][0]["rules"]
    assert "record" in entry and "alert" not in entry
