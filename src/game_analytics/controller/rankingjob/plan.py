"""RankingJob planning: resolve the data source, render the CronJobs, report the last run.

``lastRunTime`` is the rating CronJob's last successful schedule. ``season`` and ``playersRated`` are what the
newest succeeded worker pod (rating or season reset) reported in its termination message: the ranking worker
writes its status fields there (``--status-file``, see :data:`.names.STATUS_FILE`), as a partial
:class:`~game_analytics.api.rankingjob.RankingJobStatus` in JSON. While no such pod is left (Pods are removed
with their Jobs), the fields are not written and keep their last value.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from ... import validation
from ...api.rankingjob import RankingJobStatus
from ...config import Images
from ..common.plan import Plan, data_source, owned_selector, run_history, termination_messages
from ..common.render import Owner
from ..k8s import Cluster
from . import names, render

CHILD_TYPES = [("v1", "ConfigMap"), ("batch/v1", "CronJob")]


def last_reported(cluster: Cluster, owner: Owner) -> RankingJobStatus | None:
    """The status fields in the termination message of the newest succeeded rating or season-reset pod.

    Returns None when there is no such pod, or its message is not a status document (e.g. an older worker).
    """
    components = (names.COMPONENT, names.SEASON_RESET_COMPONENT)
    succeeded = [pod for component in components
                 for pod in cluster.list("v1", "Pod", owner.namespace, owned_selector(owner, component))
                 if (pod.get("status") or {}).get("phase") == "Succeeded"]
    for message in termination_messages(succeeded, *components):
        try:
            return RankingJobStatus.model_validate(json.loads(message))
        except (ValueError, ValidationError):
            continue
    return None


def plan(owner: Owner, spec: Any, cluster: Cluster, images: Images, body: Any = None) -> Plan:
    """Children from :func:`.render.render`; status ``lastRunTime``, ``season`` and ``playersRated``.

    Raises:
        SpecError: bad schedule, time zone or leagues.
        DependencyError: the referenced GameDataSource is missing or invalid.
    """
    validation.check_ranking_job(spec)
    source = data_source(cluster, owner.namespace, spec.data_source_ref.name, uses_redis=True)
    children = render.render(owner, spec, image=images.worker, data_source=source)
    history = run_history(cluster, owner, names.cronjob_name(owner.name), names.COMPONENT)
    reported = last_reported(cluster, owner)
    return Plan(children, CHILD_TYPES, status=RankingJobStatus(
        last_run_time=history.last_successful_time,
        season=reported.season if reported else None,
        players_rated=reported.players_rated if reported else None))
