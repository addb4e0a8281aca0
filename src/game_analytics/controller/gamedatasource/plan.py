"""GameDataSource planning: resolve the RedisFailover it may use, render the workers, count the ready ones."""

from __future__ import annotations

from typing import Any

from ...api.gamedatasource import GameDataSourceStatus
from ...config import Images
from ..common.plan import MONITORING_V1, Plan, SecretUse, check_secrets, resolve_data_source
from ..common.render import Owner
from ..k8s import Cluster
from . import names, render

CHILD_TYPES = [("v1", "ConfigMap"), ("v1", "ServiceAccount"), ("rbac.authorization.k8s.io/v1", "Role"),
               ("rbac.authorization.k8s.io/v1", "RoleBinding"), ("apps/v1", "Deployment"), ("batch/v1", "CronJob"),
               ("v1", "Service"),
               (MONITORING_V1, "ServiceMonitor"), ("policy/v1", "PodDisruptionBudget")]


def plan(owner: Owner, spec: Any, cluster: Cluster, images: Images, body: Any = None) -> Plan:
    """Children from :func:`.render.render`; status ``readyWorkers``: Deployments with all replicas available.

    Raises:
        DependencyError: ``spec.redis.sentinel`` names a RedisFailover that does not exist, or a referenced
            Secret key is missing (``SecretNotFound``, naming ``spec.postgres.dsnSecretRef`` ...).
    """
    uses = [SecretUse("spec.postgres.dsnSecretRef", spec.postgres.dsn_secret_ref)]
    if spec.postgres.migration_dsn_secret_ref:
        uses.append(SecretUse("spec.postgres.migrationDsnSecretRef", spec.postgres.migration_dsn_secret_ref))
    if spec.redis.url_secret_ref:
        uses.append(SecretUse("spec.redis.urlSecretRef", spec.redis.url_secret_ref))
    check_secrets(cluster, owner.namespace, uses)
    source = resolve_data_source(cluster, owner.namespace, owner.name, spec)
    children = render.render(owner, spec, image=images.worker, sentinel_master=source.sentinel_master,
                             redis_password_ref=source.redis_password_ref,
                             sentinel_password_ref=source.sentinel_password_ref,
                             monitoring_labels=images.monitoring_labels,
                             alertmanager_urls=images.alertmanager_urls)
    available = 0
    for worker in names.WORKERS:
        deployment = cluster.get("apps/v1", "Deployment", owner.namespace,
                                 names.deployment_name(owner.name, worker)) or {}
        want = (deployment.get("spec") or {}).get("replicas", 1)
        available += (deployment.get("status") or {}).get("availableReplicas", 0) >= want > 0
    return Plan(children, CHILD_TYPES, status=GameDataSourceStatus(ready_workers=available))
