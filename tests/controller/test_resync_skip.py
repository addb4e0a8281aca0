"""A resync whose inputs are unchanged is skipped (controller/inputs.py), and drift is still repaired.

The unit tests drive :class:`~game_analytics.controller.inputs.Recorder` over a cached Cluster whose stores are
scripted; the kmock test runs the real Kopf operator and counts full reconciles across resyncs, then deletes a
child behind the operator's back.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kopf.testing import KopfRunner

from devtools.waiting import wait_for
from game_analytics.controller import inputs
from game_analytics.controller.cache import Store
from game_analytics.controller.common.render import LABEL_OWNER_KIND
from game_analytics.controller.k8s import Cluster

from .kmock_support import EmulatorThread
from .test_handlers_kmock import (  # noqa: F401 - pytest fixtures
    ALERTRULES,
    CONFIGMAPS,
    NAMESPACE,
    WAIT_SECONDS,
    api,
    create_data_source,
    example,
    operator,
    ready_condition,
)

pytestmark = pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning")  # kmock 0.8 itself
OWN = "gameanalytics.io/v1alpha1"


def obj(kind: str, name: str, rv: int, labelled: bool = True) -> dict:
    api_version = OWN if kind == "AlertRule" else "v1"
    return {"apiVersion": api_version, "kind": kind, "metadata": {
        "name": name, "namespace": NAMESPACE, "resourceVersion": str(rv),
        "labels": {LABEL_OWNER_KIND: "AlertRule", "gameanalytics.io/owner-name": "r"} if labelled else {}}}


class Scripted(Cluster):
    """A cached Cluster whose stores list ``objects`` and watch nothing (no API server)."""

    def __init__(self, objects: list[dict]):
        super().__init__(cache=True)
        self.objects, self._quiet = objects, queue.Queue()

    def _new_store(self, api_version: str, kind: str, namespace: str) -> Store:
        listed = [o for o in self.objects if (o["apiVersion"], o["kind"]) == (api_version, kind)]

        def watcher(version: str | None) -> Iterator[tuple[str, dict]]:
            yield from iter(self._quiet.get, None)

        label = None if api_version == OWN else LABEL_OWNER_KIND
        return Store(kind, lambda: (listed, "1"), watcher, label)

    def close(self) -> None:
        for _ in range(8):
            self._quiet.put(None)
        super().close()


@pytest.fixture
def cluster() -> Iterator[Scripted]:
    made = Scripted([obj("ConfigMap", "r-detector", 5), obj("AlertRule", "r", 7), obj("AlertRule", "s", 8)])
    yield made
    made.close()


def recorded(cluster: Cluster) -> inputs.Recorder:
    recorder = inputs.Recorder(cluster)
    recorder.get("v1", "ConfigMap", NAMESPACE, "r-detector")
    recorder.names(OWN, "AlertRule", NAMESPACE)
    recorder.list("v1", "ConfigMap", NAMESPACE, f"{LABEL_OWNER_KIND}=AlertRule,gameanalytics.io/owner-name=r")
    return recorder


def test_unchanged_reads_skip_and_any_change_runs_the_resync(cluster: Scripted) -> None:
    body = obj("AlertRule", "r", 7)
    held = inputs.held(body, recorded(cluster), extra_now=None)
    assert held is not None and held.unchanged(cluster, body, None)
    assert not held.unchanged(cluster, obj("AlertRule", "r", 9), None), "the object itself changed"
    assert not held.unchanged(cluster, body, "next window"), "the backtest window moved on"
    store = cluster.store(OWN, "AlertRule", NAMESPACE)
    store.put(obj("AlertRule", "r-2", 10))
    assert not held.unchanged(cluster, body, None), "a rule appeared (the alert-name check reads every name)"
    store.remove("r-2")
    assert held.unchanged(cluster, body, None)
    cluster.store("v1", "ConfigMap", NAMESPACE).put(obj("ConfigMap", "r-detector", 11))
    assert not held.unchanged(cluster, body, None), "a child changed behind the operator's back"


def test_a_deleted_child_or_an_old_reconcile_runs_the_resync(cluster: Scripted, monkeypatch) -> None:
    body = obj("AlertRule", "r", 7)
    held = inputs.held(body, recorded(cluster), extra_now=None)
    cluster.store("v1", "ConfigMap", NAMESPACE).remove("r-detector")
    assert not held.unchanged(cluster, body, None), "a deleted child must be re-created"
    fresh = Scripted([obj("ConfigMap", "r-detector", 5), obj("AlertRule", "r", 7), obj("AlertRule", "s", 8)])
    try:
        held = inputs.held(body, recorded(fresh), extra_now=None)
        monkeypatch.setattr(inputs, "MAX_SKIP_SECONDS", 0.0)
        assert not held.unchanged(fresh, body, None), "a full reconcile at least every MAX_SKIP_SECONDS"
    finally:
        fresh.close()


def test_reads_the_cache_cannot_vouch_for_never_skip(cluster: Scripted, monkeypatch) -> None:
    recorder = inputs.Recorder(cluster)
    monkeypatch.setattr(Cluster, "get", lambda self, *a: None)  # the GET fallback: nothing there
    recorder.get("v1", "ConfigMap", NAMESPACE, "not-labelled")  # may exist without the owner label
    assert inputs.held(obj("AlertRule", "r", 7), recorder, None) is None


def test_only_a_reconcile_that_changed_nothing_is_held() -> None:
    class Outcome:
        events: list = []
        applied = None
        status = {"conditions": [{"type": "Backtested", "reason": "Running"}]}

    assert not inputs.changed_nothing(Outcome(), [], {}), "a running backtest's result is still to be written"
    Outcome.status = {"conditions": [{"type": "Ready", "reason": "Reconciled"}]}
    assert inputs.changed_nothing(Outcome(), [], {})
    assert not inputs.changed_nothing(Outcome(), [], {"observedGeneration": 2})
    assert not inputs.changed_nothing(Outcome(), ["audit record"], {})


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The kinds of every full reconcile (set up before ``operator``, whose handlers copy binds ``reconcile``)."""
    from game_analytics.controller import reconcile as module

    calls: list[str] = []
    real = module.reconcile

    def counting(info, body, *args):
        calls.append(info.kind)
        return real(info, body, *args)

    monkeypatch.setattr(module, "reconcile", counting)
    return calls


