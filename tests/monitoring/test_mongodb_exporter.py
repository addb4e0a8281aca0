"""The Mongo alerts and the topology dashboard against the exporter MongoShardedCluster renders.

Every ``mongodb_*`` name an alert or a panel uses must be one Percona's mongodb_exporter exposes (the table
``names.MONGODB_EXPORTER``, from its documentation), with the collector that produces it switched on in the sidecar
of the server it needs; and the ``service`` label the alerts match on must be the name of a Service the rendered
ServiceMonitor scrapes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from game_analytics.api.mongoshardedcluster import MongoShardedClusterSpec
from game_analytics.config import Images
from game_analytics.controller.common.render import Owner
from game_analytics.controller.mongoshardedcluster import render as msc
from game_analytics.controller.mongoshardedcluster.names import LABEL_METRICS
from game_analytics.monitoring import dashboard_queries, dashboards, names, promql

from .test_alert_rules import ALL_ALERTS
from .tools import REPO

EXAMPLE = yaml.safe_load((REPO / "examples" / "mongoshardedcluster.yaml").read_text())
OWNER = Owner("gameanalytics.io/v1alpha1", "MongoShardedCluster", EXAMPLE["metadata"]["name"], "games", "u1", 1)
CHILDREN = msc.render(OWNER, MongoShardedClusterSpec.model_validate(EXAMPLE["spec"]),
                      Images(mongodb_exporter="percona/mongodb_exporter:test"))
MONGO_ALERTS = [rule for file, rule in ALL_ALERTS if Path(file).stem == "mongo"]
PANEL_NAMES = {m for m in dashboard_queries.metric_names_used(dashboards.DASHBOARDS["topology"]())
               if m.startswith("mongodb_")}
ALERT_NAMES = {m for rule in MONGO_ALERTS for m in promql.metric_names(rule["expr"]) if m.startswith("mongodb_")}


def _exporter_args(kind: str, name: str) -> list[str]:
    obj = next(c for c in CHILDREN if c["kind"] == kind and c["metadata"]["name"] == name)
    return next(c for c in obj["spec"]["template"]["spec"]["containers"] if c["name"] == "exporter")["args"]


def test_the_mongo_alerts_and_panels_use_mongodb_exporter_metrics() -> None:
    assert MONGO_ALERTS and "mongodb_up" in ALERT_NAMES and PANEL_NAMES


@pytest.mark.parametrize("metric", sorted(ALERT_NAMES | PANEL_NAMES))
def test_every_mongo_metric_is_one_the_exporter_exposes_with_its_collector_on(metric: str) -> None:
    assert metric in names.MONGODB_EXPORTER, f"{metric} is not in names.MONGODB_EXPORTER (percona/mongodb_exporter)"
    flag, server = names.MONGODB_EXPORTER[metric]
    if flag is None:
        return
    if server in ("any", "mongos"):
        assert flag in _exporter_args("Deployment", f"{OWNER.name}-mongos")
    if server == "any":
        assert flag in _exporter_args("StatefulSet", f"{OWNER.name}-shard-0")


def test_every_mongod_and_mongos_has_the_sidecar_and_is_scraped() -> None:
    workloads = [c for c in CHILDREN if c["kind"] in ("StatefulSet", "Deployment")]
    assert len(workloads) == 4
    for w in workloads:
        containers = w["spec"]["template"]["spec"]["containers"]
        exporter = next(c for c in containers if c["name"] == "exporter")
        assert exporter["image"] == "percona/mongodb_exporter:test"
        assert {"name": "metrics", "containerPort": 9216, "protocol": "TCP"} in exporter["ports"]
    (monitor,) = [c for c in CHILDREN if c["kind"] == "ServiceMonitor"]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"  # the other kinds' monitoring labels
    selected = [s for s in CHILDREN if s["kind"] == "Service"
                and monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
    assert sorted(s["metadata"]["name"] for s in selected) == sorted(
        [f"{OWNER.name}-cfg-headless", f"{OWNER.name}-shard-0-headless", f"{OWNER.name}-shard-1-headless",
         f"{OWNER.name}-mongos"])
    assert all(s["metadata"]["labels"][LABEL_METRICS] == "true" and
               {"name": "metrics", "port": 9216, "targetPort": "metrics"} in s["spec"]["ports"] for s in selected)


def test_the_alerts_service_matchers_select_the_scraped_services() -> None:
    scraped = [s["metadata"]["name"] for s in CHILDREN if s["kind"] == "Service"
               and s["metadata"]["labels"].get(LABEL_METRICS) == "true"]
    patterns = {p for rule in MONGO_ALERTS for p in re.findall(r'service=~"([^"]+)"', rule["expr"])}
    assert patterns
    for pattern in patterns:
        assert any(re.fullmatch(pattern, name) for name in scraped), f"{pattern} matches none of {scraped}"


def test_exporter_can_be_switched_off() -> None:
    spec = MongoShardedClusterSpec.model_validate({**EXAMPLE["spec"], "exporter": {"enabled": False}})
    children = msc.render(OWNER, spec, Images())
    assert not [c for c in children if c["kind"] == "ServiceMonitor"]
    assert all(len(c["spec"]["template"]["spec"]["containers"]) == 1 for c in children
               if c["kind"] in ("StatefulSet", "Deployment"))
