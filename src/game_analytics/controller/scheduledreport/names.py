"""Names of a ScheduledReport's children (``<name>`` is the ScheduledReport's name)."""

from __future__ import annotations

#: ``app.kubernetes.io/component`` of the report CronJob, its Jobs and its ConfigMap.
COMPONENT = "report"
REPORT_CONFIG_KEY = "report.json"


def config_map_name(name: str) -> str:
    """The report document's ConfigMap: ``<name>-report``."""
    return f"{name}-{COMPONENT}"


def cronjob_name(name: str) -> str:
    """The report CronJob: ``<name>-report``."""
    return f"{name}-{COMPONENT}"
