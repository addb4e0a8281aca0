"""GameDataSource -> the ingest, exporter and detection workers (a PodDisruptionBudget each when it has more than one
replica), their Service, ServiceMonitor and RBAC."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from ...api.common import SecretKeyRef
from ...api.gamedatasource import GameDataSourceSpec
from ...api.gamedatasource import WorkerSettings as WorkerSpec
from ...settings import ENV_PREFIX, WorkerSettings
from ...validation import SpecError
from ..alertrule.names import LABEL_DATA_SOURCE, LABEL_DETECTOR_CONFIG
from ..common.cronjob import worker_cronjob
from ..common.render import (
    DataSource,
    Manifest,
    Owner,
    config_map,
    connection_env,
    container,
    http_probe,
    init_container,
    labels,
    manifest,
    metadata,
    monitoring_metadata,
    pod_disruption_budget,
    pod_spec,
    resources,
    secret_env,
    selector,
    service,
)
from ..redisfailover.names import sentinel_service_address
from .names import (
    LABEL_METRICS,
    METRICS_PORT,
    WORKERS,
    deployment_name,
    detection_account_name,
    metrics_service_name,
    partitions_cronjob_name,
    workers_config_name,
)

#: When the partition-maintenance CronJob runs (every hour, off the full hour); it needs the owner's DSN.
PARTITIONS_SCHEDULE = "17 * * * *"

__all__ = ["METRICS_PORT", "WORKERS", "detection_rbac", "render", "worker_settings", "workers_config_name"]


def worker_settings(owner: Owner, spec: GameDataSourceSpec, sentinel_master: str | None) -> WorkerSettings:
    """The non-secret settings every worker of this data source shares.

    Raises:
        SpecError: naming the spec field whose value the workers' settings refuse.
    """
    sentinels = []
    if spec.redis.sentinel:
        host, port = sentinel_service_address(spec.redis.sentinel.redis_failover_ref.name, owner.namespace)
        sentinels = [f"{host}:{port}"]
    try:
        return _worker_settings(owner, spec, sentinels, sentinel_master)
    except ValidationError as exc:  # e.g. retention "0": the CRD's duration pattern admits it, the workers refuse it
        error = exc.errors()[0]
        field = _SPEC_FIELDS.get(str(error["loc"][0]) if error["loc"] else "", "spec")
        raise SpecError(field, error["msg"]) from exc


#: WorkerSettings field -> the GameDataSource field it comes from (for errors that name the user's field)
_SPEC_FIELDS = {"retention": "spec.retention", "partition_interval": "spec.partitionInterval",
                "stream": "spec.stream.name", "consumer_group": "spec.stream.consumerGroup",
                "stream_shards": "spec.stream.shards", "dead_letter_stream": "spec.stream.deadLetterStream",
                "games": "spec.games", "detection_interval_seconds": "spec.workers.detection.intervalSeconds"}


def _worker_settings(owner: Owner, spec: GameDataSourceSpec, sentinels: list[str],
                     sentinel_master: str | None) -> WorkerSettings:
    return WorkerSettings.model_validate(dict(  # not WorkerSettings(...): that would read the operator's environment
        redis_sentinels=sentinels,
        redis_master=sentinel_master or "mymaster",
        stream=spec.stream.name,
        consumer_group=spec.stream.consumer_group,
        stream_shards=spec.stream.shards,
        dead_letter_stream=spec.stream.dead_letter_stream,
        games=spec.games,
        namespace=owner.namespace,
        data_source=owner.name,
        detection_interval_seconds=spec.workers.detection.interval_seconds,
        metrics_port=METRICS_PORT,
        retention=spec.retention,
        partition_interval=spec.partition_interval,
        **({"log_level": spec.workers.log_level} if spec.workers.log_level else {}),  # unset: not rendered
    ))


def _deployment(owner: Owner, spec: GameDataSourceSpec, worker: str, image: str, settings: WorkerSpec,
                source: DataSource) -> Manifest:
    component = f"{worker}-worker"
    env = connection_env(source)
    env.append({"name": f"{ENV_PREFIX}NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}})
    env.append({"name": "MPLCONFIGDIR", "value": "/tmp"})
    owner_dsn = spec.postgres.migration_dsn_secret_ref
    if worker == "ingest" and owner_dsn is not None:  # the workers' role may not create partitions: the CronJob does
        env.append({"name": f"{ENV_PREFIX}PARTITION_MAINTENANCE", "value": "false"})
    main = container(
        worker, image, args=["worker", worker], env=env,
        ports=[{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        resources_=resources(settings.resources, memory="256Mi", memory_limit="1Gi"),
        # cheap endpoints (workers/runtime.serve): /metrics may run the exporter's whole database refresh
        liveness=http_probe("/livez", "metrics", period=20), readiness=http_probe("/readyz", "metrics", period=10),
        volume_mounts=[{"name": "tmp", "mountPath": "/tmp"}],
    )
    main["envFrom"] = [{"configMapRef": {"name": workers_config_name(owner.name)}}]
    # Every worker pod migrates the schema before it starts (serialised by an advisory lock: storage/migrate.py),
    # as the tables' owner when spec.postgres.migrationDsnSecretRef names one (the worker itself never gets it).
    migrate_env = [secret_env(f"{ENV_PREFIX}DSN", owner_dsn)] if owner_dsn is not None else env[:1]
    migrate = init_container("migrate", image, args=["migrate"], env=migrate_env,
                             resources_=resources(None, memory="128Mi", memory_limit="512Mi"))
    service_account = detection_account_name(owner.name) if worker == "detection" else None
    template_labels = {**labels(owner, component), LABEL_METRICS: "true"}
    return manifest("apps/v1", "Deployment", metadata(owner, deployment_name(owner.name, worker), component), spec={
        "replicas": settings.replicas,
        "selector": {"matchLabels": selector(owner, component)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
        "template": {
            "metadata": {"labels": template_labels},
            "spec": {**pod_spec([main], service_account=service_account,
                                volumes=[{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]),
                     "initContainers": [migrate], **scheduling(spec)},
        },
    })


def partitions_cronjob(owner: Owner, spec: GameDataSourceSpec, image: str) -> Manifest:
    """The hourly ``game-analytics partitions maintain`` as the tables' owner (``spec.postgres.
    migrationDsnSecretRef``): creating, attaching and dropping partitions of ``events`` needs ownership, which the
    workers' role does not have, so the ingest worker's own maintenance is off then.  Retention and interval come
    from the workers' ConfigMap."""
    assert spec.postgres.migration_dsn_secret_ref is not None
    cron = worker_cronjob(
        owner, name=partitions_cronjob_name(owner.name), component="partitions", schedule=PARTITIONS_SCHEDULE,
        time_zone="Etc/UTC", suspend=False, args=["partitions", "maintain"], image=image,
        env=[secret_env(f"{ENV_PREFIX}DSN", spec.postgres.migration_dsn_secret_ref)],
        env_from=[{"configMapRef": {"name": workers_config_name(owner.name)}}],
        config_map=workers_config_name(owner.name), active_deadline_seconds=900)  # fmt: skip
    cron["spec"]["jobTemplate"]["spec"]["template"]["spec"].update(scheduling(spec))
    return cron


