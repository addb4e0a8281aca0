"""Histogram buckets for metric families: SQL ``width_bucket`` rows cumulated into upper-inclusive (``le``)
buckets over fixed bounds (:mod:`game_analytics.monitoring.names`), as the exporter publishes them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["cumulate", "le_buckets"]


def cumulate(rows: Iterable[tuple[Any, Any, int, float]], n_bounds: int) -> dict[Any, tuple[list[int], float]]:
    """``(key, width_bucket(-x, reversed negated bounds), count, sum)`` rows -> ``{key: (cumulative counts per
    bound + Inf, sum)}`` with upper-inclusive (``le``) buckets."""
    out: dict[Any, tuple[list[int], float]] = {}
    for key, ge, count, total in rows:
        counts, acc = out.get(key, ([0] * (n_bounds + 1), 0.0))
        counts[n_bounds - int(ge)] += int(count)
        out[key] = (counts, acc + float(total or 0.0))
    for key, (counts, total) in out.items():
        running, cumulative = 0, []
        for c in counts:
            running += c
            cumulative.append(running)
        out[key] = (cumulative, total)
    return out


def le_buckets(bounds: Sequence[float], cumulative: Sequence[int]) -> list[tuple[str, float]]:
    """``(le, cumulative count)`` pairs of a histogram family: one per bound, then ``+Inf``."""
    return [(_bound(b), float(c)) for b, c in zip(bounds, cumulative, strict=False)] + [("+Inf", float(cumulative[-1]))]


def _bound(value: float) -> str:
    return repr(float(value))
