"""Planted anomalies for the PromQL-evaluated detectors: exporter series derived from the CDNOW log, as
OpenMetrics text for ``promtool tsdb create-blocks-from openmetrics`` (pure).

One sample a minute from ``start`` to ``end``, labelled ``namespace=<namespace>`` (the planted and the untouched
history live side by side in one TSDB under two namespaces):

``currencyInflation``
    ``game_analytics_economy_price_index{game="cdnow",currency="USD"}``: the day's mean unit price of CDNOW's
    purchases (dollars per CD; the last day's value on days without any).  Plant: an **inflation step**, every
    price from the planted minute on is 1.3 times higher (cumulative over plants).
``highErrorRate``
    ``game_analytics_events_ingested_total{game="cdnow",event_type=...}``: per minute as many purchase events as
    CDNOW had purchases that day (its daily volume shape at one a minute per purchase), and ``error`` events at a
    synthetic 0.2 % of them (binomial; the data has no errors).  Plant: an **error-rate step** to 30 % for 20 minutes.
``ingestLag``
    ``game_analytics_ingest_lag_seconds{stream="events"}``: a synthetic healthy lag of 0.5 s plus an exponential
    jitter of mean 3 s.  Plant: a **stalled consumer**, the lag grows 60 s a minute for 10 minutes, then drains in 3.
``lowEngagement``
    ``game_analytics_active_players{game="cdnow",period="1d"}``: distinct CDNOW customers who purchased in the
    trailing day.  Plant: an **engagement drop** to 5 % of it for 6 hours.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from game_analytics.alerting.quality import Plant

__all__ = ["SERIES_PLANTERS", "openmetrics", "series"]

MINUTE = timedelta(minutes=1)
Event = dict[str, Any]
#: detector -> (planted subject, i.e. the alert's labels without namespace, and the plant's label)
_SUBJECTS = {"currencyInflation": ("currency=USD,game=cdnow", "price index +30 %"),
             "highErrorRate": ("game=cdnow", "errors 30 % for 20 min"),
             "ingestLag": ("stream=events", "consumer stalled 10 min"),
             "lowEngagement": ("game=cdnow", "active players -95 % for 6 h")}  # fmt: skip


def _minutes(start: datetime, end: datetime) -> list[datetime]:
    return [start + i * MINUTE for i in range(int((end - start) / MINUTE) + 1)]


def _daily(base: Sequence[Event]) -> tuple[dict[date, float], dict[date, int], dict[date, int]]:
    value: defaultdict[date, float] = defaultdict(float)
    quantity: defaultdict[date, int] = defaultdict(int)
    count: defaultdict[date, int] = defaultdict(int)
    buyers: defaultdict[date, set[str]] = defaultdict(set)
    for e in base:
        day = e["occurred_at"].date()
        value[day] += float(e["payload"]["amount"])
        quantity[day] += int(e["payload"].get("quantity", 1))
        count[day] += 1
        buyers[day].add(e["player_id"])
    price = {d: value[d] / quantity[d] for d in value if quantity[d]}
    return price, dict(count), {d: len(b) for d, b in buyers.items()}


def _line(metric: str, labels: dict[str, str], t: datetime, v: float) -> str:
    body = ",".join(f'{k}="{val}"' for k, val in labels.items())
    return f"{metric}{{{body}}} {v:.6g} {int(t.timestamp())}"


def _inflation(base: Sequence[Event], ts: list[datetime], plants: Sequence[datetime], ns: str) -> list[str]:
    price, _, _ = _daily(base)
    out, last = [], None
    for t in ts:
        last = price.get(t.date(), last)
        if last is None:
            continue
        factor = 1.3 ** sum(1 for p in plants if p <= t)
        out.append(_line("game_analytics_economy_price_index", {"namespace": ns, "game": "cdnow", "currency": "USD"},
                         t, last * factor))  # fmt: skip
    return out


def _errors(base: Sequence[Event], ts: list[datetime], plants: Sequence[datetime], ns: str, seed: int) -> list[str]:
    _, count, _ = _daily(base)
    rng = np.random.default_rng(seed)
    ok = err = 0
    lines_ok, lines_err = [], []
    for t in ts:
        n = count.get(t.date(), 0)
        share = 0.3 if any(p <= t < p + 20 * MINUTE for p in plants) else 0.002
        bad = int(rng.binomial(n, share)) if n else 0
        ok, err = ok + n - bad, err + bad
        lines_ok.append(_line("game_analytics_events_ingested_total", {"namespace": ns, "game": "cdnow",
                                                                       "event_type": "purchase"}, t, ok))  # fmt: skip
        lines_err.append(_line("game_analytics_events_ingested_total", {"namespace": ns, "game": "cdnow",
                                                                        "event_type": "error"}, t, err))  # fmt: skip
    return lines_ok + lines_err


def _lag(base: Sequence[Event], ts: list[datetime], plants: Sequence[datetime], ns: str, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for t in ts:
        lag = 0.5 + float(rng.exponential(3.0))
        for p in plants:
            m = (t - p) / MINUTE
            if 0 <= m <= 10:
                lag = max(lag, 60.0 * m)
            elif 10 < m <= 13:
                lag = max(lag, 600.0 * (13 - m) / 3)
        out.append(_line("game_analytics_ingest_lag_seconds", {"namespace": ns, "stream": "events"}, t, lag))
    return out


def _engagement(base: Sequence[Event], ts: list[datetime], plants: Sequence[datetime], ns: str) -> list[str]:
    _, _, buyers = _daily(base)
    out = []
    for t in ts:
        active = float(buyers.get(t.date(), 0))
        if any(p <= t < p + timedelta(hours=6) for p in plants):
            active = round(active * 0.05)
        out.append(_line("game_analytics_active_players", {"namespace": ns, "game": "cdnow", "period": "1d"}, t, active))
    return out


_FAMILIES = {"currencyInflation": ("game_analytics_economy_price_index", "gauge"),
             "highErrorRate": ("game_analytics_events_ingested", "counter"),
             "ingestLag": ("game_analytics_ingest_lag_seconds", "gauge"),
             "lowEngagement": ("game_analytics_active_players", "gauge")}  # fmt: skip

#: PromQL-evaluated detector type -> ``(base, minutes, plant times, namespace, seed) -> OpenMetrics sample lines``
SERIES_PLANTERS: dict[str, Callable[[Sequence[Event], list[datetime], Sequence[datetime], str, int], list[str]]] = {
    "currencyInflation": lambda b, ts, p, ns, seed: _inflation(b, ts, p, ns),
    "highErrorRate": _errors,
    "ingestLag": _lag,
    "lowEngagement": lambda b, ts, p, ns, seed: _engagement(b, ts, p, ns),
}


def series(detector: str, base: Sequence[Event], start: datetime, end: datetime, plants: Sequence[datetime],
           namespace: str, seed: int = 0) -> tuple[str, list[str], list[Plant]]:
    """``(metric family, its OpenMetrics sample lines, the plant labels)`` of ``detector``'s series in
    ``namespace`` (see the module docstring).

    Raises:
        KeyError: ``detector`` has no series planter (:data:`SERIES_PLANTERS`).
    """
    lines = SERIES_PLANTERS[detector](base, _minutes(start, end), plants, namespace, seed)
    subject, label = _SUBJECTS[detector]
    return _FAMILIES[detector][0], lines, [Plant(subject, p, label) for p in plants]


def openmetrics(parts: Sequence[tuple[str, list[str]]]) -> str:
    """One OpenMetrics document (ending in ``# EOF``) of ``(family, lines)`` parts; the parts of one family are
    written together under its ``# TYPE`` line."""
    families: dict[str, list[str]] = {}
    for family, lines in parts:
        families.setdefault(family, []).extend(lines)
    kinds = dict(_FAMILIES.values())
    out = []
    for family, lines in families.items():
        out += [f"# TYPE {family} {kinds[family]}", *lines]
    return "\n".join([*out, "# EOF"]) + "\n"
