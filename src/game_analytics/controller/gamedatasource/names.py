"""Names and labels of a GameDataSource's children (``<name>`` is the GameDataSource's name)."""

from __future__ import annotations

#: The long-running workers, one Deployment each.
WORKERS = ("ingest", "exporter", "detection")
METRICS_PORT = 9102
#: Pod label selecting the workers the metrics Service fronts.
LABEL_METRICS = "gameanalytics.io/metrics"


def workers_config_name(name: str) -> str:
    """The ConfigMap of settings every worker of the data source shares: ``<name>-workers``."""
    return f"{name}-workers"


def deployment_name(name: str, worker: str) -> str:
    """A worker's Deployment: ``<name>-<worker>`` (``worker`` one of :data:`WORKERS`)."""
    return f"{name}-{worker}"


def detection_account_name(name: str) -> str:
    """ServiceAccount, Role and RoleBinding of the detection worker: ``<name>-detection``."""
    return f"{name}-detection"


def metrics_service_name(name: str) -> str:
    """The metrics Service: ``<name>-metrics`` (the ServiceMonitor carries the plain ``<name>``)."""
    return f"{name}-metrics"


def partitions_cronjob_name(name: str) -> str:
    """The hourly partition-maintenance CronJob (only with ``spec.postgres.migrationDsnSecretRef``):
    ``<name>-partitions``."""
    return f"{name}-partitions"
