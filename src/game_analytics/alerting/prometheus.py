"""Replay a PromQL-evaluated AlertRule with the real Prometheus ``query_range`` over its stored TSDB.

The rule's expression is the one the operator renders (:func:`game_analytics.monitoring.promql.render`, the same
``expr`` as in the PrometheusRule).  A range query at ``start, start + step, ..., end`` evaluates it exactly as the
rule evaluation does at each of those instants; every returned series is one **alert** of the rule (its label set
plus the rule's labels), true at the steps where the series has a value.  Longer spans are split into range
queries of at most :data:`MAX_POINTS` steps (Prometheus refuses more than 11,000 points per series).

Each alert gets its own ``for`` (as Prometheus keeps one pending timer per alert); the alerts are then grouped as
Alertmanager groups them (:func:`game_analytics.alerting.backtest.backtest_alerts`).
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from game_analytics.alerting.backtest import Sample
from game_analytics.api.alertrule import AlertRuleSpec
from game_analytics.monitoring import promql

__all__ = ["MAX_POINTS", "PrometheusError", "alert_name", "alert_samples", "query_range"]

#: steps per range query (Prometheus' own limit is 11,000 points per series)
MAX_POINTS = 10_000


class PrometheusError(RuntimeError):
    """Prometheus could not be reached or refused the query (the message is Prometheus' own error)."""


def query_range(url: str, expr: str, start: datetime, end: datetime, step: timedelta, *,
                timeout: float = 60.0) -> list[tuple[dict[str, str], list[float]]]:
    """``[(labels, [unix seconds of the steps with a value, ...]), ...]``: one entry per series of ``expr``.

    Args:
        url: Prometheus base URL, e.g. ``http://prometheus:9090``.
        start, end: timezone-aware span (inclusive); step: positive.

    Raises:
        PrometheusError: connection failure, HTTP error or ``status != success``.
    """
    out: dict[tuple[tuple[str, str], ...], list[float]] = {}
    seconds = step.total_seconds()
    chunk = timedelta(seconds=seconds * (MAX_POINTS - 1))
    lo = start
    while lo <= end:
        hi = min(lo + chunk, end)
        query = urllib.parse.urlencode({"query": expr, "start": f"{lo.timestamp():.3f}", "end": f"{hi.timestamp():.3f}",
                                        "step": f"{seconds:g}"})  # fmt: skip
        try:
            with urllib.request.urlopen(f"{url.rstrip('/')}/api/v1/query_range?{query}", timeout=timeout) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read()).get("error", exc.reason)
            except ValueError:
                detail = exc.reason
            raise PrometheusError(f"Prometheus {url} refused the query: {detail}") from None
        except (OSError, ValueError) as exc:
            raise PrometheusError(f"Prometheus {url}: {exc}") from None
        if body.get("status") != "success":
            raise PrometheusError(f"Prometheus {url}: {body.get('error', body)}")
        for series in body["data"]["result"]:
            key = tuple(sorted(series["metric"].items()))
            out.setdefault(key, []).extend(float(ts) for ts, _ in series["values"])
        lo = hi + step
    return [(dict(k), sorted(set(v))) for k, v in sorted(out.items())]


def alert_name(labels: dict[str, str]) -> str:
    """How an alert (series) is named in the results: its labels other than ``namespace``, e.g. ``game=cdnow``
    (``-`` for a series without other labels)."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "namespace") or "-"


def alert_samples(url: str, rule: str, spec: AlertRuleSpec, times: Sequence[datetime], *,
                  timeout: float = 60.0) -> dict[str, tuple[dict[str, str], list[Sample]]]:
    """``{alert name: (series labels, samples)}`` of the rule's expression at every time of ``times``.

    ``times`` must be evenly spaced (:func:`game_analytics.alerting.replay.steps`).  A sample's subjects are
    ``{alert name}`` where the series has a value, else empty.

    Raises:
        PrometheusError: see :func:`query_range`. ValueError: fewer than one time, or uneven times.
        promql.InvalidPromQL: a raw expression that does not parse.
    """
    if not times:
        raise ValueError("no evaluation steps")
    step = times[1] - times[0] if len(times) > 1 else timedelta(minutes=1)
    if any(b - a != step for a, b in zip(times, times[1:], strict=False)):
        raise ValueError("evaluation steps must be evenly spaced")
    expr = promql.render(spec.detector, rule)
    index = {round(t.timestamp() * 1000): i for i, t in enumerate(times)}
    out: dict[str, tuple[dict[str, str], list[Sample]]] = {}
    for labels, stamps in query_range(url, expr, times[0], times[-1], step, timeout=timeout):
        name = alert_name(labels)
        hit = [False] * len(times)
        for ts in stamps:
            i = index.get(round(ts * 1000))
            if i is not None and not math.isnan(ts):
                hit[i] = True
        out[name] = (labels, [Sample(t.astimezone(UTC), frozenset({name}) if h else frozenset())
                              for t, h in zip(times, hit, strict=True)])  # fmt: skip
    return out
