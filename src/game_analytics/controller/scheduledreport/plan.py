"""ScheduledReport planning: resolve the data source, render the CronJob, report the run history."""

from __future__ import annotations

from typing import Any

from ... import validation
from ...api.scheduledreport import ScheduledReportStatus
from ...config import Images
from ..common.plan import Plan, data_source, run_history
from ..common.render import Owner
from ..k8s import Cluster
from . import names, render

CHILD_TYPES = [("v1", "ConfigMap"), ("batch/v1", "CronJob")]


def plan(owner: Owner, spec: Any, cluster: Cluster, images: Images, body: Any = None) -> Plan:
    """Children from :func:`.render.render`; status from the CronJob and the Jobs it left.

    Raises:
        SpecError: bad schedule, time zone or delivery settings.
        DependencyError: the referenced GameDataSource is missing or invalid.
    """
    validation.check_scheduled_report(spec)
    source = data_source(cluster, owner.namespace, spec.data_source_ref.name, uses_redis=False)  # reports read PostgreSQL only
    children = render.render(owner, spec, image=images.worker, data_source=source)
    history = run_history(cluster, owner, names.cronjob_name(owner.name), names.COMPONENT)
    return Plan(children, CHILD_TYPES, status=ScheduledReportStatus(
        last_schedule_time=history.last_schedule_time, last_successful_time=history.last_successful_time,
        last_outcome=history.last_outcome, consecutive_failures=history.consecutive_failures))
