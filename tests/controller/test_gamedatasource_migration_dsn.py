"""GameDataSource ``spec.postgres.migrationDsnSecretRef``: the schema owner's DSN reaches the migrate init
containers and the partitions CronJob only; the worker containers keep ``dsnSecretRef``; a missing Secret is
reported naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from game_analytics.api.gamedatasource import GameDataSourceSpec
from game_analytics.config import Images
from game_analytics.controller.common.plan import DependencyError
from game_analytics.controller.common.render import Owner
from game_analytics.controller.gamedatasource import plan, render

from .fake_cluster import FakeCluster

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gamedatasource.yaml"
OWNER = Owner("gameanalytics.io/v1alpha1", "GameDataSource", "default", "games", "uid-1")
OWNER_REF = {"name": "analytics-db-owner", "key": "dsn"}


def spec(migration: dict | None) -> GameDataSourceSpec:
    """The example's spec with ``migrationDsnSecretRef`` = ``migration`` (None: without the field)."""
    doc = yaml.safe_load(EXAMPLE.read_text())["spec"]
    doc["postgres"].pop("migrationDsnSecretRef", None)
    if migration is not None:
        doc["postgres"]["migrationDsnSecretRef"] = migration
    return GameDataSourceSpec.model_validate(doc)


def dsn_refs(containers: list[dict]) -> dict[str, dict]:
    return {c["name"]: next(e["valueFrom"]["secretKeyRef"] for e in c["env"] if e["name"] == "GAME_ANALYTICS_DSN")
            for c in containers}


def test_the_owner_dsn_goes_to_the_migrate_init_containers_and_the_partitions_cronjob_only() -> None:
    children = render.render(OWNER, spec(OWNER_REF), image="img:1", sentinel_master="m")
    workers_ref = spec(None).postgres.dsn_secret_ref.model_dump(by_alias=True)
    deployments = [c for c in children if c["kind"] == "Deployment"]
    assert len(deployments) == 3
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert dsn_refs(pod["initContainers"]) == {"migrate": OWNER_REF}
        (main,) = pod["containers"]
        assert dsn_refs([main]) == {main["name"]: workers_ref}
        assert OWNER_REF["name"] not in yaml.safe_dump(pod["containers"])
        maintenance = [e for e in main["env"] if e["name"] == "GAME_ANALYTICS_PARTITION_MAINTENANCE"]
        assert maintenance == ([{"name": "GAME_ANALYTICS_PARTITION_MAINTENANCE", "value": "false"}]
                               if main["name"] == "ingest" else [])  # fmt: skip
    (cron,) = [c for c in children if c["kind"] == "CronJob"]
    assert cron["metadata"]["name"] == "default-partitions" and cron["spec"]["schedule"] == render.PARTITIONS_SCHEDULE
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (job,) = pod["containers"]
    assert job["args"] == ["partitions", "maintain"] and dsn_refs([job]) == {job["name"]: OWNER_REF}
    assert {"configMapRef": {"name": "default-workers"}} in job["envFrom"]  # retention and partition interval
    assert ("batch/v1", "CronJob") in plan.CHILD_TYPES  # dropping the field prunes the CronJob


def test_without_it_one_dsn_migrates_and_the_ingest_worker_maintains_the_partitions() -> None:
    children = render.render(OWNER, spec(None), image="img:1", sentinel_master="m")
    workers_ref = spec(None).postgres.dsn_secret_ref.model_dump(by_alias=True)
    assert not [c for c in children if c["kind"] == "CronJob"]
    for deployment in (c for c in children if c["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert dsn_refs(pod["initContainers"]) == {"migrate": workers_ref}
        assert not [e for e in pod["containers"][0]["env"] if e["name"] == "GAME_ANALYTICS_PARTITION_MAINTENANCE"]


def test_a_missing_owner_secret_names_the_field() -> None:
    cluster = FakeCluster()  # the example's Secrets exist, the owner's does not
    failover = yaml.safe_load((EXAMPLE.parent / "redisfailover.yaml").read_text())
    cluster.add({**failover, "metadata": {**failover["metadata"], "namespace": "games"}})
    plan.plan(OWNER, spec(None), cluster, Images(worker="img:1"))
    with pytest.raises(DependencyError, match=r"spec\.postgres\.migrationDsnSecretRef"):
        plan.plan(OWNER, spec(OWNER_REF), cluster, Images(worker="img:1"))


def test_the_example_runs_the_workers_and_the_owner_as_two_roles() -> None:
    """examples/gamedatasource.yaml is the set-up docs/interventions.md recommends: both DSNs, from two Secrets, so
    no worker container of the example carries the owner's Secret and the partitions CronJob runs as the owner."""
    example = yaml.safe_load(EXAMPLE.read_text())["spec"]["postgres"]
    workers, owner = example["dsnSecretRef"], example["migrationDsnSecretRef"]
    assert workers["name"] != owner["name"]
    children = render.render(OWNER, GameDataSourceSpec.model_validate(yaml.safe_load(EXAMPLE.read_text())["spec"]),
                             image="img:1", sentinel_master="m")  # fmt: skip
    for deployment in [c for c in children if c["kind"] == "Deployment"]:
        pod = deployment["spec"]["template"]["spec"]
        assert dsn_refs(pod["initContainers"]) == {"migrate": owner}
        assert owner["name"] not in yaml.safe_dump(pod["containers"])
    (cron,) = [c for c in children if c["kind"] == "CronJob"]
    assert dsn_refs(cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"])["partitions"] == owner
