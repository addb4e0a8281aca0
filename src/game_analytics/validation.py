"""Semantic checks of specs that the CRD schema and CEL cannot express (cron grammar, time zones, PromQL).

Every failure is a :class:`SpecError` naming the offending field by its path in the manifest, e.g.
``spec.detector.promql.expr``, so that ``kubectl describe`` tells the user exactly what to fix.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import ValidationError

from .api.alertrule import AlertRuleSpec
from .api.rankingjob import RankingJobSpec
from .api.scheduledreport import ScheduledReportSpec
from .monitoring import promql


class SpecError(ValueError):
    """An invalid spec. ``field`` is the dotted path of the offending field (``spec.schedule``)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def from_validation_error(exc: ValidationError) -> SpecError:
    """The first pydantic error as a :class:`SpecError` with a ``spec.``-rooted field path."""
    first = exc.errors()[0]
    path = ".".join(str(p) for p in ("spec", *first["loc"]))
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


def check_alert_rule(spec: AlertRuleSpec) -> None:
    if spec.detector.promql is not None:
        try:
            promql.check(spec.detector.promql.expr)
        except promql.InvalidPromQL as exc:
            raise SpecError("spec.detector.promql.expr", f"does not parse: {exc}") from None


def check_scheduled_report(spec: ScheduledReportSpec) -> None:
    check_cron("spec.schedule", spec.schedule)
    check_time_zone("spec.timeZone", spec.time_zone)


def check_ranking_job(spec: RankingJobSpec) -> None:
    check_cron("spec.schedule", spec.schedule)
    check_time_zone("spec.timeZone", spec.time_zone)
    if spec.season_reset:
        check_cron("spec.seasonReset.schedule", spec.season_reset.schedule)
        check_time_zone("spec.seasonReset.timeZone", spec.season_reset.time_zone)
