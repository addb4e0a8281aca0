"""The AlertRule backtest engine: pure, from the detector's samples to the pages on-call would have received.

Input: one :class:`Sample` per evaluation step (the time and the subjects the rule's detector flagged at that
``as_of``, see :mod:`game_analytics.alerting.replay`).  The live path is modelled as it runs:

1. **Prometheus** evaluates the rule's alert ``max by (namespace, rule) (game_analytics_detection_flagged{...})
   > 0`` (:func:`game_analytics.monitoring.promql.render`): ONE alert per rule, true while any subject is
   flagged.  It is *pending* from the first true step and *firing* once it has been true at every step for at
   least the rule's ``for`` (``for: 0s`` fires at the first true step); it resolves at the first step where no
   subject is flagged.  One firing stretch is an :class:`Incident`.
2. **Alertmanager** (the route in :data:`game_analytics.alerting.routing.DEFAULT_ROUTE`; the one alert of a rule
   is the one member of its group) sends the first notification ``group_wait`` after the incident starts firing,
   if it is still firing then; afterwards it checks every ``group_interval`` and re-sends once
   ``repeat_interval`` has passed since the last notification, until the incident resolves.  Every such
   notification is a **page** (resolved notifications are not counted).

A PromQL-evaluated rule can have several alerts (one per series its expression returns, e.g. one per game):
:func:`backtest_alerts` applies ``for`` to each alert, then groups the firing alerts by the route's ``group_by``
labels; a group is paged as one incident while any member fires (Alertmanager's extra notification when a new
alert joins a group that already paged is not modelled).

The :class:`Backtest` summary gives the pages, the incidents with their start (first page) and end (resolution),
pages per week over the backtested span, the busiest hour of the week (UTC) and the top subjects.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from game_analytics.alerting.routing import DEFAULT_ROUTE, RouteTiming

__all__ = ["Backtest", "Incident", "NotBacktestable", "Sample", "WEEKDAYS", "backtest", "backtest_alerts", "incidents", "pages"]

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
WEEK = timedelta(days=7)


class NotBacktestable(ValueError):
    """The rule's detector is evaluated by Prometheus (PromQL): it is replayed with ``query_range``, not here."""


@dataclass(frozen=True)
class Sample:
    """One evaluation step: ``at`` (the detector's ``as_of``, timezone-aware) and the subjects it flagged."""

    at: datetime
    subjects: frozenset[str]


@dataclass
class Incident:
    """One firing stretch of the rule's alert.

    ``pending_at`` (first true step), ``firing_at`` (``for`` satisfied), ``resolved_at`` (first false step; None
    while still firing at the end of the span), ``pages`` (notification times, possibly empty when it resolved
    within ``group_wait``) and ``subjects`` (subject -> number of firing steps that flagged it).
    """

    pending_at: datetime
    firing_at: datetime
    resolved_at: datetime | None
    pages: list[datetime] = field(default_factory=list)
    subjects: Counter[str] = field(default_factory=Counter)


def incidents(samples: Sequence[Sample], for_: timedelta) -> list[Incident]:
    """The firing stretches of the rule's alert (Prometheus ``for`` semantics at the sample times).

    Args:
        samples: evaluation steps in time order.
        for_: how long the alert must be true at consecutive steps before it fires (``>= 0``).

    Raises:
        ValueError: samples not strictly increasing in time, or a negative ``for_``.
    """
    if for_ < timedelta():
        raise ValueError("for must not be negative")
    out: list[Incident] = []
    pending: datetime | None = None
    current: Incident | None = None
    previous: datetime | None = None
    for sample in samples:
        if previous is not None and sample.at <= previous:
            raise ValueError(f"samples must be strictly increasing in time: {sample.at} after {previous}")
        previous = sample.at
        if not sample.subjects:
            if current is not None:
                current.resolved_at = sample.at
            pending = current = None
            continue
        if pending is None:
            pending = sample.at
        if current is None and sample.at - pending >= for_:
            current = Incident(pending, sample.at, None)
            out.append(current)
        if current is not None:
            current.subjects.update(sample.subjects)
    return out


def pages(incident: Incident, route: RouteTiming, end: datetime) -> list[datetime]:
    """The notification times of ``incident`` under ``route`` (see the module docstring); an incident still
    firing at ``end`` (the end of the span) is paged up to ``end``."""
    wait, interval, repeat = route.durations()
    until = incident.resolved_at or end
    first = incident.firing_at + wait
    if first >= until and incident.resolved_at is not None or first > until:
        return []
    out = [first]
    while True:  # flushes happen at first + k * interval; re-send at the first flush >= last + repeat
        k = math.ceil((out[-1] + repeat - first) / interval)
        nxt = first + k * interval
        if nxt >= until and incident.resolved_at is not None or nxt > until:
            return out
        out.append(nxt)


