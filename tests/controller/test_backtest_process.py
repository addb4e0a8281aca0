"""The operator's backtests in a child process (controller/alertrule/backtest_process.py): another process, reused,
stopped when idle, a killed child reported and replaced; the operator's default backtester on the real store."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

import pytest

from game_analytics.controller.alertrule import backtests
from game_analytics.controller.alertrule.backtest_process import BacktestProcess, BacktestProcessDied

from .test_alertrule_backtest import backtested, install, run_transfer_burst  # noqa: F401 - install is a fixture


@pytest.fixture
def process():
    made: list[BacktestProcess] = []

    def _make(target, idle: float = 60.0) -> BacktestProcess:
        made.append(BacktestProcess(target, idle_seconds=idle))
        return made[-1]

    yield _make
    for p in made:
        p.shutdown()


def test_the_target_runs_in_one_reused_child_that_stops_when_idle(process) -> None:
    child = process(os.getpid, idle=1.0)
    first = child()
    assert first != os.getpid() and child() == first, "one child, reused"
    deadline = time.monotonic() + 30
    while child.running and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not child.running, "the idle child stopped"
    assert child() not in (first, os.getpid()), "a new child after the idle stop"


def test_errors_of_the_target_are_raised_in_the_caller(process) -> None:
    child = process(int)
    with pytest.raises(ValueError, match="invalid literal"):
        child("not a number")
    assert child("7") == 7, "the child survives an error of its target"


def _exit_or_pid(code: int) -> int:
    """The child's pid, or the child ends at once with ``code`` (as a kill by the OOM killer would)."""
    if code:
        os._exit(code)
    return os.getpid()


def test_a_killed_child_fails_that_call_only(process) -> None:
    child = process(_exit_or_pid)
    first = child(0)
    with pytest.raises(BacktestProcessDied, match="out of memory"):
        child(9)
    assert not child.running
    assert child(0) not in (first, os.getpid()), "the next call has a new child"


def test_store_errors_come_back_as_their_kind() -> None:
    """Exceptions of the store need not pickle: the child sends their class name and message."""
    spec = backtests.AlertRuleSpec.model_validate({"category": "player", "runbookURL": "https://x.example/r",
                                                   "detector": {"rapidAssetTransfer": {"count": 3, "window": "1h"}}})
    start, end = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)
    source = backtests.Source("postgresql+psycopg://nobody@127.0.0.1:1/none", (), "")
    with pytest.raises(backtests.BacktestError) as raised:
        backtests.backtest_status("games/x", spec, source, start, end, backtests.BacktestSettings(budget_seconds=5))
    assert raised.value.kind == "OperationalError" and "127.0.0.1" in str(raised.value)


def test_the_default_backtester_runs_the_real_store_in_a_child(db_dsn: str, install) -> None:  # noqa: F811
    """As test_the_operator_backtests_the_real_store, with the operator's default run (the child process)."""
    instance = install(None, wait=120.0)
    assert instance._process is not None and not instance._process.running
    rule = run_transfer_burst(db_dsn)
    assert backtested(rule)["reason"] == "Computed", backtested(rule)
    assert rule["status"]["backtest"]["pages"] == 1 and rule["status"]["backtest"]["lastFired"] == (
        "2026-11-29T10:05:00Z")
    assert instance._process.running, "the backtest ran in the child process"
