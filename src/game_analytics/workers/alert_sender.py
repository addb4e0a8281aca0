"""The detection worker as an Alertmanager client: its streaming path's alerts, sent the way Prometheus sends.

Each rule document carries the rule's alert (``alert`` key, built by
:func:`game_analytics.controller.alertrule.render.alert`, the same function the PrometheusRule takes its alert
from): name, ``for``, labels and annotations as Prometheus templates. :class:`RuleAlert` is the rule's alert
state with Prometheus' rule-manager semantics:

* evaluated with the rule's flagged-subject count as ``$value``; its series labels are ``namespace`` and
  ``rule``, as the PrometheusRule's ``max by (namespace, rule)`` expression leaves them;
* ``inactive`` -> ``pending`` while the count is positive for less than ``for``, then ``firing``; back to 0:
  ``resolved`` (a pending alert is dropped silently);
* sent when it starts firing, then again every ``resend_delay`` (Prometheus' ``--rules.alert.resend-delay``,
  1 m) while firing, with ``endsAt`` = now + 4 x max(evaluation interval, resend delay), so that Alertmanager
  resolves it by itself should the worker die; a resolved alert is sent with ``endsAt`` = the resolution time,
  at once and then on every resend for 15 minutes (Prometheus' resolved retention).

:class:`AlertmanagerClient` posts the alerts to every configured Alertmanager (``POST /api/v2/alerts``), as
Prometheus does to each of its Alertmanagers; a failed post is logged and counted, and retried on the next send.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from game_analytics.api.common import parse_duration
from game_analytics.monitoring import names, promql
from game_analytics.monitoring.alert_template import Sample, expand_or_error

__all__ = ["AlertSpec", "AlertmanagerClient", "RuleAlert", "parse_alert"]

log = logging.getLogger(__name__)

#: Prometheus' default --rules.alert.resend-delay
RESEND_DELAY = timedelta(minutes=1)
#: how long Prometheus keeps sending a resolved alert
RESOLVED_RETENTION = timedelta(minutes=15)


@dataclass(frozen=True)
class AlertSpec:
    """A rule's alert as the PrometheusRule has it: ``name``, ``for_`` and the label / annotation templates."""

    name: str
    for_: timedelta
    labels: Mapping[str, str]
    annotations: Mapping[str, str]


