"""Which Kubernetes Job run this process is, so that a retried Job can tell what its earlier attempts did.

A CronJob names each Job ``<cronjob>-<scheduled time in minutes since the Unix epoch>`` and every pod of that Job
(a restarted container or a new pod after a failure) carries it in the label ``batch.kubernetes.io/job-name``.  The
workers key what must happen once per scheduled run on it: the report worker records per-channel delivery under
it (a retry sends only to the channels that failed) and the ranking worker keys a season reset to the scheduled
time (a retried reset is a no-op).

Sources, first found wins: ``GAME_ANALYTICS_JOB_NAME`` (rendered from the downward API label, where the operator
does so), else the pod's hostname when it has a Job pod's shape ``<job>-<5 random chars>`` with the ``<job>``
part ending in the 8-digit minute count (the Job controller truncates long pod names, which then do not match).
"""

from __future__ import annotations

import os
import re
import socket
from datetime import UTC, datetime, timedelta

__all__ = ["ENV_JOB_NAME", "job_name", "scheduled_time"]

ENV_JOB_NAME = "GAME_ANALYTICS_JOB_NAME"

# Pod name of a CronJob's Job: <cronjob>-<minutes, 8 digits until the year 2160>-<5 chars of the name generator>.
_POD = re.compile(r"^(?P<job>[a-z0-9][a-z0-9.-]*-\d{8})-[a-z0-9]{5}$")
_JOB = re.compile(r"^[a-z0-9][a-z0-9.-]*-(?P<minutes>\d{8})$")


def job_name(environ: dict[str, str] | None = None, hostname: str | None = None) -> str | None:
    """This run's Job name (see the module docstring), or None outside a CronJob's Job."""
    env = os.environ if environ is None else environ
    if name := env.get(ENV_JOB_NAME, "").strip():
        return name
    found = _POD.match(hostname if hostname is not None else env.get("HOSTNAME") or socket.gethostname())
    return found.group("job") if found else None


def scheduled_time(name: str | None) -> datetime | None:
    """The scheduled time (UTC) encoded in a CronJob's Job name ``<cronjob>-<minutes since epoch>``, or None."""
    found = _JOB.match(name or "")
    if not found:
        return None
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(minutes=int(found.group("minutes")))