def test_idle_resyncs_are_skipped_and_a_deleted_child_is_still_repaired(
        counted: list[str], api: EmulatorThread, operator: KopfRunner, tmp_path: Path) -> None:  # noqa: F811
    create_data_source(api)
    name = api.create(example("alertrule-anomaly.yaml"))["metadata"]["name"]
    wait_for("the AlertRule Ready", lambda: ready_condition(api, ALERTRULES, name), WAIT_SECONDS, interval=0.1)
    time.sleep(3.0)  # its status patch seen, a resync that changed nothing held
    before = counted.count("AlertRule")
    time.sleep(6.0)  # six resyncs of 1 s
    assert counted.count("AlertRule") - before <= 1, "idle resyncs ran the whole reconcile"
    Cluster.from_kubeconfig(tmp_path / "kubeconfig.yaml").delete("v1", "ConfigMap", NAMESPACE, f"{name}-detector")
    wait_for("the deleted ConfigMap re-created by a resync",
             lambda: api.get(CONFIGMAPS, NAMESPACE, f"{name}-detector") is not None, WAIT_SECONDS, interval=0.2)


def test_a_reconcile_reads_the_cached_object_when_kopfs_body_is_older(monkeypatch: pytest.MonkeyPatch) -> None:
    """At 1,500 objects Kopf's body lagged the operator's own status writes, and the status patch computed against
    it wrote older conditions back (lastTransitionTime going backwards, 1,037 writes per idle resync)."""
    from game_analytics.api import KINDS_BY_NAME
    from game_analytics.controller import handlers

    def rule(rv: int, uid: str, written: str) -> dict:
        made = obj("AlertRule", "r", rv)
        made["metadata"]["uid"] = uid
        made["status"] = {"conditions": [{"type": "Ready", "lastTransitionTime": written}]}
        return made

    info = KINDS_BY_NAME["AlertRule"]
    cached = Scripted([rule(9, "u1", "new")])
    monkeypatch.setitem(handlers._state, "cluster", cached)
    try:
        assert handlers.freshest(info, rule(7, "u1", "old"))["status"] == rule(9, "u1", "new")["status"]
        assert handlers.freshest(info, rule(11, "u1", "newest"))["metadata"]["resourceVersion"] == "11"
        assert handlers.freshest(info, rule(7, "u2", "old"))["metadata"]["uid"] == "u2", "another object of the name"
        unversioned = rule(7, "u1", "old")
        del unversioned["metadata"]["resourceVersion"]
        assert handlers.freshest(info, unversioned) is unversioned
    finally:
        cached.close()
