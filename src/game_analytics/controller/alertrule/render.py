"""AlertRule -> PrometheusRule, AlertmanagerConfig and the detection worker's rule ConfigMap."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote_plus

from ...alerting.routing import DEFAULT_ROUTE
from ...api.alertrule import AlertRuleSpec, Channel, Mode
from ...monitoring import names, promql
from ..common.render import Manifest, Owner, config_map, manifest, monitoring_metadata
from .names import (
    DETECTOR_CONFIG_KEY,
    LABEL_DATA_SOURCE,
    LABEL_DETECTOR_CONFIG,
    alert_name,
    detector_config_name,
    rule_object_name,
)

__all__ = ["ALERTS_DASHBOARD_UID", "DETECTOR_CONFIG_KEY", "LABEL_DATA_SOURCE", "LABEL_DETECTOR_CONFIG", "alert", "alert_name",
           "alertmanager_config", "detector_config", "page_annotations", "prometheus_rule", "receiver", "render"]


#: the dashboard a page links to (``monitoring/dashboards.py``: uid prefix + slug)
ALERTS_DASHBOARD_UID = "game-analytics-alerts"


def page_annotations(owner: Owner, spec: AlertRuleSpec, grafana_url: str | None = None) -> dict[str, str]:
    """``summary``, ``description`` and (with ``grafana_url``) ``dashboard_url`` of the alert, as Prometheus
    alert templates: what an on-call reads first.

    The summary names the game (the alert's ``game`` label when the expression keeps one), the detector and, for
    the worker-evaluated detectors, how many subjects are flagged (the alert's value). For those the description
    lists the top cases (at most ``names.TOP_CASES``, highest score first): their intervention ids, read with
    ``query`` from the worker's bounded top-case gauge (:func:`promql.top_cases`, sorted by ``rank``), each with
    its subject where the query result carries one (the streaming path's does; Prometheus holds no subject ids,
    the alerts dashboard's SQL panel lists them), and says how to list them all
    (``game-analytics interventions list --rule``). ``dashboard_url`` opens the alerts dashboard
    with its ``namespace``, ``game`` and ``rule`` variables set.
    """
    rule, kind = promql.rule_id(owner.namespace, owner.name), spec.detector.kind()
    game = "{{ with $labels.game }}{{ . }}{{ else }}all games{{ end }}"
    if kind in promql.WORKER_EVALUATED:
        summary = f"{game}: {{{{ $value }}}} subjects flagged by {kind} (AlertRule {rule})"
        top = (f"{{{{ range query `{promql.top_cases(rule)}` | sortByLabel \"rank\" }}}} #{{{{ .Labels.rank }}}} "
               "{{ with .Labels.subject }}{{ . }} {{ end }}(intervention {{ .Value }}){{ else }} not known yet"
               "{{ end }}")
        description = (f"AlertRule {rule} ({kind}, severity {spec.severity.value}) flags {{{{ $value }}}} subjects "
                       f"in {game}. Top cases:{top}. All of them: game-analytics "
                       f"interventions list --rule {rule} --status open")
    else:
        summary = f"{game}: {kind} at {{{{ $value }}}} (AlertRule {rule})"
        description = (f"AlertRule {rule} ({kind}, severity {spec.severity.value}) fired with value "
                       f"{{{{ $value }}}}{{{{ with $labels.game }}}} in game {{{{ . }}}}{{{{ end }}}}.")
    out = {"summary": summary, "description": description}
    if grafana_url:
        out["dashboard_url"] = (f"{grafana_url.rstrip('/')}/d/{ALERTS_DASHBOARD_UID}?var-namespace={owner.namespace}"
                                "&var-game={{ with $labels.game }}{{ . }}{{ else }}$__all{{ end }}"
                                f"&var-rule={quote_plus(rule)}")
    return out


def alert(owner: Owner, spec: AlertRuleSpec, grafana_url: str | None = None) -> dict[str, Any]:
    """THE alert of this rule without its expression: ``{"alert", "for", "labels", "annotations"}`` (label and
    annotation values are Prometheus templates). The PrometheusRule (:func:`prometheus_rule`) and the detection
    worker's streaming path (the ``alert`` key of :func:`detector_config`) both take it from here, so that
    both paths send Alertmanager the same alert.

    The labels always carry ``namespace: <the AlertRule's namespace>`` (after ``spec.labels``, so it cannot be
    overridden): prometheus-operator's AlertmanagerConfig matcher strategy ``OnNamespace`` routes only alerts
    whose ``namespace`` label equals the AlertmanagerConfig's namespace.
    """
    return {
        "alert": alert_name(owner.name),
        "for": spec.for_,
        "labels": {
            **spec.labels,
            "severity": spec.severity.value,
            "team": spec.team,
            "category": spec.category.value,
            "rule": promql.rule_id(owner.namespace, owner.name),
            "namespace": owner.namespace,
        },
        "annotations": {
            **page_annotations(owner, spec, grafana_url),
            **spec.annotations,
            "runbook_url": spec.runbook_url,
        },
    }


def prometheus_rule(owner: Owner, spec: AlertRuleSpec, expr: str,
                    monitoring_labels: Mapping[str, str] | None = None, grafana_url: str | None = None) -> Manifest:
    """The ``monitoring.coreos.com/v1`` PrometheusRule holding this rule's one alert (:func:`alert` with
    ``expr``; none while suspended). Its metadata labels are ``monitoring_labels`` (the operator's default)
    merged with ``spec.monitoringLabels``.

    A ``DryRun`` rule gets a recording rule instead (:data:`names.DRY_RUN_CONDITION`, the alert's labels plus
    ``alertname``): Prometheus evaluates the condition but sends Alertmanager nothing, so no route of the cluster,
    its root route included, can page anyone (docs/backtest.md).
    """
    rule = promql.rule_id(owner.namespace, owner.name)
    fields = alert(owner, spec, grafana_url)
    if spec.mode is Mode.DRY_RUN:
        entry = {"record": names.DRY_RUN_CONDITION, "expr": expr,
                 "labels": {**fields["labels"], "alertname": fields["alert"]}}
    else:
        entry = {"alert": fields["alert"], "expr": expr, "for": fields["for"], "labels": fields["labels"],
                 "annotations": fields["annotations"]}
    group = {"name": f"gameanalytics.io/{rule}", "rules": [] if spec.suspend else [entry]}
    meta = monitoring_metadata(owner, rule_object_name(owner.name), "alert-rule", monitoring_labels,
                               spec.monitoring_labels)
    return manifest("monitoring.coreos.com/v1", "PrometheusRule", meta, spec={"groups": [group]})


def _secret(ref: Any) -> dict[str, str]:
    return {"name": ref.name, "key": ref.key}


def receiver(channel: Channel) -> dict[str, Any]:
    """One AlertmanagerConfig receiver for a channel; secrets stay in Secrets and are referenced by key."""
    kind = channel.type()
    if kind == "slack":
        cfg = {"slackConfigs": [{"apiURL": _secret(channel.slack.api_url_secret_ref), "channel": channel.slack.channel,
                                 "sendResolved": True}]}
    elif kind == "discord":
        cfg = {"discordConfigs": [{"apiURL": _secret(channel.discord.webhook_url_secret_ref), "sendResolved": True}]}
    elif kind == "pagerduty":
        cfg = {"pagerdutyConfigs": [{"routingKey": _secret(channel.pagerduty.routing_key_secret_ref),
                                     "sendResolved": True}]}
    elif kind == "email":
        e = channel.email
        email: dict[str, Any] = {"to": e.to, "from": e.from_, "smarthost": e.smarthost, "requireTLS": e.require_tls,
                                 "sendResolved": True}
        if e.auth_username:
            email["authUsername"] = e.auth_username
        if e.auth_password_secret_ref:
            email["authPassword"] = _secret(e.auth_password_secret_ref)
        cfg = {"emailConfigs": [email]}
    else:
        cfg = {"webhookConfigs": [{"urlSecret": _secret(channel.webhook.url_secret_ref), "sendResolved": True}]}
    return {"name": channel.name, **cfg}


def alertmanager_config(owner: Owner, spec: AlertRuleSpec,
                        monitoring_labels: Mapping[str, str] | None = None) -> Manifest | None:
    """The ``monitoring.coreos.com/v1alpha1`` AlertmanagerConfig routing this rule's alerts to its channels.

    Every channel gets the alert (one child route each, ``continue: true``). A warning is inhibited while a
    critical alert of the same rule fires. Returns None when the rule has no channels (the cluster's default
    route then applies) and for a ``DryRun`` rule (no route to any receiver: its alert is never sent).
    """
    if not spec.channels or spec.mode is Mode.DRY_RUN:
        return None
    rule = promql.rule_id(owner.namespace, owner.name)
    match_rule = {"name": "rule", "value": rule, "matchType": "="}
    route = {
        "receiver": spec.channels[0].name,
        "groupBy": list(DEFAULT_ROUTE.group_by),
        "groupWait": DEFAULT_ROUTE.group_wait,
        "groupInterval": DEFAULT_ROUTE.group_interval,
        "repeatInterval": DEFAULT_ROUTE.repeat_interval,
        "matchers": [match_rule],
        "routes": [{"receiver": ch.name, "matchers": [match_rule], "continue": True} for ch in spec.channels],
    }
    inhibit = {
        "sourceMatch": [{"name": "severity", "value": "critical", "matchType": "="}, match_rule],
        "targetMatch": [{"name": "severity", "value": "warning", "matchType": "="}, match_rule],
        "equal": ["alertname"],
    }
    meta = monitoring_metadata(owner, rule_object_name(owner.name), "alert-rule", monitoring_labels,
                               spec.monitoring_labels)
    return manifest("monitoring.coreos.com/v1alpha1", "AlertmanagerConfig", meta,
                    spec={"route": route, "receivers": [receiver(c) for c in spec.channels], "inhibitRules": [inhibit]})


def detector_config(owner: Owner, spec: AlertRuleSpec, grafana_url: str | None = None) -> Manifest:
    """The ConfigMap the detection worker reads: which detector to run, its parameters, the rule's labels,
    ``autoResolveAfter`` when the spec sets it, and ``alert``: the rule's alert (:func:`alert`), which the
    worker's streaming path posts to Alertmanager; a ``DryRun`` rule has no ``alert`` (the streaming path sends
    nothing) and ``"mode": "DryRun"`` (the worker evaluates and exports it but records no detection or case)."""
    dry_run = spec.mode is Mode.DRY_RUN
    document = {
        **({"mode": spec.mode.value} if dry_run else {"alert": alert(owner, spec, grafana_url)}),
        "rule": promql.rule_id(owner.namespace, owner.name),
        "category": spec.category.value,
        "severity": spec.severity.value,
        "detector": spec.detector.kind(),
        "params": spec.detector.params().to_api(),
        "suspended": spec.suspend,
        **({"autoResolveAfter": spec.auto_resolve_after} if spec.auto_resolve_after else {}),
    }
    return config_map(owner, detector_config_name(owner.name), "detector-config",
                      {DETECTOR_CONFIG_KEY: json.dumps(document, sort_keys=True, indent=2)},
                      **{LABEL_DETECTOR_CONFIG: "true", LABEL_DATA_SOURCE: spec.data_source_ref.name})


def render(owner: Owner, spec: AlertRuleSpec, monitoring_labels: Mapping[str, str] | None = None,
           grafana_url: str | None = None) -> list[Manifest]:
    """All children of an AlertRule; ``monitoring_labels`` are the operator's default labels of the
    PrometheusRule and AlertmanagerConfig (``spec.monitoringLabels`` wins); ``grafana_url`` (the operator's
    Grafana base URL, optional) makes the page link the alerts dashboard.

    Raises:
        promql.InvalidPromQL: if a raw ``promql`` detector does not parse; nothing should be created then.
    """
    expr = promql.render(spec.detector, promql.rule_id(owner.namespace, owner.name))
    children = [prometheus_rule(owner, spec, expr, monitoring_labels, grafana_url),
                detector_config(owner, spec, grafana_url)]
    amc = alertmanager_config(owner, spec, monitoring_labels)
    return children + ([amc] if amc else [])
