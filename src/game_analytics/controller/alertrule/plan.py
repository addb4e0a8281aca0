"""AlertRule planning: check the rule, render it, and report the detector and the PromQL it compiled to, the mode,
the last 7 days backtested (:mod:`.backtests`) and the last measured quality of its detector type."""

from __future__ import annotations

from typing import Any

from ... import validation
from ...alerting import measured
from ...api import API_VERSION
from ...api.alertrule import AlertRuleSpec, AlertRuleStatus, DetectorQualityStatus, Mode
from ...config import Images
from ...monitoring import promql
from ..common.plan import (
    MONITORING_V1,
    MONITORING_V1ALPHA1,
    DependencyError,
    Plan,
    SecretUse,
    check_secrets,
    data_source,
    secret_value,
)
from ..common.render import Owner
from ..k8s import Cluster
from . import backtests, render
from .names import alert_name

CHILD_TYPES = [(MONITORING_V1, "PrometheusRule"), (MONITORING_V1ALPHA1, "AlertmanagerConfig"), ("v1", "ConfigMap")]


#: channel type -> (its Secret reference field in camelCase, its attribute, whether the value is a URL)
_CHANNEL_SECRETS = {
    "slack": (("apiURLSecretRef", "api_url_secret_ref", True),),
    "discord": (("webhookURLSecretRef", "webhook_url_secret_ref", True),),
    "pagerduty": (("routingKeySecretRef", "routing_key_secret_ref", False),),
    "email": (("authPasswordSecretRef", "auth_password_secret_ref", False),),
    "webhook": (("urlSecretRef", "url_secret_ref", True),),
}


def secret_uses(spec: AlertRuleSpec) -> list[SecretUse]:
    """Every Secret key the channels reference, named by its field (``spec.channels[0].slack.apiURLSecretRef``)."""
    uses = []
    for i, channel in enumerate(spec.channels):
        kind = channel.type()
        for field, attr, is_url in _CHANNEL_SECRETS[kind]:
            ref = getattr(getattr(channel, kind), attr)
            if ref is not None:
                uses.append(SecretUse(f"spec.channels[{i}].{kind}.{field}", ref, url=is_url))
    return uses


def check_unique_alert_name(owner: Owner, cluster: Cluster, body: Any) -> None:
    """No older AlertRule of the namespace renders the same Prometheus alert name (``x-1`` and ``x1`` both give
    ``X1``); the older one (by creation time, then name) keeps it.

    Raises:
        DependencyError: ``DuplicateAlertName`` naming ``metadata.name`` and the other AlertRule.
    """
    mine = alert_name(owner.name)
    created = ((body or {}).get("metadata") or {}).get("creationTimestamp") or "~"
    # names first: only a rule whose name renders the same alert name is read (at 1,000 rules, reading them all
    # on every reconcile was a million objects per resync round)
    same = [n for n in cluster.names(API_VERSION, "AlertRule", owner.namespace)
            if n != owner.name and alert_name(n) == mine]
    for name in same:
        other = cluster.get(API_VERSION, "AlertRule", owner.namespace, name)
        if other is None:
            continue
        meta = other.get("metadata") or {}
        if (meta.get("creationTimestamp") or "~", meta["name"]) < (created, owner.name):
            raise DependencyError("DuplicateAlertName",
                                  f"metadata.name: the alert name {mine} is already used by AlertRule "
                                  f"{owner.namespace}/{meta['name']}; rename one of them")


def quality(detector: str) -> DetectorQualityStatus | None:
    """``status.quality``: the detector type's figures from the shipped measurement (:mod:`...alerting.measured`),
    None for a type it does not hold (or when the file is unreadable)."""
    try:
        q = measured.load().get(detector)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if q is None:
        return None
    return DetectorQualityStatus(precision=q.precision, recall=q.recall, false_pages_per_week=q.false_pages_per_week,
                                 plants=q.plants, measured_at=q.measured_at, source=q.source)


def plan(owner: Owner, spec: Any, cluster: Cluster, images: Images, body: Any = None) -> Plan:
    """Children from :func:`.render.render`; status ``detector``, ``expression`` (None while suspended),
    ``mode``, ``quality`` and, with ``images.backtest``, ``backtest`` and the ``Backtested`` condition
    (:meth:`.backtests.Backtester.lookup`: never waits long, never raises for a failed backtest).

    Raises:
        SpecError: the rule fails the checks the CRD schema cannot express, or Prometheus would refuse the
            rendered rule (:func:`validation.check_rendered_alert_rule`); the message names the spec field.
        DependencyError: the GameDataSource (``DataSourceNotFound``) or a channel's Secret (``SecretNotFound``,
            ``SecretValueInvalid``) is missing or unusable, or another AlertRule has the same alert name.
    """
    validation.check_alert_rule(spec)
    try:
        children = render.render(owner, spec, images.monitoring_labels, images.grafana_url or None)
    except promql.InvalidPromQL as exc:  # a template fed a value the schema let through: report, never retry
        raise validation.SpecError(f"spec.detector.{spec.detector.kind()}",
                                   f"renders PromQL that does not parse: {exc}") from None
    live = spec if spec.mode is Mode.LIVE else spec.model_copy(update={"mode": Mode.LIVE})
    expr = promql.render(spec.detector, promql.rule_id(owner.namespace, owner.name))
    # a DryRun rule is checked as the alert it becomes when switched to Live (its annotations included)
    validation.check_rendered_alert_rule(spec, children[0] if live is spec else render.prometheus_rule(
        owner, live, expr, images.monitoring_labels, images.grafana_url or None))
    source = data_source(cluster, owner.namespace, spec.data_source_ref.name, uses_redis=False)
    check_secrets(cluster, owner.namespace, secret_uses(spec))
    check_unique_alert_name(owner, cluster, body)
    required = {MONITORING_V1} | ({MONITORING_V1ALPHA1} if spec.channels and spec.mode is Mode.LIVE else set())
    status = AlertRuleStatus(detector=spec.detector.kind(), expression=None if spec.suspend else expr,
                             mode=spec.mode, quality=quality(spec.detector.kind()))
    extra = []
    if images.backtest is not None:
        where = backtests.Source(secret_value(cluster, owner.namespace, source.spec.postgres.dsn_secret_ref),
                                 tuple(source.spec.games), images.prometheus_url)
        status.backtest, condition = backtests.backtester(images.backtest).lookup(
            owner, spec, where, None if body is None else body.get("status"))
        extra.append(condition)
    return Plan(children, CHILD_TYPES, required, status, conditions=extra)