@dataclass
class Backtest:
    """The result: the backtested span ``start``..``end``, the ``step``, the rule's ``for_`` and ``route``, and
    the :class:`Incident` list (each with its pages)."""

    rule: str
    detector: str
    start: datetime
    end: datetime
    step: timedelta
    for_: timedelta
    route: RouteTiming
    incidents: list[Incident]
    evaluated_steps: int = 0

    @property
    def page_times(self) -> list[datetime]:
        """Every page, in time order."""
        return sorted(t for i in self.incidents for t in i.pages)

    @property
    def pages_per_week(self) -> float:
        """Pages divided by the span in weeks (0 for an empty span)."""
        span = self.end - self.start
        return len(self.page_times) / (span / WEEK) if span > timedelta() else 0.0

    def busiest_hour(self) -> tuple[str, int, int] | None:
        """``(weekday, hour, pages)`` of the hour of the week (UTC) with the most pages, None without pages."""
        counts = Counter((t.weekday(), t.hour) for t in self.page_times)
        if not counts:
            return None
        (day, hour), n = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return WEEKDAYS[day], hour, n

    def top_subjects(self, n: int = 10) -> list[tuple[str, int, int]]:
        """``(subject, paged incidents, firing steps flagged)`` of the ``n`` subjects in most paged incidents."""
        incident_counts: Counter[str] = Counter()
        steps: Counter[str] = Counter()
        for incident in self.incidents:
            if incident.pages:
                incident_counts.update(incident.subjects.keys())
                steps.update(incident.subjects)
        ranked = sorted(incident_counts, key=lambda s: (-incident_counts[s], -steps[s], s))
        return [(s, incident_counts[s], steps[s]) for s in ranked[:n]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (times as ISO 8601 strings, durations in seconds)."""
        busiest = self.busiest_hour()
        return {
            "rule": self.rule, "detector": self.detector, "from": self.start.isoformat(),
            "to": self.end.isoformat(), "step_seconds": self.step.total_seconds(),
            "for_seconds": self.for_.total_seconds(), "evaluated_steps": self.evaluated_steps,
            "route": {"group_by": list(self.route.group_by), "group_wait": self.route.group_wait,
                      "group_interval": self.route.group_interval, "repeat_interval": self.route.repeat_interval},
            "pages": len(self.page_times), "incidents": sum(1 for i in self.incidents if i.pages),
            "unpaged_incidents": sum(1 for i in self.incidents if not i.pages),
            "pages_per_week": round(self.pages_per_week, 4),
            "busiest_hour_of_week": None if busiest is None else
            {"weekday": busiest[0], "hour_utc": busiest[1], "pages": busiest[2]},
            "top_subjects": [{"subject": s, "incidents": n, "steps": k} for s, n, k in self.top_subjects()],
            "timeline": [{
                "pending_at": i.pending_at.isoformat(), "firing_at": i.firing_at.isoformat(),
                "first_page": i.pages[0].isoformat() if i.pages else None,
                "resolved_at": i.resolved_at.isoformat() if i.resolved_at else None,
                "pages": len(i.pages), "subjects": sorted(i.subjects),
            } for i in self.incidents],
        }  # fmt: skip


def backtest(samples: Sequence[Sample], *, rule: str, detector: str, start: datetime, end: datetime,
             step: timedelta, for_: timedelta, route: RouteTiming = DEFAULT_ROUTE) -> Backtest:
    """Incidents and pages of ``samples`` (see the module docstring) over the span ``start``..``end``.

    Raises:
        ValueError: see :func:`incidents` and :meth:`RouteTiming.durations`.
    """
    found = incidents(samples, for_)
    for incident in found:
        incident.pages = pages(incident, route, end)
    return Backtest(rule, detector, start, end, step, for_, route, found, len(samples))


def backtest_alerts(alerts: Mapping[str, tuple[Mapping[str, str], Sequence[Sample]]], *, rule: str, detector: str,
                    start: datetime, end: datetime, step: timedelta, for_: timedelta,
                    route: RouteTiming = DEFAULT_ROUTE, evaluated_steps: int = 0) -> Backtest:
    """Incidents and pages of several alerts of one rule (see the module docstring).

    Args:
        alerts: ``{alert name: (its labels, its samples)}``; every alert's samples are at the same times (the
            subjects of a sample are ``{alert name}`` while the alert's condition holds, else empty).

    Raises:
        ValueError: see :func:`incidents`.
    """
    groups: dict[tuple[str, ...], dict[datetime, set[str]]] = {}
    pending: dict[tuple[str, ...], dict[datetime, datetime]] = {}
    times: list[datetime] = []
    for name, (labels, samples) in sorted(alerts.items()):
        times = [s.at for s in samples] if len(samples) > len(times) else times
        key = tuple(labels.get(k, "") for k in route.group_by)
        group = groups.setdefault(key, {})
        own = incidents(samples, for_)
        for incident in own:
            earliest = pending.setdefault(key, {})
            earliest[incident.firing_at] = min(incident.pending_at, earliest.get(incident.firing_at, incident.pending_at))
        j = 0
        for s in samples:  # one pass: the alert fires at s.at when an incident has firing_at <= s.at < resolved_at
            while j < len(own) and own[j].resolved_at is not None and own[j].resolved_at <= s.at:
                j += 1
            if j < len(own) and own[j].firing_at <= s.at:
                group.setdefault(s.at, set()).add(name)
    found: list[Incident] = []
    for key, firing in groups.items():
        for incident in incidents([Sample(t, frozenset(firing.get(t, ()))) for t in times], timedelta()):
            incident.pending_at = pending.get(key, {}).get(incident.firing_at, incident.pending_at)
            incident.pages = pages(incident, route, end)
            found.append(incident)
    found.sort(key=lambda i: (i.firing_at, sorted(i.subjects)))
    return Backtest(rule, detector, start, end, step, for_, route, found, evaluated_steps or len(times))
