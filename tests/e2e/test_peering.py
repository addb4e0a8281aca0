"""Two operator replicas with Kopf peering: exactly one reconciles, and the other takes over when it dies."""

from __future__ import annotations

import time

import pytest
import yaml

from devtools.operator_process import OperatorProcess
from devtools.waiting import wait_for

from .support import EXAMPLES, create_example_secrets, is_ready

pytestmark = pytest.mark.e2e

NS = "peering"


def peering_state(replica: OperatorProcess) -> str:
    """"active" or "paused", from the replica's last peering decision in its log. A replica that finds a peer of
    higher priority at start-up stays paused without logging anything."""
    decisions = [line for line in replica.log_path.read_text().splitlines()
                 if "Resuming operations" in line or "Pausing operations" in line]
    return "active" if decisions and "Resuming operations" in decisions[-1] else "paused"


def test_two_replicas_one_active(installed, kubectl, operator, tmp_path):
    operator.stop()  # the session's standalone operator must not compete with the peered pair
    try:
        kubectl.run("apply", "-f", "-", input=yaml.safe_dump(
            {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "game-analytics"}}))
        kubectl.run("create", "namespace", NS)
        create_example_secrets(kubectl, NS)
        kubectl.run("apply", "-n", NS, "-f", str(EXAMPLES / "gamedatasource.yaml"))  # the rule's GameDataSource
        env = {"GAME_ANALYTICS_PEERING_RANDOM_PRIORITY": "true"}
        pair = [OperatorProcess(installed, tmp_path / f"replica-{i}.log", resync_seconds=3, env=env,
                                peering="game-analytics").start() for i in range(2)]
        try:
            # a replica alone resumes at once, and pauses when it sees a peer of higher priority
            def states():
                return [peering_state(p) for p in pair]
            wait_for("one active replica and one paused", lambda: sorted(states()) == ["active", "paused"],
                     timeout=90)
            time.sleep(5)
            assert sorted(states()) == ["active", "paused"], states()
            active, standby = pair if states()[0] == "active" else pair[::-1]
            doc = yaml.safe_load((EXAMPLES / "alertrule-inflation.yaml").read_text())
            doc["metadata"]["namespace"] = NS
            kubectl.run("apply", "-f", "-", input=yaml.safe_dump(doc))
            wait_for("rule ready", lambda: is_ready(kubectl.get("alertrule", "currency-inflation", NS)))
            assert f"[{NS}/currency-inflation] Handler 'alertrule-create' succeeded" in active.log_path.read_text()
            assert f"[{NS}/currency-inflation]" not in standby.log_path.read_text(), "the standby must not reconcile"

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
