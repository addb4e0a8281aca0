"""A CronJob running one of the project's batch workers (reports, ratings), shared by several kinds."""

from __future__ import annotations

from typing import Any

from ...api.common import Resources
from ...workers.jobs import ENV_JOB_NAME
from ..gamedatasource.names import workers_config_name
from .render import (
    DataSource,
    Manifest,
    Owner,
    connection_env,
    container,
    exec_probe,
    labels,
    manifest,
    metadata,
    pod_spec,
    resources,
)

CONFIG_DIR = "/etc/game-analytics"


def data_source_env(source: DataSource) -> tuple[list[dict], list[dict]]:
    """(env, envFrom) giving a batch worker the data source's connection (:func:`.render.connection_env`) and the
    settings its workers share (their ConfigMap)."""
    env = [*connection_env(source), {"name": "MPLCONFIGDIR", "value": "/tmp"}]
    return env, [{"configMapRef": {"name": workers_config_name(source.name)}}]


def worker_cronjob(
    owner: Owner, *, name: str, component: str, schedule: str, time_zone: str, suspend: bool, args: list[str],
    image: str, env: list[dict[str, Any]], env_from: list[dict[str, Any]], config_map: str,
    starting_deadline_seconds: int = 300, successful_history: int = 3, failed_history: int = 3,
    resources_spec: Resources | None = None, active_deadline_seconds: int = 3600,
) -> Manifest:
    """A CronJob that never overlaps runs (``concurrencyPolicy: Forbid``) and whose failed runs stay visible.

    The worker reads its job description from ``config_map`` mounted at ``/etc/game-analytics``. ``backoffLimit`` is
    1 so a failure is retried once and then reported, never retried silently forever.
    """
    # The Job's name keys a run (a retried report skips channels already sent, a retried season reset is a no-op:
    # workers/jobs.py); the pod's hostname carries it only up to 48 characters, the label always.
    env = [*env, {"name": ENV_JOB_NAME,
                  "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['batch.kubernetes.io/job-name']"}}}]
    main = container(
        component, image, args=args, env=env, resources_=resources(resources_spec, memory="512Mi", memory_limit="2Gi"),
        liveness=exec_probe(["game-analytics", "--version"], period=60),
        volume_mounts=[{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                       {"name": "tmp", "mountPath": "/tmp"}],
    )
    main.pop("readinessProbe")  # readiness means nothing for a run-to-completion pod
    main["envFrom"] = env_from
    pod = pod_spec([main], restart_policy="Never", volumes=[
        {"name": "config", "configMap": {"name": config_map}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "2Gi"}},
    ])
    job_labels = labels(owner, component)
    return manifest("batch/v1", "CronJob", metadata(owner, name, component), spec={
        "schedule": schedule,
        "timeZone": time_zone,
        "concurrencyPolicy": "Forbid",
        "startingDeadlineSeconds": starting_deadline_seconds,
        "successfulJobsHistoryLimit": successful_history,
        "failedJobsHistoryLimit": failed_history,
        "suspend": suspend,
        "jobTemplate": {
            "metadata": {"labels": job_labels},
            "spec": {
                "backoffLimit": 1,
                "activeDeadlineSeconds": active_deadline_seconds,
                "ttlSecondsAfterFinished": 7 * 24 * 3600,
                "template": {"metadata": {"labels": job_labels}, "spec": pod},
            },
        },
    })
