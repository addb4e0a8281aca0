"""Replay an AlertRule's worker-evaluated detector over the stored events: one :class:`~.backtest.Sample` per step.

At every step ``t`` in ``from, from + step, ..., to`` the rule's detector from
:data:`game_analytics.workers.detectors.DETECTORS` (the detection worker's own functions) runs with
``as_of = t``, all in one read-only REPEATABLE READ transaction (one snapshot of the store).

Skipped steps: every windowed detector only flags subjects with events in ``(t - window, t]`` (the
``anomalyScore`` detector, which scores whole histories, is evaluated at every step).  One query finds the steps
that have any event in that span; the others are empty samples without running the detector.  This is only a
shortcut: it never changes a result.

PromQL-evaluated detector types (``DETECTOR_TYPES`` evaluator ``promql``) are replayed by Prometheus
(:mod:`game_analytics.alerting.prometheus`): :func:`replay` raises :class:`NotBacktestable` for them.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text

from game_analytics.alerting.backtest import NotBacktestable, Sample
from game_analytics.api.alertrule import WORKER_EVALUATED, AlertRuleSpec
from game_analytics.api.common import parse_duration
from game_analytics.workers.detectors import DETECTORS, Context

__all__ = ["MAX_STEPS", "NotBacktestable", "lookback", "replay", "steps"]

#: the most evaluation steps one backtest may take (a coarser --step or a shorter span beyond this)
MAX_STEPS = 1_000_000


def steps(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    """``start, start + step, ...`` up to and including ``end``.

    Raises:
        ValueError: ``step`` not positive, ``end`` before ``start``, or more than :data:`MAX_STEPS` steps.
    """
    if step <= timedelta():
        raise ValueError("--step must be positive")
    if end < start:
        raise ValueError("--to must not be before --from")
    count = int((end - start) / step) + 1
    if count > MAX_STEPS:
        raise ValueError(f"{count} steps exceed {MAX_STEPS}: use a coarser --step or a shorter span")
    return [start + i * step for i in range(count)]


def lookback(detector: str, params: Any) -> timedelta | None:
    """The span before ``as_of`` whose events alone decide whether the detector can flag anything, or None when
    every step must be evaluated (``anomalyScore``, or a zero window)."""
    if detector == "anomalyScore":
        return None
    window = parse_duration(str(getattr(params, "window", "0s")), allow_zero=True)
    return window if window > timedelta() else None


def _active_steps(conn: Connection, times: Sequence[datetime], span: timedelta, games: Sequence[str]) -> set[datetime]:
    """The steps ``t`` of ``times`` with at least one event in ``(t - span, t]`` (of ``games``, if given)."""
    game_cond = " AND e.game = ANY(:games)" if games else ""
    sql = f"""
    SELECT t FROM unnest(CAST(:times AS timestamptz[])) AS t
    WHERE EXISTS (SELECT 1 FROM events e WHERE e.occurred_at > t - :span AND e.occurred_at <= t{game_cond})
    """
    rows = conn.execute(text(sql), {"times": list(times), "span": span, "games": list(games)}).scalars()
    return set(rows)


def replay(engine: Engine, rule: str, spec: AlertRuleSpec, times: Sequence[datetime], *, games: Sequence[str] = (),
           progress: Callable[[int, int], None] | None = None) -> list[Sample]:
    """The detector's flagged subjects at every time of ``times`` (ascending, timezone-aware).

    Args:
        engine: the store; only read.
        rule: the rule id (``namespace/name``), as the worker names it (the anomaly model file name).
        spec: the AlertRule spec; its detector must be worker-evaluated.
        games: only these games (empty = all), as the worker's ``--games``.
        progress: called as ``progress(done, total)`` after each evaluated step.

    Raises:
        NotBacktestable: the detector is PromQL-evaluated.
        sqlalchemy.exc.SQLAlchemyError: the store cannot be read.
    """
    kind = spec.detector.kind()
    if kind not in WORKER_EVALUATED:
        raise NotBacktestable(f"detector {kind} is evaluated by Prometheus (PromQL): replay it with query_range")
    params = spec.detector.params()
    detect = DETECTORS[kind]
    span = lookback(kind, params)
    with tempfile.TemporaryDirectory(prefix="ga-backtest-") as models, engine.connect() as conn:
        conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"))
        active = set(times) if span is None else _active_steps(conn, times, span, games)
        # the anomaly model is fitted once, at the first evaluated step (refit_seconds: never during the replay)
        ctx = Context(conn, times[0] if times else datetime.now(), list(games), rule, Path(models), float("inf"))
        out, done = [], 0
        for t in times:
            if t not in active:
                out.append(Sample(t, frozenset()))
                continue
            ctx.as_of = t
            out.append(Sample(t, frozenset(f.subject for f in detect(ctx, params))))
            done += 1
            if progress is not None:
                progress(done, len(active))
        conn.rollback()
    return out
