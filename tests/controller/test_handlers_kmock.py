"""The real Kopf operator (our handlers module) against kmock emulating the Kubernetes API over HTTP.

This tier checks what the fake-REST reconcile tests cannot: the Kopf registrations (resume/create/update and the
resync timer), status patching through the ``status`` subresource, Events, and our ``k8s.Cluster`` speaking HTTP
to an API server. Both Kopf (aiohttp) and ``Cluster`` (httpx2, via lightkube) reach the same
emulator through a temporary kubeconfig. The emulator replays objects on watch and the handlers are idempotent,
so the tests wait for and assert on final states, never on how many times a handler ran.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import kopf
import pytest
import yaml
from kopf.testing import KopfRunner

import game_analytics.controller.handlers as handlers_module
from devtools.waiting import wait_for
from game_analytics.controller.common import conditions
from game_analytics.controller.k8s import Cluster

from .fake_cluster import example_dependencies
from .kmock_support import EmulatorThread, kubeconfig, selector_matches

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAMESPACE = "games"
pytestmark = pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning")  # kmock 0.8 itself

RESYNC_SECONDS = 1.0
WAIT_SECONDS = 30.0  # an upper bound: a loaded 2-core machine is slow to schedule the handlers

ALERTRULES = "gameanalytics.io/v1alpha1/alertrules"
SCHEDULEDREPORTS = "gameanalytics.io/v1alpha1/scheduledreports"
PROMETHEUSRULES = "monitoring.coreos.com/v1/prometheusrules"
ALERTMANAGERCONFIGS = "monitoring.coreos.com/v1alpha1/alertmanagerconfigs"
CONFIGMAPS = "v1/configmaps"
CRONJOBS = "batch/v1/cronjobs"
OWNER_NAME_LABEL = "gameanalytics.io/owner-name"


def example(filename: str, name: str | None = None) -> dict:
    doc = yaml.safe_load((EXAMPLES / filename).read_text())
    doc["metadata"]["namespace"] = NAMESPACE
    if name:
        doc["metadata"]["name"] = name
    return doc


def load_handlers(monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, kopf.OperatorRegistry]:
    """A private copy of handlers.py registered into a fresh Kopf registry, with a short resync interval.

    handlers.py reads its environment at import time and registers into Kopf's default registry, so it is
    executed anew (as ``game_analytics.controller._handlers_under_test``) with the test's environment while a
    fresh registry is the default. The imported ``handlers`` module itself is left untouched.
    """
    monkeypatch.setenv("GAME_ANALYTICS_RESYNC_SECONDS", str(RESYNC_SECONDS))
    monkeypatch.setenv("GAME_ANALYTICS_METRICS_PORT", "0")
    registry = kopf.OperatorRegistry()
    previous = kopf.get_default_registry()
    kopf.set_default_registry(registry)
    try:
        spec = importlib.util.spec_from_file_location("game_analytics.controller._handlers_under_test",
                                                      handlers_module.__file__)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        kopf.set_default_registry(previous)
    assert module.RESYNC_SECONDS == RESYNC_SECONDS and module.METRICS_PORT == 0
    # Kopf's own kubeconfig reader: unlike the kubernetes-client login, it leaves no process-wide defaults behind.
    kopf.on.login(registry=registry)(kopf.login_with_kubeconfig)
    return module, registry


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorThread]:
    """kmock serving our CRDs, built-in kinds and the prometheus-operator kinds; KUBECONFIG points at it."""
    with EmulatorThread() as emulator:
        path = tmp_path / "kubeconfig.yaml"
        path.write_text(yaml.safe_dump(kubeconfig(emulator.url, NAMESPACE)))
        monkeypatch.setenv("KUBECONFIG", str(path))
        for secret in example_dependencies(NAMESPACE, data_source=False):  # the Secrets the examples name
            emulator.create(secret)
        yield emulator


def create_data_source(api: EmulatorThread) -> None:
    """The GameDataSource ``default`` the AlertRule examples run on."""
    (source,) = [d for d in example_dependencies(NAMESPACE) if d["kind"] == "GameDataSource"]
    api.create(source)


@pytest.fixture
def operator(api: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             caplog: pytest.LogCaptureFixture) -> Iterator[KopfRunner]:
    """The operator running in a thread (kopf.testing.KopfRunner).

    On exit, asserts that it stopped by itself within the timeout, with exit code 0, and that Kopf logged no
    errors meanwhile (failed handlers, failed API requests, unrecoverable watch errors).
    """
    module, registry = load_handlers(monkeypatch)
    # the watch-fed cache, as the operator runs; a closed client does not wake a thread blocked reading a watch,
    # so the watches time out within 1 s and the emulator can stop
    monkeypatch.setattr("game_analytics.controller.cache.WATCH_READ_SECONDS", 1.0)
    module._state["cluster"] = Cluster.from_kubeconfig(tmp_path / "kubeconfig.yaml", cache=True)
    settings = kopf.OperatorSettings()
    settings.queueing.idle_timeout = 0.5  # per-object workers exit soon after the events stop
    settings.queueing.exit_timeout = 0.5
    settings.watching.server_timeout = 60
    with KopfRunner(["run", "--standalone", "--all-namespaces", "--verbose"], registry=registry,
                    settings=settings, timeout=20) as runner:
        yield runner
    assert runner.exception is None
    assert runner.exit_code == 0
    records = caplog.get_records("setup") + caplog.get_records("call") + caplog.records  # records: this phase's
    errors = [f"{r.name}: {r.getMessage()}" for r in records if r.levelno >= logging.ERROR and r.name.startswith("kopf")]
    assert errors == []


def ready_condition(api: EmulatorThread, resource: str, name: str, reason: str | None = None) -> dict | None:
    """The object's Ready condition once it is set (and has ``reason``, when given), else None."""
    obj = api.get(resource, NAMESPACE, name)
    ready = conditions.get(((obj or {}).get("status") or {}).get("conditions"), "Ready")
    if ready and (reason is None or ready["reason"] == reason):
        return ready
    return None


