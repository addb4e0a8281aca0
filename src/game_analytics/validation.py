"""Semantic checks of specs that the CRD schema and CEL cannot express (cron grammar, time zones, PromQL).

Every failure is a :class:`SpecError` naming the offending field by its path in the manifest, e.g.
``spec.detector.promql.expr``, so that ``kubectl describe`` tells the user exactly what to fix.
"""

from __future__ import annotations

from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import ValidationError

from .api.alertrule import AlertRuleSpec
from .api.rankingjob import RankingJobSpec
from .api.scheduledreport import ScheduledReportSpec
from .monitoring import promql, rulecheck


class SpecError(ValueError):
    """An invalid spec. ``field`` is the dotted path of the offending field (``spec.schedule``)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def from_validation_error(exc: ValidationError) -> SpecError:
    """The first pydantic error as a :class:`SpecError` with a ``spec.``-rooted field path."""
    first = exc.errors()[0]
    path = ".".join(str(p) for p in ("spec", *first["loc"]) if p != "[key]")  # a map key's error: the key's path
    return SpecError(path, first["msg"])


def check_cron(field: str, expression: str) -> None:
    """Raises :class:`SpecError` unless ``expression`` is a valid five-field cron expression or macro."""
    if len(expression.split()) != 5 and not expression.startswith("@"):
        raise SpecError(field, f"{expression!r} is not a five-field cron expression")
    if not croniter.is_valid(expression):
        raise SpecError(field, f"{expression!r} is not a valid cron expression")


def check_time_zone(field: str, name: str) -> None:
    """Raises :class:`SpecError` unless ``name`` is a time zone in the IANA database."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SpecError(field, f"{name!r} is not a known IANA time zone") from None


def host_allowed(host: str, allowed: tuple[str, ...] | list[str]) -> bool:
    """Whether ``host`` (a host name or an e-mail domain) is one of ``allowed`` or a subdomain of one; an empty
    ``allowed`` allows every host. Case-insensitive."""
    host = host.lower().rstrip(".")
    return not allowed or any(host == a.lower() or host.endswith("." + a.lower().lstrip(".")) for a in allowed)


def url_problem(value: str, allowed_hosts: tuple[str, ...] = ()) -> str | None:
    """Why ``value`` is not a usable webhook URL (``is not an http(s) URL``, ...), or None when it is one
    (scheme http or https, a host, no whitespace) of a host in ``allowed_hosts`` (see :func:`host_allowed`).
    The message never quotes the value (it is a secret)."""
    value = value.strip()
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        return "is not an http(s) URL"
    if parts.scheme not in ("http", "https") or not host or any(c.isspace() for c in value):
        return "is not an http(s) URL"
    if not host_allowed(host, allowed_hosts):
        return f"names host {host}, which is not in the operator's allowed webhook hosts ({', '.join(allowed_hosts)})"
    return None


def check_alert_rule(spec: AlertRuleSpec) -> None:
    """The checks of an AlertRule spec that need no rendering (exactly one detector; raw PromQL parses).

    Raises:
        SpecError: naming ``spec.detector`` or ``spec.detector.promql.expr``.
    """
    try:
        spec.detector.kind()
    except ValueError as exc:
        raise SpecError("spec.detector", str(exc).removeprefix("spec.detector: ")) from None
    if spec.detector.promql is not None:
        try:
            promql.check(spec.detector.promql.expr)
        except promql.InvalidPromQL as exc:
            raise SpecError("spec.detector.promql.expr", f"does not parse: {exc}") from None


def _spec_field(spec: AlertRuleSpec, rendered_path: str) -> str:
    """The AlertRule field a path inside its rendered rule comes from (``...labels.team`` -> ``spec.labels.team``)."""
    tail = rendered_path.split("].", 1)[-1] if "].rules[" in rendered_path else ""
    tail = tail.split("].", 1)[-1] if tail.startswith("rules[") else tail
    section, _, key = tail.partition(".")
    if section == "labels" and key in spec.labels:
        return f"spec.labels.{key}"
    if section == "annotations" and key == "runbook_url":
        return "spec.runbookURL"
    if section == "annotations" and key in spec.annotations:
        return f"spec.annotations.{key}"
    if section == "expr":
        kind = spec.detector.kind()
        return "spec.detector.promql.expr" if kind == "promql" else f"spec.detector.{kind}"
    if section == "for":
        return "spec.for"
    return "spec"


def check_rendered_alert_rule(spec: AlertRuleSpec, prometheus_rule: dict) -> None:
    """Check the PrometheusRule rendered from ``spec`` whole, as Prometheus would load it
    (:func:`game_analytics.monitoring.rulecheck.check_groups`: label names, templates, expression, durations).

    Raises:
        SpecError: for the first problem, naming the AlertRule field it comes from (``spec.labels.cost-center``,
            ``spec.annotations.summary``, ``spec.runbookURL``, ...) and quoting Prometheus' reason.
    """
    problems = rulecheck.check_groups(prometheus_rule["spec"]["groups"])
    if problems:
        first = problems[0]
        raise SpecError(_spec_field(spec, first.path), f"Prometheus would reject the rendered rule: {first.message}")


def check_scheduled_report(spec: ScheduledReportSpec) -> None:
    check_cron("spec.schedule", spec.schedule)
    check_time_zone("spec.timeZone", spec.time_zone)


def check_ranking_job(spec: RankingJobSpec) -> None:
    check_cron("spec.schedule", spec.schedule)
    check_time_zone("spec.timeZone", spec.time_zone)
    if spec.season_reset:
        check_cron("spec.seasonReset.schedule", spec.season_reset.schedule)
        check_time_zone("spec.seasonReset.timeZone", spec.season_reset.time_zone)
