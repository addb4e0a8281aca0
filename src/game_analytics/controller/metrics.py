"""The operator's own Prometheus metrics (reconciles, errors, durations by kind)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from ..monitoring import names

RECONCILES = Counter(names.RECONCILES.removesuffix("_total"), "Reconciles by kind and result.", ["kind", "result"])
RECONCILE_ERRORS = Counter(
    names.RECONCILE_ERRORS.removesuffix("_total"), "Reconciles that failed, by kind and reason.", ["kind", "reason"]
)
RECONCILE_DURATION = Histogram(
    names.RECONCILE_DURATION, "Time spent reconciling one object, by kind.", ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
