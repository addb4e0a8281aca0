"""AlertRule planning: check the rule, render it, and report the detector and the PromQL it compiled to."""

from __future__ import annotations

from typing import Any

from ... import validation
from ...api.alertrule import AlertRuleStatus
from ...config import Images
from ...monitoring import promql
from ..common.plan import MONITORING_V1, MONITORING_V1ALPHA1, Plan
from ..common.render import Owner
from ..k8s import Cluster
from . import render

CHILD_TYPES = [(MONITORING_V1, "PrometheusRule"), (MONITORING_V1ALPHA1, "AlertmanagerConfig"), ("v1", "ConfigMap")]


def plan(owner: Owner, spec: Any, cluster: Cluster, images: Images, body: Any = None) -> Plan:
    """Children from :func:`.render.render`; status ``detector`` and ``expression`` (None while suspended).

    Raises:
        SpecError: the rule fails the checks the CRD schema cannot express, or Prometheus would refuse the
            rendered rule (:func:`validation.check_rendered_alert_rule`); the message names the spec field.
    """
    validation.check_alert_rule(spec)
    try:
        children = render.render(owner, spec, images.monitoring_labels)
    except promql.InvalidPromQL as exc:  # a template fed a value the schema let through: report, never retry
        raise validation.SpecError(f"spec.detector.{spec.detector.kind()}",
                                   f"renders PromQL that does not parse: {exc}") from None
    validation.check_rendered_alert_rule(spec, children[0])
    required = {MONITORING_V1} | ({MONITORING_V1ALPHA1} if spec.channels else set())
    expr = children[0]["spec"]["groups"][0]["rules"][0]["expr"] if not spec.suspend else None
    return Plan(children, CHILD_TYPES, required, AlertRuleStatus(detector=spec.detector.kind(), expression=expr))