def children_of(api: EmulatorThread, owner: str, *resources: str) -> list[dict]:
    return [o for r in resources for o in api.list(r, NAMESPACE)
            if (o["metadata"].get("labels") or {}).get(OWNER_NAME_LABEL) == owner]


def test_alert_rule_gets_children_with_owner_references_and_ready_status(api: EmulatorThread, operator: KopfRunner):
    create_data_source(api)
    rule = api.create(example("alertrule-anomaly.yaml"))
    name, uid = rule["metadata"]["name"], rule["metadata"]["uid"]

    ready = wait_for("the AlertRule's Ready condition", lambda: ready_condition(api, ALERTRULES, name),
                     WAIT_SECONDS, interval=0.1)
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == ("True", "Reconciled", 1)
    status = api.get(ALERTRULES, NAMESPACE, name)["status"]
    assert status["observedGeneration"] == 1
    assert status["detector"] == "anomalyScore"

    children = {
        "PrometheusRule": api.get(PROMETHEUSRULES, NAMESPACE, name),
        "ConfigMap": api.get(CONFIGMAPS, NAMESPACE, f"{name}-detector"),
        "AlertmanagerConfig": api.get(ALERTMANAGERCONFIGS, NAMESPACE, name),
    }
    for kind, child in children.items():
        assert child is not None, f"{kind} was not created"
        assert child["kind"] == kind
        refs = child["metadata"]["ownerReferences"]
        assert refs == [{"apiVersion": "gameanalytics.io/v1alpha1", "kind": "AlertRule", "name": name,
                         "uid": uid, "controller": True, "blockOwnerDeletion": True}], kind
    expr = children["PrometheusRule"]["spec"]["groups"][0]["rules"][0]["expr"]
    assert expr == status["expression"]

    # A spec change is reconciled (update handler or resync timer): observedGeneration follows the generation.
    patched = api.patch(ALERTRULES, NAMESPACE, name, {"spec": {"severity": "critical"}})
    assert patched["metadata"]["generation"] == 2
    wait_for("observedGeneration 2 after the spec change",
             lambda: (ready_condition(api, ALERTRULES, name) or {}).get("observedGeneration") == 2,
             WAIT_SECONDS, interval=0.1)
    prom = api.get(PROMETHEUSRULES, NAMESPACE, name)
    assert prom["spec"]["groups"][0]["rules"][0]["labels"]["severity"] == "critical"