def scheduling(spec: GameDataSourceSpec) -> dict[str, Any]:
    """The pod-spec fields of ``spec.workers`` that place and pull the worker pods (only those set): imagePullSecrets,
    nodeSelector, tolerations, priorityClassName, affinity."""
    workers = spec.workers
    out: dict[str, Any] = {}
    if workers.image_pull_secrets:
        out["imagePullSecrets"] = [{"name": ref.name} for ref in workers.image_pull_secrets]
    if workers.node_selector:
        out["nodeSelector"] = dict(workers.node_selector)
    if workers.tolerations:
        out["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in workers.tolerations]
    if workers.priority_class_name:
        out["priorityClassName"] = workers.priority_class_name
    if workers.affinity is not None:
        out["affinity"] = workers.affinity.to_pod_spec()
    return out


def detection_rbac(owner: Owner) -> list[Manifest]:
    """A ServiceAccount that may read this data source's detector ConfigMaps, and nothing else."""
    name = detection_account_name(owner.name)
    meta = lambda: metadata(owner, name, "detection-worker")  # noqa: E731 - fresh dict per object
    return [
        manifest("v1", "ServiceAccount", meta(), automountServiceAccountToken=True),
        manifest("rbac.authorization.k8s.io/v1", "Role", meta(), rules=[
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]},
        ]),
        manifest("rbac.authorization.k8s.io/v1", "RoleBinding", meta(),
                 roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                 subjects=[{"kind": "ServiceAccount", "name": name, "namespace": owner.namespace}]),
    ]


