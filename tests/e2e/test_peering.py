"""Two operator replicas with Kopf peering: exactly one reconciles, and the other takes over when it dies."""

from __future__ import annotations

import pytest
import yaml

from game_analytics.testing.operator_process import OperatorProcess

from .support import EXAMPLES, is_ready, wait_for

pytestmark = pytest.mark.e2e

NS = "peering"


def test_two_replicas_one_active(installed, kubectl, operator, tmp_path):
    operator.stop()  # the session's standalone operator must not compete with the peered pair
    try:
        kubectl.run("apply", "-f", "-", input=yaml.safe_dump(
            {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "game-analytics"}}))
        kubectl.run("create", "namespace", NS)
        env = {"GAME_ANALYTICS_PEERING_RANDOM_PRIORITY": "true"}
        pair = [OperatorProcess(installed, tmp_path / f"replica-{i}.log", resync_seconds=3, env=env,
                                peering="game-analytics").start() for i in range(2)]
        try:
            def paused():
                return [p for p in pair if "Pausing operations in favour of" in p.log_path.read_text()]
            standby = wait_for("one replica to pause in favour of the other", paused, timeout=90)
            assert len(standby) == 1, "exactly one replica must stand by"
            (active,) = [p for p in pair if p is not standby[0]]
            doc = yaml.safe_load((EXAMPLES / "alertrule-inflation.yaml").read_text())
            doc["metadata"]["namespace"] = NS
            kubectl.run("apply", "-f", "-", input=yaml.safe_dump(doc))
            wait_for("rule ready", lambda: is_ready(kubectl.get("alertrule", "currency-inflation", NS)))
            assert "alertrule-create" in active.log_path.read_text()
            assert "alertrule-create" not in standby[0].log_path.read_text()

            active.kill()  # SIGKILL: the standby resumes once the dead peer's heartbeat expires
            doc["spec"]["severity"] = "critical"
            kubectl.run("apply", "-f", "-", input=yaml.safe_dump(doc))
            wait_for("the standby to take over and reconcile the update",
                     lambda: is_ready(kubectl.get("alertrule", "currency-inflation", NS))
                     and kubectl.get("prometheusrule", "currency-inflation", NS)["spec"]["groups"][0]["rules"][0][
                         "labels"]["severity"] == "critical", timeout=180)
        finally:
            for p in pair:
                p.stop()
    finally:
        operator.start()
