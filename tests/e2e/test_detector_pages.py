"""Every detector type pages through the REAL prometheus-operator: one AlertRule per type (the 10 of
``api.alertrule.DETECTOR_TYPES``, plus the raw ``promql`` one) -> our operator -> prometheus-operator v0.85.0 -> the
real Prometheus (the operator's rule files, unchanged) and Alertmanager (the operator's generated configuration,
unchanged) -> that AlertRule's own webhook and email receivers; then resolved once the condition clears.

One stack for all types (a module fixture, :func:`cycle`): the AlertRules are applied together, every condition is
injected at once and cleared at once, so the run costs one Alertmanager ``group_interval`` (1 m, the shipped
default) for the resolved notifications instead of one per type. Each type's assertions are a parametrized test.
Each rule has a webhook path and a recipient of its own, so a page that reached the wrong receiver is seen.

The injected condition is what each template selects, served by a stub exporter whose series Prometheus labels
with the rule's namespace (as a ServiceMonitor target would be): the PromQL-evaluated types get the exporter
gauges/counters they read (price index up 2x, error counter climbing, active players down, ingest lag up, the
raw expression's gauge), the worker-evaluated types get the detection worker's flagged-subjects gauge. That the
worker's SQL detectors flag planted players is tested on the real PostgreSQL in tests/workers/test_detection.py
and the detector-quality harness; the wealth jump goes through every real process in
tests/monitoring/test_alert_path.py.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import yaml

from devtools import prometheus_operator as po
from devtools.monitoring_stack import Alertmanager, Prometheus, SmtpSink, WebhookReceiver
from devtools.waiting import wait_for
from game_analytics.api.alertrule import DETECTOR_TYPES
from game_analytics.controller.alertrule.names import alert_name
from game_analytics.monitoring import names, promql

from .support import Kubectl, is_ready
from .test_prometheus_operator import (  # noqa: F401 - prometheus_operator is a fixture
    StubExporter,
    data_source,
    data_source_secret,
    generated_config,
    prometheus_operator,
    rulefiles,
)

pytestmark = pytest.mark.e2e

GAME = "space-miners"
#: currencyInflation compares with ``offset <window>``: short, so that the baseline exists soon
INFLATION_WINDOW = "20s"
#: highErrorRate's rate window: short, so that the error rate falls to 0 soon after the errors stop
ERROR_WINDOW = "10s"


@dataclass
class Case:
    """One detector type: its AlertRule spec (category and detector) and the exporter series that make its
    condition hold (``broken=True``) or not."""

    category: str
    detector: dict
    series: Callable[[str, bool, float], list[str]]  # (rule id, broken, error count) -> exposition lines


def _flagged(kind: str) -> Callable[[str, bool, float], list[str]]:
    def series(rule: str, broken: bool, _: float) -> list[str]:
        return [f'{names.DETECTION_FLAGGED}{{rule="{rule}",detector="{kind}",category="x",severity="critical"}} '
                f'{3 if broken else 0}']
    return series


CASES: dict[str, Case] = {
    "suddenWealthChange": Case("player", {"thresholdRatio": 5}, _flagged("suddenWealthChange")),
    "rapidAssetTransfer": Case("player", {"count": 20}, _flagged("rapidAssetTransfer")),
    "unusualLoginPattern": Case("player", {"maxDistinctRegions": 2}, _flagged("unusualLoginPattern")),
    "marketManipulation": Case("economic", {"priceChange": 0.5}, _flagged("marketManipulation")),
    "monopolyFormation": Case("economic", {"marketShare": 0.4}, _flagged("monopolyFormation")),
    "anomalyScore": Case("anomaly", {"threshold": 0.8}, _flagged("anomalyScore")),
    "churnRisk": Case("retention", {"maxCases": 10}, _flagged("churnRisk")),
    "forecastDeviation": Case("system", {"metric": "dau"}, _flagged("forecastDeviation")),
    "currencyInflation": Case("economic", {"rate": 0.05, "window": INFLATION_WINDOW, "currency": "gems"},
                              lambda rule, broken, _: [f'{names.PRICE_INDEX}{{game="{GAME}",currency="gems"}} '
                                                       f'{200 if broken else 100}']),
    "highErrorRate": Case("system", {"ratio": 0.1, "window": ERROR_WINDOW},
                          lambda rule, broken, errors: [
                              f'{names.EVENTS_INGESTED}{{game="{GAME}",event_type="purchase"}} {time.time() * 100:.0f}',
                              f'{names.EVENTS_INGESTED}{{game="{GAME}",event_type="error"}} {errors:.0f}']),
    "lowEngagement": Case("system", {"minActivePlayers": 100, "period": "1h"},
                          lambda rule, broken, _: [f'{names.ACTIVE_PLAYERS}{{game="{GAME}",period="1h"}} '
                                                   f'{3 if broken else 1000}']),
    "ingestLag": Case("system", {"maxLagSeconds": 60},
                      lambda rule, broken, _: [f'{names.INGEST_LAG}{{stream="events"}} {120 if broken else 0.5}']),
    "promql": Case("economic", {"expr": f'max by (namespace, game) ({names.GINI}{{currency="gems"}}) > 0.9'},
                   lambda rule, broken, _: [f'{names.GINI}{{game="{GAME}",currency="gems"}} '
                                            f'{0.95 if broken else 0.3}']),
}


def rule_name(kind: str) -> str:
    """``highErrorRate`` -> ``pages-high-error-rate``."""
    return "pages-" + _kebab(kind)


def _kebab(kind: str) -> str:
    return "".join("-" + c.lower() if c.isupper() else c for c in kind)


class Exporter:
    """``/metrics`` of every case's series; :meth:`set` breaks or heals them. The error counter of highErrorRate
    climbs 100/s while broken (its purchases always do), so its rate ratio is 0.5 then and 0 a window later."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.broken = False
        self._errors, self._since = 0.0, time.time()
        self._lock = threading.Lock()
        self._stub = StubExporter(self.body)
        self.address = self._stub.address

    def errors(self) -> float:
        with self._lock:
            return self._errors + (100 * (time.time() - self._since) if self.broken else 0.0)

    def set(self, broken: bool) -> None:
        with self._lock:
            now = time.time()
            self._errors += 100 * (now - self._since) if self.broken else 0.0
            self.broken, self._since = broken, now

    def body(self) -> str:
        errors = self.errors()
        lines = [line for kind, case in CASES.items()
                 for line in case.series(promql.rule_id(self.namespace, rule_name(kind)), self.broken, errors)]
        return "\n".join(lines) + "\n"

    def stop(self) -> None:
        self._stub.stop()