def render(owner: Owner, spec: GameDataSourceSpec, *, image: str, sentinel_master: str | None = None,
           redis_password_ref: SecretKeyRef | None = None, sentinel_password_ref: SecretKeyRef | None = None,
           monitoring_labels: Mapping[str, str] | None = None,
           alertmanager_urls: Sequence[str] = ()) -> list[Manifest]:
    """All children of a GameDataSource.

    Args:
        owner: the GameDataSource.
        spec: its validated spec.
        image: worker image (``spec.workers.image`` or the operator's default).
        sentinel_master: the referenced RedisFailover's master group name, when Redis is reached through Sentinels.
        redis_password_ref: the RedisFailover's auth SecretKeyRef, if it has one.
        sentinel_password_ref: the RedisFailover's ``sentinel.authSecretRef``, if it has one.
        monitoring_labels: the operator's default labels of the ServiceMonitor (``spec.monitoringLabels`` wins).
        alertmanager_urls: the operator's default Alertmanagers of the detection worker's streaming path
            (``spec.workers.detection.alertmanagerURLs`` wins), rendered as ``GAME_ANALYTICS_ALERTMANAGER_URLS``.
    """
    settings = worker_settings(owner, spec, sentinel_master)
    env = settings.to_env()
    env.pop(f"{ENV_PREFIX}NAMESPACE")  # from the downward API, so that it is always the pod's namespace
    env[f"{ENV_PREFIX}DETECTOR_SELECTOR"] = f"{LABEL_DETECTOR_CONFIG}=true,{LABEL_DATA_SOURCE}={owner.name}"
    if urls := list(spec.workers.detection.alertmanager_urls or alertmanager_urls):  # the streaming path
        env[f"{ENV_PREFIX}ALERTMANAGER_URLS"] = ",".join(urls)
    children = [config_map(owner, workers_config_name(owner.name), "workers-config", env)]
    children += detection_rbac(owner)
    source = DataSource(owner.name, spec, redis_password_ref=redis_password_ref,
                        sentinel_password_ref=sentinel_password_ref)
    for worker in WORKERS:
        worker_spec = getattr(spec.workers, worker)
        if worker_spec.replicas > 1:  # voluntary disruptions (drains) take one pod at a time
            children.append(pod_disruption_budget(owner, deployment_name(owner.name, worker), f"{worker}-worker"))
        children.append(_deployment(owner, spec, worker, spec.workers.image or image,
                                    getattr(spec.workers, worker), source))
    if spec.postgres.migration_dsn_secret_ref is not None:
        children.append(partitions_cronjob(owner, spec, spec.workers.image or image))
    metrics_selector = {"app.kubernetes.io/instance": owner.name, LABEL_METRICS: "true"}
    children.append(service(owner, metrics_service_name(owner.name), "metrics",
                            [{"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"}],
                            selector_labels=metrics_selector))
    children.append(manifest("monitoring.coreos.com/v1", "ServiceMonitor", monitoring_metadata(
            owner, owner.name, "metrics", monitoring_labels, spec.monitoring_labels), spec={
        "selector": {"matchLabels": selector(owner, "metrics")},
        "endpoints": [{"port": "metrics", "interval": "30s", "scrapeTimeout": "10s"}],
    }))
    return children
