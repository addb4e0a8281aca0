"""ScheduledReport -> a CronJob running the report worker, and the ConfigMap describing the report."""

from __future__ import annotations

import json

from ...api.scheduledreport import ScheduledReportSpec
from ...settings import ENV_PREFIX
from ..common.cronjob import CONFIG_DIR, data_source_env, worker_cronjob
from ..common.render import DataSource, Manifest, Owner, config_map, secret_env
from .names import COMPONENT, REPORT_CONFIG_KEY, config_map_name, cronjob_name

__all__ = ["REPORT_CONFIG_KEY", "render", "report_document"]


def report_document(owner: Owner, spec: ScheduledReportSpec) -> dict:
    """What the report worker needs to render and deliver one run (secrets stay out: only their references)."""
    return {"name": owner.name, "namespace": owner.namespace, **spec.to_api()}


def render(owner: Owner, spec: ScheduledReportSpec, *, image: str, data_source: DataSource) -> list[Manifest]:
    """The report's ConfigMap and CronJob."""
    cm_name = config_map_name(owner.name)
    env, env_from = data_source_env(data_source)
    if spec.delivery.webhook:
        env.append(secret_env(f"{ENV_PREFIX}REPORT_WEBHOOK_URL", spec.delivery.webhook.url_secret_ref))
    if spec.delivery.email and spec.delivery.email.smtp.password_secret_ref:
        env.append(secret_env(f"{ENV_PREFIX}REPORT_SMTP_PASSWORD", spec.delivery.email.smtp.password_secret_ref))
    document = json.dumps(report_document(owner, spec), sort_keys=True, indent=2)
    return [
        config_map(owner, cm_name, COMPONENT, {REPORT_CONFIG_KEY: document}),
        worker_cronjob(
            owner, name=cronjob_name(owner.name), component=COMPONENT, schedule=spec.schedule, time_zone=spec.time_zone,
            suspend=spec.suspend, args=["worker", "report", "--config", f"{CONFIG_DIR}/{REPORT_CONFIG_KEY}"],
            image=image, env=env, env_from=env_from, config_map=cm_name,
            starting_deadline_seconds=spec.starting_deadline_seconds,
            successful_history=spec.successful_runs_history_limit, failed_history=spec.failed_runs_history_limit,
        ),
    ]