def alert_rule(namespace: str, kind: str, smtp: SmtpSink) -> dict:
    case = CASES[kind]
    name = rule_name(kind)
    return {
        "apiVersion": "gameanalytics.io/v1alpha1", "kind": "AlertRule",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "category": case.category, "detector": {kind: case.detector}, "severity": "critical", "team": "game-ops",
            "runbookURL": f"https://runbooks.example.com/{name}",
            "channels": [
                {"name": "pager", "webhook": {"urlSecretRef": {"name": "pager", "key": name}}},
                {"name": "mail", "email": {"to": f"{name}@example.com", "from": "alerts@example.com",
                                           "smarthost": f"{smtp.host}:{smtp.port}", "requireTLS": False}},
            ],
        },
    }


@dataclass
class Pages:
    """What one rule's receivers got: webhook entries and emails (``Subject`` headers) in order."""

    webhook: list[dict] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)

    def status(self, status: str) -> dict | None:
        return next((e for e in self.webhook if e["body"].get("status") == status), None)

    def mailed(self, status: str) -> bool:
        return any(s.startswith(f"[{status.upper()}") for s in self.emails)


@dataclass
class Cycle:
    namespace: str
    rules_api: list[dict]
    before: list[dict]
    injected_at: float
    cleared_at: float
    pages: dict[str, Pages]
    other_paths: list[str]


def _receivers(pager: WebhookReceiver, smtp: SmtpSink) -> dict[str, Pages]:
    out = {kind: Pages() for kind in CASES}
    by_name = {rule_name(kind): kind for kind in CASES}
    for entry in list(pager.received):
        if (kind := by_name.get(entry["path"].lstrip("/"))) is not None:
            out[kind].webhook.append(entry)
    for message in list(smtp.messages):
        if (kind := by_name.get(str(message["To"]).split("@")[0])) is not None:
            out[kind].emails.append(str(message["Subject"]))
    return out


