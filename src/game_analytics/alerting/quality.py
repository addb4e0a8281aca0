"""Detector quality: precision, recall and detection delay against planted, labelled anomalies, and false pages
per week on the untouched data (pure: from per-step samples, see :mod:`game_analytics.alerting.backtest`).

Definitions (docs/backtest.md, "Detector quality"):

* A **run** is a maximal stretch of consecutive evaluation steps at which the detector flags one subject.
* A planted anomaly ``(subject, at)`` is **detected** by a run of the same subject that starts no later than
  ``at + tolerance`` and ends no earlier than ``at`` (the first step at or after the plant can only see it then).
* **precision** = runs on the planted data that detect some plant / all runs on the planted data (a natural
  flag of the real data in the same span counts against it); **recall** = plants detected / plants.
* **delay** = from the planted time to the page of the detecting run: its first step, plus the rule's ``for``, plus
  the route's ``group_wait``.
* **false pages per week** = pages (the backtest engine, the same route) of the detector over the untouched data,
  divided by the span in weeks: every page there is one nobody planted.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from game_analytics.alerting.backtest import Backtest, Sample
from game_analytics.alerting.routing import DEFAULT_ROUTE, RouteTiming

__all__ = ["Plant", "Quality", "Run", "runs", "score"]


@dataclass(frozen=True)
class Plant:
    """One labelled anomaly: the ``subject`` the detector should flag, when it was planted, and what it is."""

    subject: str
    at: datetime
    label: str = ""


@dataclass(frozen=True)
class Run:
    """A subject flagged at every step from ``first`` to ``last`` (inclusive)."""

    subject: str
    first: datetime
    last: datetime


def runs(samples: Sequence[Sample]) -> list[Run]:
    """The runs of ``samples`` (time order), sorted by start then subject."""
    open_: dict[str, tuple[datetime, datetime]] = {}
    out: list[Run] = []
    for sample in samples:
        for subject in list(open_):
            if subject not in sample.subjects:
                first, last = open_.pop(subject)
                out.append(Run(subject, first, last))
        for subject in sample.subjects:
            first, _ = open_.get(subject, (sample.at, sample.at))
            open_[subject] = (first, sample.at)
    out += [Run(s, f, last) for s, (f, last) in open_.items()]
    return sorted(out, key=lambda r: (r.first, r.subject))


@dataclass
class Quality:
    """The figures of one detector (see the module docstring); ``delays`` in the order of ``plants`` detected."""

    detector: str
    params: dict[str, Any]
    plants: int
    detected: int
    runs: int
    true_runs: int
    delays: list[timedelta] = field(default_factory=list)
    untouched_pages: int = 0
    weeks: float = 0.0
    missed: list[Plant] = field(default_factory=list)

    @property
    def precision(self) -> float:
        """True runs / runs (1.0 when nothing was flagged at all)."""
        return self.true_runs / self.runs if self.runs else 1.0

    @property
    def recall(self) -> float:
        """Detected plants / plants (1.0 without plants)."""
        return self.detected / self.plants if self.plants else 1.0

    @property
    def false_pages_per_week(self) -> float:
        """Pages on the untouched data per week of it."""
        return self.untouched_pages / self.weeks if self.weeks else 0.0

    def delay_summary(self) -> tuple[float, float] | None:
        """``(median, max)`` detection delay in seconds, None when nothing was detected."""
        if not self.delays:
            return None
        seconds = [d.total_seconds() for d in self.delays]
        return statistics.median(seconds), max(seconds)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able figures (delays in seconds)."""
        delay = self.delay_summary()
        return {"detector": self.detector, "params": self.params, "plants": self.plants, "detected": self.detected,
                "runs": self.runs, "true_runs": self.true_runs, "precision": round(self.precision, 4),
                "recall": round(self.recall, 4), "median_delay_seconds": None if delay is None else delay[0],
                "max_delay_seconds": None if delay is None else delay[1], "untouched_pages": self.untouched_pages,
                "weeks": round(self.weeks, 3), "false_pages_per_week": round(self.false_pages_per_week, 4)}  # fmt: skip


def score(detector: str, params: dict[str, Any], planted: Sequence[Sample], plants: Sequence[Plant],
          untouched: Backtest, *, tolerance: timedelta, for_: timedelta = timedelta(),
          route: RouteTiming = DEFAULT_ROUTE) -> Quality:
    """The :class:`Quality` of one detector.

    Args:
        planted: its samples over the data with the plants; plants: what was planted there.
        untouched: its backtest over the same data without plants (for the false pages per week).
        tolerance: how long after a plant a run may start and still detect it (the detector's window plus a step).
    """
    wait = route.durations()[0]
    found = runs(planted)
    by_subject: dict[str, list[Run]] = {}
    for run in found:
        by_subject.setdefault(run.subject, []).append(run)
    true: set[Run] = set()
    delays, missed = [], []
    for plant in plants:
        hits = [r for r in by_subject.get(plant.subject, ()) if r.first <= plant.at + tolerance and r.last >= plant.at]
        if not hits:
            missed.append(plant)
            continue
        true.update(hits)
        delays.append(max(hits[0].first - plant.at, timedelta()) + for_ + wait)
    weeks = (untouched.end - untouched.start) / timedelta(days=7)
    return Quality(detector, params, len(plants), len(plants) - len(missed), len(found), len(true), delays,
                   len(untouched.page_times), weeks, missed)  # fmt: skip