def test_invalid_promql_is_reported_creates_nothing_and_the_operator_keeps_working(
        api: EmulatorThread, operator: KopfRunner):
    create_data_source(api)
    broken = example("alertrule-ingest-lag.yaml", name="broken-promql")
    broken["spec"]["detector"] = {"promql": {"expr": "sum(rate(x[5m])"}}
    api.create(broken)

    ready = wait_for("the broken rule's Ready condition",
                     lambda: ready_condition(api, ALERTRULES, "broken-promql"), WAIT_SECONDS, interval=0.1)
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "spec.detector.promql.expr" in ready["message"]
    assert ready["observedGeneration"] == 1
    assert children_of(api, "broken-promql", PROMETHEUSRULES, ALERTMANAGERCONFIGS, CONFIGMAPS) == []
    warnings = wait_for("a Warning Event with reason InvalidSpec",
                        lambda: [e for e in api.list("v1/events", NAMESPACE)
                                 if e.get("reason") == "InvalidSpec" and e.get("type") == "Warning"],
                        WAIT_SECONDS, interval=0.1)
    assert warnings[0]["involvedObject"]["name"] == "broken-promql"

    api.create(example("alertrule-wealth-jump.yaml"))
    ready = wait_for("the valid rule's Ready condition",
                     lambda: ready_condition(api, ALERTRULES, "whale-wealth-jump"), WAIT_SECONDS, interval=0.1)
    assert ready["status"] == "True"
    assert api.get(PROMETHEUSRULES, NAMESPACE, "whale-wealth-jump") is not None
    # Still nothing for the broken rule after further reconciles (the resync timer runs every second).
    time.sleep(RESYNC_SECONDS * 1.5)
    assert children_of(api, "broken-promql", PROMETHEUSRULES, ALERTMANAGERCONFIGS, CONFIGMAPS) == []
    assert ready_condition(api, ALERTRULES, "broken-promql")["reason"] == "InvalidSpec"


def test_scheduled_report_waits_for_its_data_source_then_becomes_ready(api: EmulatorThread, operator: KopfRunner):
    report = api.create(example("scheduledreport.yaml"))
    name = report["metadata"]["name"]
    source_name = report["spec"].get("dataSourceRef", {}).get("name", "default")

    waiting = wait_for("the report's Ready condition", lambda: ready_condition(api, SCHEDULEDREPORTS, name),
                       WAIT_SECONDS, interval=0.1)
    assert (waiting["status"], waiting["reason"]) == ("False", "DataSourceNotFound")
    assert source_name in waiting["message"]
    assert children_of(api, name, CONFIGMAPS, CRONJOBS) == []

    source = example("gamedatasource.yaml")
    assert source["metadata"]["name"] == source_name
    api.create(source)

    # No event on the report: only the resync timer can notice that its data source appeared.
    ready = wait_for("the report to become Ready after its GameDataSource was created",
                     lambda: ready_condition(api, SCHEDULEDREPORTS, name, reason="Reconciled"),
                     WAIT_SECONDS, interval=0.1)
    assert ready["status"] == "True"
    cronjobs = children_of(api, name, CRONJOBS)
    assert len(cronjobs) == 1
    assert cronjobs[0]["spec"]["schedule"] == report["spec"]["schedule"]
    assert cronjobs[0]["metadata"]["ownerReferences"][0]["uid"] == report["metadata"]["uid"]


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ("a=1,b=2", {"a": "1", "b": "2", "c": "3"}, True),
    ("a==1", {"a": "2"}, False),
    ("a!=1", {"a": "2"}, True),
    ("a!=1", {"a": "1"}, False),
    ("a", {}, False),
    ("!a", {"b": "1"}, True),
])
def test_emulated_label_selectors(selector: str, labels: dict, expected: bool):
    assert selector_matches(selector, labels) is expected


