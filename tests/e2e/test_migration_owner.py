"""GameDataSource ``spec.postgres.migrationDsnSecretRef`` through the real kube-apiserver and the running operator
(issue 16): admitted by the CRD schema, the owner's Secret reaches the migrate init containers and the partitions
CronJob only, a missing one is reported naming the field, and dropping the field prunes the CronJob.
The database side is tests/storage/test_migration_owner.py."""

from __future__ import annotations

import json

import pytest

from devtools.waiting import wait_for

from .support import Kubectl, is_ready, ready_condition

pytestmark = pytest.mark.e2e

SOURCE = "owned"
OWNER_SECRET = {"name": "analytics-owner", "key": "dsn"}


def manifest(namespace: str, owner: dict | None) -> dict:
    postgres = {"dsnSecretRef": {"name": "analytics-worker", "key": "dsn"}}
    if owner:
        postgres["migrationDsnSecretRef"] = owner
    return {"apiVersion": "gameanalytics.io/v1alpha1", "kind": "GameDataSource",
            "metadata": {"name": SOURCE, "namespace": namespace},
            "spec": {"postgres": postgres, "redis": {"urlSecretRef": {"name": "redis", "key": "url"}}}}


def secrets(kubectl: Kubectl, namespace: str, *names: tuple[str, str, str]) -> None:
    items = [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": n, "namespace": namespace},
              "stringData": {k: v}} for n, k, v in names]  # fmt: skip
    kubectl.run("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))


def dsn_secret(container: dict) -> str:
    (entry,) = [e for e in container["env"] if e["name"] == "GAME_ANALYTICS_DSN"]
    return entry["valueFrom"]["secretKeyRef"]["name"]


def test_owner_dsn_reaches_only_the_migrations_and_partitions(operator, kubectl, namespace):
    ns = namespace
    secrets(kubectl, ns, ("analytics-worker", "dsn", "postgresql://analytics_worker@db/analytics"),
            ("redis", "url", "redis://redis:6379/0"))  # fmt: skip
    kubectl.run("apply", "-f", "-", input=json.dumps(manifest(ns, OWNER_SECRET)))

    # the owner's Secret missing: Ready False naming the field, nothing half-applied
    def missing():
        c = ready_condition(kubectl.get("gamedatasource", SOURCE, ns))
        return c and c["status"] == "False" and c["reason"] == "SecretNotFound" and c
    assert "spec.postgres.migrationDsnSecretRef" in wait_for("SecretNotFound", missing, timeout=60)["message"]

    secrets(kubectl, ns, ("analytics-owner", "dsn", "postgresql://analytics_owner@db/analytics"))
    wait_for("ready", lambda: is_ready(kubectl.get("gamedatasource", SOURCE, ns)), timeout=90)
    deployments = kubectl.json("get", "deployments", "-n", ns, "-l", f"app.kubernetes.io/instance={SOURCE}")["items"]
    assert len(deployments) == 3
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert [dsn_secret(c) for c in pod["initContainers"]] == ["analytics-owner"]
        assert [dsn_secret(c) for c in pod["containers"]] == ["analytics-worker"]
        assert "analytics-owner" not in json.dumps(pod["containers"])
    cron = kubectl.get("cronjob", f"{SOURCE}-partitions", ns)
    assert cron is not None and cron["metadata"]["ownerReferences"][0]["kind"] == "GameDataSource"
    (job,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert job["args"] == ["partitions", "maintain"] and dsn_secret(job) == "analytics-owner"

    # without the field: one DSN again, the CronJob pruned, the ingest worker maintains the partitions
    kubectl.run("patch", "gamedatasource", SOURCE, "-n", ns, "--type=json",
                "-p", '[{"op": "remove", "path": "/spec/postgres/migrationDsnSecretRef"}]')
    wait_for("CronJob pruned", lambda: kubectl.get("cronjob", f"{SOURCE}-partitions", ns) is None, timeout=60)
    ingest = wait_for("ingest migrates with the workers' DSN", lambda: (d := kubectl.get("deployment", f"{SOURCE}-ingest", ns))
                      and dsn_secret(d["spec"]["template"]["spec"]["initContainers"][0]) == "analytics-worker" and d,
                      timeout=60)  # fmt: skip
    assert "GAME_ANALYTICS_PARTITION_MAINTENANCE" not in json.dumps(ingest["spec"]["template"]["spec"]["containers"])
