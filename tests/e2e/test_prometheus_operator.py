"""AlertRule -> our operator -> the REAL prometheus-operator (v0.85.0, a local process against the real apiserver)
-> the real Prometheus and Alertmanager running what prometheus-operator generated -> the AlertRule's own webhook.

The Prometheus and Alertmanager CRs are configured as kube-prometheus-stack does by default
(``devtools.prometheus_operator.kube_prometheus_stack``): rules and monitors selected by ``release``, AlertmanagerConfigs
by ``release`` with the matcher strategy ``OnNamespace``. With no node their StatefulSets run no pods; the test runs
the Debian Prometheus with the rule groups of the operator's ``prometheus-<name>-rulefiles-0`` ConfigMap and the
Debian Alertmanager with the operator's ``alertmanager-<name>-generated`` configuration, unchanged.

The injected condition is the detection worker's metric served by a stub exporter per namespace (Prometheus labels
each job's series with its namespace, as a ServiceMonitor target would be). First a spoof: namespace B's exporter
reports namespace A's rule; nothing may fire. Then A's exporter reports it; A's webhook gets the page, B's nothing.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from devtools import prometheus_operator as po
from devtools.monitoring_stack import Alertmanager, Prometheus, WebhookReceiver
from devtools.waiting import wait_for
from game_analytics.monitoring import names

from .support import EXAMPLES, Kubectl, is_ready

pytestmark = pytest.mark.e2e

RULE = "wealth-jump"


class StubExporter:
    """``/metrics`` answering whatever :attr:`body` holds, or what ``render()`` returns (Prometheus text format)."""

    def __init__(self, render: Callable[[], str] | None = None) -> None:
        self.body = ""
        text = render or (lambda: self.body)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                data = text().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def flag(self, rule: str, subjects: int) -> None:
        self.body = (f"# TYPE {names.DETECTION_FLAGGED} gauge\n"
                     f'{names.DETECTION_FLAGGED}{{rule="{rule}",detector="suddenWealthChange"}} {subjects}\n')

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def alert_rule(namespace: str) -> dict:
    """The wealth-jump example in ``namespace`` with one webhook channel (Secret ``pager``, key ``url``)."""
    doc = yaml.safe_load((EXAMPLES / "alertrule-wealth-jump.yaml").read_text())
    doc["metadata"] = {"name": RULE, "namespace": namespace}
    doc["spec"]["channels"] = [{"name": "pager", "webhook": {"urlSecretRef": {"name": "pager", "key": "url"}}}]
    return doc


def data_source(namespace: str) -> dict:
    """examples/gamedatasource.yaml in ``namespace`` (an AlertRule needs its GameDataSource to exist)."""
    doc = yaml.safe_load((EXAMPLES / "gamedatasource.yaml").read_text())
    doc["metadata"]["namespace"] = namespace
    return doc


def data_source_secret(namespace: str) -> dict:
    ref = data_source(namespace)["spec"]["postgres"]["dsnSecretRef"]
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": ref["name"], "namespace": namespace},
            "stringData": {ref["key"]: "postgresql://analytics@postgres.invalid:5432/analytics"}}


@pytest.fixture(scope="module")
def prometheus_operator(installed, kubectl: Kubectl, control_plane, tmp_path_factory) -> Iterator[po.PrometheusOperatorProcess]:
    """kube-prometheus-stack's Prometheus and Alertmanager CRs and the real prometheus-operator watching them."""
    kubectl.run("create", "namespace", po.MONITORING_NS, check=False)
    kubectl.run("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                      "items": po.kube_prometheus_stack()}))
    log = tmp_path_factory.mktemp("prometheus-operator") / "prometheus-operator.log"
    proc = po.PrometheusOperatorProcess(control_plane.kubeconfig, log).start()
    yield proc
    proc.stop()


@pytest.fixture
def two_namespaces(kubectl: Kubectl) -> Iterator[tuple[str, str]]:
    suffix = uuid.uuid4().hex[:6]
    pair = (f"team-a-{suffix}", f"team-b-{suffix}")
    for ns in pair:
        kubectl.run("create", "namespace", ns)
    yield pair
    for ns in pair:
        kubectl.run("delete", "namespace", ns, "--wait=false", check=False)


def rulefiles(kubectl: Kubectl) -> list[dict]:
    return kubectl.json("get", "configmaps", "-n", po.MONITORING_NS, "-l",
                        f"prometheus-name={po.PROMETHEUS}")["items"]


def generated_config(kubectl: Kubectl) -> dict | None:
    secret = kubectl.get("secret", f"alertmanager-{po.ALERTMANAGER}-generated", po.MONITORING_NS)
    try:
        return po.generated_alertmanager_config(secret) if secret else None
    except KeyError:
        return None


def test_alert_rule_pages_its_own_webhook_through_the_real_prometheus_operator(
        operator, prometheus_operator, kubectl, two_namespaces, tmp_path):
    ns_a, ns_b = two_namespaces
    pager = WebhookReceiver(log_file=tmp_path / "pages.jsonl")
    exporter_a, exporter_b = StubExporter(), StubExporter()
    stops = [pager.stop, exporter_a.stop, exporter_b.stop]
    try:
        for ns in (ns_a, ns_b):
            kubectl.run("create", "secret", "generic", "pager", "-n", ns, f"--from-literal=url={pager.url}/{ns}")
            kubectl.run("apply", "-f", "-", input=json.dumps(data_source_secret(ns)))
            kubectl.run("apply", "-f", "-", input=json.dumps(data_source(ns)))
            kubectl.run("apply", "-f", "-", input=json.dumps(alert_rule(ns)))
        for ns in (ns_a, ns_b):
            wait_for(f"AlertRule {ns}/{RULE} Ready", lambda ns=ns: is_ready(kubectl.get("alertrule", RULE, ns)))

        # 1. prometheus-operator selected both PrometheusRules (release label) into its rule files ConfigMap
        def selected() -> list[dict] | None:
            cms = rulefiles(kubectl)
            keys = {key for cm in cms for key in (cm.get("data") or {})}
            return cms if all(any(k.startswith(f"{ns}-{RULE}-") for k in keys) for ns in (ns_a, ns_b)) else None
        cms = wait_for("both rules in the operator's rule files ConfigMap", selected, 90,
                       alive=prometheus_operator.check_alive)
        assert cms[0]["metadata"]["name"] == f"prometheus-{po.PROMETHEUS}-rulefiles-0"
        groups = po.rule_groups(cms)
        ours = [g for g in groups if g["name"] == f"gameanalytics.io/{ns_a}/{RULE}"]
        assert ours and ours[0]["rules"][0]["labels"]["namespace"] == ns_a

        # 2. ... and both AlertmanagerConfigs, each route matching its own namespace (OnNamespace)
        def routed() -> dict | None:
            config = generated_config(kubectl)
            return config if config and all(po.routes_of(config, ns) for ns in (ns_a, ns_b)) else None
        config = wait_for("both AlertmanagerConfigs in the generated Alertmanager config", routed, 90,
                          alive=prometheus_operator.check_alive)
        (route_a,) = po.routes_of(config, ns_a)
        assert f'namespace="{ns_a}"' in route_a["matchers"], route_a
        (tmp_path / "generated-alertmanager.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

        # 3. the real Alertmanager with that configuration, the real Prometheus with those rules
        alertmanager = Alertmanager(tmp_path / "alertmanager", config)
        stops.append(alertmanager.stop)
        prometheus = Prometheus(tmp_path / "prometheus", {"detection-a": [exporter_a.address],
                                                          "detection-b": [exporter_b.address]}, groups,
                                alertmanager=alertmanager.address, interval="1s",
                                job_labels={"detection-a": {"namespace": ns_a}, "detection-b": {"namespace": ns_b}})
        stops.append(prometheus.stop)

        # spoof: B's worker reports A's rule; A's expression selects namespace A only, so nothing fires
        exporter_a.flag(f"{ns_a}/{RULE}", 0)
        exporter_b.flag(f"{ns_a}/{RULE}", 3)
        wait_for("both exporters scraped", lambda: len(prometheus.query(f"{names.DETECTION_FLAGGED}")) == 2, 30)
        time.sleep(5)
        assert prometheus.alerts() == [] and pager.received == []

        # the real condition in A: A's webhook is paged, B's is not
        exporter_a.flag(f"{ns_a}/{RULE}", 3)
        page = wait_for(f"a page on /{ns_a}", lambda: next(
            (e for e in pager.received if e["path"] == f"/{ns_a}"), None), 60)
        (alert,) = page["body"]["alerts"]
        assert alert["status"] == "firing"
        assert alert["labels"]["namespace"] == ns_a and alert["labels"]["rule"] == f"{ns_a}/{RULE}"
        time.sleep(2)
        assert [e["path"] for e in pager.received] == [f"/{ns_a}"] * len(pager.received)
    finally:
        for stop in reversed(stops):
            stop()