@pytest.fixture(scope="module")
def cycle(operator, prometheus_operator, kubectl: Kubectl, tmp_path_factory) -> Iterator[Cycle]:  # noqa: F811
    """Apply the rules, start Prometheus and Alertmanager on what prometheus-operator generated, break every
    condition, wait for every page, heal, wait for every resolved notification."""
    ns = f"pages-{uuid.uuid4().hex[:6]}"
    tmp = tmp_path_factory.mktemp("detector-pages")
    kubectl.run("create", "namespace", ns)
    pager, smtp, exporter = WebhookReceiver(log_file=tmp / "pages.jsonl"), SmtpSink(tmp / "mail"), Exporter(ns)
    stops: list[Callable[[], None]] = [pager.stop, smtp.stop, exporter.stop]
    try:
        kubectl.run("create", "secret", "generic", "pager", "-n", ns,
                    *(f"--from-literal={rule_name(k)}={pager.url}/{rule_name(k)}" for k in CASES))
        kubectl.run("apply", "-f", "-", input=json.dumps(data_source_secret(ns)))
        kubectl.run("apply", "-f", "-", input=json.dumps(data_source(ns)))
        kubectl.run("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                          "items": [alert_rule(ns, k, smtp) for k in CASES]}))
        for kind in CASES:
            wait_for(f"AlertRule {ns}/{rule_name(kind)} Ready",
                     lambda kind=kind: is_ready(kubectl.get("alertrule", rule_name(kind), ns)), 60)

        def selected() -> list[dict] | None:
            keys = {key for cm in rulefiles(kubectl) for key in (cm.get("data") or {})}
            return rulefiles(kubectl) if all(any(k.startswith(f"{ns}-{rule_name(kind)}-") for k in keys)
                                             for kind in CASES) else None
        groups = po.rule_groups(wait_for("every rule in the operator's rule files", selected, 120,
                                         alive=prometheus_operator.check_alive))

        def routed() -> dict | None:
            config = generated_config(kubectl)
            return config if config and len(po.routes_of(config, ns)) == len(CASES) else None
        config = wait_for("every AlertmanagerConfig in the generated configuration", routed, 120,
                          alive=prometheus_operator.check_alive)
        (tmp / "generated-alertmanager.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        print(f"\nprometheus-operator's generated Alertmanager configuration: {tmp / 'generated-alertmanager.yaml'}")

        alertmanager = Alertmanager(tmp / "alertmanager", config)
        stops.append(alertmanager.stop)
        prometheus = Prometheus(tmp / "prometheus", {"exporter": [exporter.address]}, groups,
                                alertmanager=alertmanager.address, interval="1s",
                                job_labels={"exporter": {"namespace": ns}})
        stops.append(prometheus.stop)
        with urllib.request.urlopen(f"{prometheus.url}/api/v1/rules", timeout=5) as response:
            rules_api = json.load(response)["data"]["groups"]

        # the baseline: every series scraped, the inflation window's offset sample there, nothing firing
        wait_for("the inflation baseline a window old", lambda: prometheus.query(
            f"{names.PRICE_INDEX}{{namespace=\"{ns}\"}} offset {INFLATION_WINDOW}"), 60)
        time.sleep(3)
        before = [a for a in prometheus.alerts() if a["labels"].get("namespace") == ns]

        exporter.set(True)
        injected_at = time.time()
        wait_for("a firing webhook page and email for every type", lambda: all(
            p.status("firing") and p.mailed("firing") for p in _receivers(pager, smtp).values()), 120, interval=1)

        exporter.set(False)
        cleared_at = time.time()
        wait_for("a resolved webhook page and email for every type", lambda: all(
            p.status("resolved") and p.mailed("resolved") for p in _receivers(pager, smtp).values()), 180,
            interval=1)
        known = {f"/{rule_name(k)}" for k in CASES}
        yield Cycle(ns, rules_api, before, injected_at, cleared_at, _receivers(pager, smtp),
                    [e["path"] for e in pager.received if e["path"] not in known])
    finally:
        for stop in reversed(stops):
            stop()
        kubectl.run("delete", "namespace", ns, "--wait=false", check=False)


def test_every_detector_type_is_covered():
    assert set(CASES) == set(DETECTOR_TYPES)


@pytest.mark.parametrize("kind", list(CASES))
def test_detector_type_pages_its_own_receivers_then_resolves(cycle: Cycle, kind: str):
    name, rule = rule_name(kind), promql.rule_id(cycle.namespace, rule_name(kind))
    # prometheus-operator selected the PrometheusRule and Prometheus loaded it (/api/v1/rules)
    (group,) = [g for g in cycle.rules_api if g["name"] == f"gameanalytics.io/{rule}"]
    (loaded,) = group["rules"]
    assert loaded["name"] == alert_name(name) and loaded["health"] != "err", loaded
    # the condition made it fire: nothing fired on the healthy baseline
    assert not [a for a in cycle.before if a["labels"].get("rule") == rule]

    pages = cycle.pages[kind]
    firing, resolved = pages.status("firing"), pages.status("resolved")
    print(f"\n{kind}: paged {firing['received_at'] - cycle.injected_at:.1f} s after injection, resolved "
          f"{resolved['received_at'] - cycle.cleared_at:.1f} s after clearing")
    (alert,) = firing["body"]["alerts"]
    assert alert["labels"]["alertname"] == alert_name(name)
    assert alert["labels"]["rule"] == rule and alert["labels"]["namespace"] == cycle.namespace
    assert alert["annotations"]["runbook_url"] == f"https://runbooks.example.com/{name}"
    assert kind in alert["annotations"]["summary"]
    # the receiver is the AlertRule's own (prometheus-operator names it <namespace>/<AlertmanagerConfig>/<receiver>)
    assert firing["body"]["receiver"] == f"{cycle.namespace}/{name}/pager"
    assert firing["received_at"] > cycle.injected_at
    assert resolved["received_at"] > cycle.cleared_at
    assert [a["labels"]["rule"] for a in resolved["body"]["alerts"]] == [rule]
    # only this rule's alerts on its receivers, and both channels paged
    assert {a["labels"]["rule"] for e in pages.webhook for a in e["body"]["alerts"]} == {rule}
    assert pages.mailed("firing") and pages.mailed("resolved")
    assert all(alert_name(name) in s for s in pages.emails), pages.emails
    assert cycle.other_paths == []
