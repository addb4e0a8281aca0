"""The NetworkPolicies (issue 15) as the real API server validates them: every one the operator renders for the
examples (a GameDataSource's with its workers' egress rules too), and the chart's with egress on, pass a server-side dry-run and are stored as sent (no drift). (The e2e tier's bridge CNI does not enforce
NetworkPolicies, so their effect is checked in ``tests/controller/test_network_policies.py``.)"""

from __future__ import annotations

import dataclasses
import json
import subprocess

import pytest
import yaml

from controller.test_network_policies import (  # tests/ is on sys.path (the rootdir conftest)
    SETTINGS,
    reconciled,
)
from controller.test_worker_egress import EGRESS
from game_analytics.config import Images

from .support import ROOT, tool

pytestmark = pytest.mark.e2e


def test_rendered_and_chart_network_policies_pass_a_server_side_dry_run(kubectl, namespace):
    images = Images(network_policies=SETTINGS, probe_address_annotation=True)
    docs = []
    for kind, example in [("RedisFailover", "redisfailover.yaml"), ("MongoShardedCluster", "mongoshardedcluster.yaml"),
                          ("GameDataSource", "gamedatasource.yaml"), ("ScheduledReport", "scheduledreport.yaml")]:
        cluster, _ = reconciled(kind, example, images)
        docs += [o for o in cluster.created().values() if o["kind"] == "NetworkPolicy"]
    egress = dataclasses.replace(EGRESS, api_server_cidrs=("10.0.0.1/32",))  # the workers' egress rules too
    cluster, _ = reconciled("GameDataSource", "gamedatasource.yaml", Images(network_policies=egress))
    docs += [o for o in cluster.created().values() if o["kind"] == "NetworkPolicy"]
    chart = subprocess.run([tool("helm"), "template", "ga", str(ROOT / "charts" / "game-analytics"), "--namespace",
                            namespace, "--set", "networkPolicy.egress.enabled=true", "--set",
                            "networkPolicy.egress.extra[0].ports[0].port=5432"],
                           check=True, capture_output=True, text=True).stdout
    docs += [d for d in yaml.safe_load_all(chart) if d and d["kind"] == "NetworkPolicy"]
    assert len(docs) == 6
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
        doc["metadata"].pop("ownerReferences", None)  # the owners do not exist in this namespace
        result = kubectl.run("apply", "--dry-run=server", "--validate=strict", "-o", "json", "-f", "-",
                             input=yaml.safe_dump(doc), check=False)
        assert result.returncode == 0, f"{doc['metadata']['name']}: {result.stderr}"
        # stored as sent: otherwise the operator would see a drift and re-apply it on every resync (as it did
        # with `ingress: []`, which the API server drops)
        if doc["metadata"]["labels"].get("app.kubernetes.io/managed-by") == "game-analytics-operator":
            assert json.loads(result.stdout)["spec"] == doc["spec"], doc["metadata"]["name"]