def parse_alert(document: Mapping[str, Any]) -> AlertSpec:
    """The ``alert`` value of a rule document. Raises ValueError (naming the key) when it is malformed."""
    try:
        labels, annotations = dict(document["labels"]), dict(document["annotations"])
        return AlertSpec(str(document["alert"]), parse_duration(str(document.get("for") or "0s"), allow_zero=True),
                         {str(k): str(v) for k, v in labels.items()},
                         {str(k): str(v) for k, v in annotations.items()})  # fmt: skip
    except KeyError as exc:
        raise ValueError(f"alert.{exc.args[0]}: missing") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"alert: {exc}") from None


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class RuleAlert:
    """The alert state of one rule (see the module docstring). Not thread-safe: one owner updates it."""

    rule: str
    spec: AlertSpec
    state: str = "inactive"  # inactive | pending | firing | resolved
    value: float = 0.0
    top: list[tuple[str, int]] = field(default_factory=list)
    active_at: datetime | None = None
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    last_sent: datetime | None = None
    eval_interval: timedelta = timedelta(seconds=1)

    def series_labels(self) -> dict[str, str]:
        """``$labels``: what the PrometheusRule's expression keeps (``namespace``, ``rule``)."""
        return {"namespace": promql.namespace_of(self.rule), "rule": self.rule}

    def evaluate(self, value: float, now: datetime, top: Sequence[tuple[str, int]] = ()) -> None:
        """One evaluation with the rule's flagged-subject count ``value`` and its top subjects ``top``
        (``[(subject, intervention id)]``, highest score first; kept from the last firing evaluation)."""
        self.value, self.top = value, list(top) if value > 0 else self.top
        if value > 0:
            if self.state in ("inactive", "resolved"):
                self.state, self.active_at, self.fired_at, self.resolved_at = "pending", now, None, None
            if self.state == "pending" and now - self.active_at >= self.spec.for_:
                self.state, self.fired_at = "firing", now
        elif self.state == "pending":
            self.state, self.active_at = "inactive", None
        elif self.state == "firing":
            self.state, self.resolved_at = "resolved", now

    def due(self, now: datetime) -> bool:
        """Whether to send now: firing or resolved and never sent since, or the resend delay has passed."""
        if self.state == "firing":
            return (self.last_sent is None or self.last_sent < self.fired_at
                    or now - self.last_sent >= RESEND_DELAY)  # fmt: skip
        if self.state == "resolved":
            if now - self.resolved_at > RESOLVED_RETENTION:
                self.state = "inactive"
                return False
            return self.last_sent is None or self.last_sent < self.resolved_at or now - self.last_sent >= RESEND_DELAY
        return False

    def _query(self, expr: str) -> list[Sample]:
        """Answer the description's top-cases query (:func:`promql.top_cases`) as Prometheus would, one sample
        per rank with the intervention id as value, plus a ``subject`` label that only the worker knows
        (Prometheus never holds a subject id, so the Prometheus path's pages list intervention ids only)."""
        if expr != promql.top_cases(self.rule):
            raise ValueError(f"query {expr!r}: the worker answers only its own top-cases query")
        return [Sample({**self.series_labels(), "rank": str(rank), "subject": subject}, float(case))
                for rank, (subject, case) in enumerate(self.top, start=1)]

    def payload(self, now: datetime, generator_url: str = "") -> dict[str, Any]:
        """The Alertmanager v2 alert (``labels``, ``annotations``, ``startsAt``, ``endsAt``, ``generatorURL``),
        templates expanded with ``$labels`` = :meth:`series_labels`, ``$value`` = the count."""
        series = self.series_labels()
        value = self.value if self.state == "firing" else 0.0

        def expand(name: str, text: str) -> str:
            return expand_or_error(self.spec.name, text, series, value, query=self._query)

        labels = {**series, **{k: expand(k, v) for k, v in self.spec.labels.items()}, "alertname": self.spec.name}
        ends = (self.resolved_at if self.state == "resolved"
                else now + 4 * max(self.eval_interval, RESEND_DELAY))  # fmt: skip
        out = {"labels": labels, "annotations": {k: expand(k, v) for k, v in self.spec.annotations.items()},
               "startsAt": _iso(self.fired_at or self.active_at or now), "endsAt": _iso(ends)}
        if generator_url:
            out["generatorURL"] = generator_url
        return out


@dataclass
class AlertmanagerClient:
    """Posts alerts to every Alertmanager of ``urls`` (base URLs, e.g. ``http://alertmanager:9093``).

    ``registry`` gets ``DETECTION_ALERTS_SENT_total{result="sent|error"}`` (alerts per Alertmanager).
    ``opener`` is for tests (default :func:`urllib.request.urlopen`).
    """

    urls: Sequence[str]
    timeout: float = 5.0
    registry: CollectorRegistry | None = None
    opener: Callable[..., Any] = urllib.request.urlopen
    _sent: Any = field(default=None, init=False)

    def __post_init__(self) -> None:
        self._sent = Counter(names.DETECTION_ALERTS_SENT.removesuffix("_total"),
                             "Alerts the streaming path posted to Alertmanager, by result.", ["result"],
                             registry=self.registry)  # fmt: skip

    def post(self, alerts: Sequence[Mapping[str, Any]]) -> int:
        """POST ``alerts`` (v2 API bodies) to each Alertmanager; returns how many accepted them (errors are
        logged and counted, never raised)."""
        if not alerts:
            return 0
        body, ok = json.dumps(list(alerts)).encode(), 0
        for base in self.urls:
            request = urllib.request.Request(f"{base.rstrip('/')}/api/v2/alerts", data=body, method="POST",
                                             headers={"Content-Type": "application/json"})  # fmt: skip
            started = time.monotonic()
            try:
                with self.opener(request, timeout=self.timeout) as response:
                    response.read()
                ok += 1
                self._sent.labels("sent").inc(len(alerts))
            except (urllib.error.URLError, OSError, ValueError) as exc:
                self._sent.labels("error").inc(len(alerts))
                log.warning("posting %d alert(s) to %s failed after %.1f s: %s", len(alerts), base,
                            time.monotonic() - started, exc)  # fmt: skip
        return ok
