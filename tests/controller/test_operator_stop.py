"""A clean stop of the operator: Kopf runs the cleanup handler while resync timers may still be executing in its
thread pool. Seen in every e2e run: the client was closed under a running reconcile, which failed with "Cannot
send a request, as the client has been closed" and was logged as a traceback."""

from __future__ import annotations

import logging
import threading

import pytest

from game_analytics.api import KINDS_BY_NAME
from game_analytics.config import Images
from game_analytics.controller import handlers
from game_analytics.controller.reconcile import Outcome

from .fake_cluster import FakeCluster
from .test_reconcile import body

LOG = logging.getLogger("test")


class ClosableCluster(FakeCluster):
    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def operator_state(monkeypatch: pytest.MonkeyPatch) -> ClosableCluster:
    cluster = ClosableCluster()
    monkeypatch.setitem(handlers._state, "cluster", cluster)
    monkeypatch.setitem(handlers._state, "images", Images())
    monkeypatch.setattr(handlers, "_stopping", threading.Event())
    return cluster


def test_stop_waits_for_running_reconciles_and_starts_no_new_one(operator_state, monkeypatch) -> None:
    entered, gate, seen = threading.Event(), threading.Event(), []

    def slow_reconcile(info, obj, cluster, images):
        entered.set()
        assert gate.wait(10)
        seen.append(cluster.closed)  # what the reconcile found: the client still open
        return Outcome(status={})

    monkeypatch.setattr(handlers, "reconcile", slow_reconcile)
    handle = handlers._handler(KINDS_BY_NAME["AlertRule"])
    running = threading.Thread(target=handle, kwargs={"body": body("alertrule-inflation.yaml"), "patch": {},
                                                      "logger": LOG})
    running.start()
    assert entered.wait(10)
    stopper = threading.Thread(target=handlers.close_cluster, kwargs={"logger": LOG})
    stopper.start()
    stopper.join(0.3)
    assert stopper.is_alive() and not operator_state.closed, "the client stays open while a reconcile runs"
    gate.set()
    running.join(10)
    stopper.join(10)
    assert seen == [False] and operator_state.closed
    handle(body=body("alertrule-inflation.yaml"), patch={}, logger=LOG)
    assert seen == [False], "no reconcile starts once the operator is stopping"


def test_stop_gives_up_waiting_after_its_bound(operator_state, monkeypatch, caplog) -> None:
    monkeypatch.setattr(handlers, "STOP_WAIT_SECONDS", 0.2)
    monkeypatch.setattr(handlers, "_in_flight", [1])  # a reconcile stuck on the network
    handlers.close_cluster(logger=LOG)
    assert operator_state.closed and "1 reconciles still running" in caplog.text
