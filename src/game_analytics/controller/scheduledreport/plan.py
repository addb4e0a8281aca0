"""ScheduledReport planning: resolve the data source, render the CronJob, report the run history."""

from __future__ import annotations

from typing import Any

from ... import validation
from ...api.scheduledreport import ScheduledReportStatus
from ...config import Images
from ..common.plan import DependencyError, Plan, SecretUse, check_secrets, data_source, run_history
from ..common.render import Owner
from ..k8s import Cluster
from . import names, render

CHILD_TYPES = [("v1", "ConfigMap"), ("batch/v1", "CronJob")]


def secret_uses(spec: Any, images: Images) -> list[SecretUse]:
    """The Secret keys the delivery references; the webhook's must hold an http(s) URL of an allowed host."""
    uses = []
    if spec.delivery.webhook:
        uses.append(SecretUse("spec.delivery.webhook.urlSecretRef", spec.delivery.webhook.url_secret_ref, url=True,
                              allowed_hosts=images.allowed_webhook_hosts))
    if spec.delivery.email and spec.delivery.email.smtp.password_secret_ref:
        uses.append(SecretUse("spec.delivery.email.smtp.passwordSecretRef",
                              spec.delivery.email.smtp.password_secret_ref))
    return uses


def check_recipients(spec: Any, images: Images) -> None:
    """Every e-mail recipient's domain is in the operator's allow-list (chart value
    ``reports.allowedRecipientDomains``; empty allows all).

    Raises:
        DependencyError: ``RecipientNotAllowed`` naming ``spec.delivery.email.to[i]``.
    """
    if not spec.delivery.email:
        return
    for i, address in enumerate(spec.delivery.email.to):
        domain = address.rstrip(">").rpartition("@")[2]
        if not validation.host_allowed(domain, images.allowed_recipient_domains):
            raise DependencyError("RecipientNotAllowed",
                                  f"spec.delivery.email.to[{i}]: domain {domain} is not in the operator's allowed "
                                  f"recipient domains ({', '.join(images.allowed_recipient_domains)})")


def plan(owner: Owner, spec: Any, cluster: Cluster, images: Images, body: Any = None) -> Plan:
    """Children from :func:`.render.render`; status from the CronJob and the Jobs it left.

    Raises:
        SpecError: bad schedule, time zone or delivery settings.
        DependencyError: the referenced GameDataSource is missing or invalid.

    A delivery Secret that is missing or whose webhook URL is not an allowed http(s) URL, or a recipient outside
    the allowed domains, makes the plan ``not_ready`` (naming the field) with the CronJob rendered suspended: a
    report that was running stops sending when the allow-list is tightened.
    """
    validation.check_scheduled_report(spec)
    source = data_source(cluster, owner.namespace, spec.data_source_ref.name, uses_redis=False)  # reports read PostgreSQL only
    try:
        check_recipients(spec, images)
        check_secrets(cluster, owner.namespace, secret_uses(spec, images))
        blocked = None
    except DependencyError as exc:  # a delivery that must not (or cannot) happen: keep the CronJob, suspended
        blocked = (exc.reason, exc.message)
        spec = spec.model_copy(update={"suspend": True})
    children = render.render(owner, spec, image=images.worker, data_source=source)
    history = run_history(cluster, owner, names.cronjob_name(owner.name), names.COMPONENT)
    return Plan(children, CHILD_TYPES, not_ready=blocked, status=ScheduledReportStatus(
        last_schedule_time=history.last_schedule_time, last_successful_time=history.last_successful_time,
        last_outcome=history.last_outcome, consecutive_failures=history.consecutive_failures))
