"""AlertRule detectors rendered to PromQL over the workers' real metric names, one template per detector type.

Player-level detectors (wealth jumps, transfers, logins, price moves, market share, anomaly scores; which ones is
``api.alertrule.DETECTOR_TYPES``) are evaluated by the detection worker in SQL, because Prometheus must never hold a series per player. The worker exports how many
subjects each rule currently flags, and the alert fires while that count is positive. Aggregate detectors
(inflation, error rate, engagement, ingest lag) are evaluated by Prometheus itself over the exporter's gauges.
"""

from __future__ import annotations

from collections.abc import Callable

import promql_parser

from ..api.alertrule import WORKER_EVALUATED, Detector
from . import names

__all__ = ["WORKER_EVALUATED", "InvalidPromQL", "check", "metric_names", "namespace_of", "quote", "render", "rule_id",
           "top_cases"]


class InvalidPromQL(ValueError):
    """A PromQL expression that does not parse; ``str()`` is the parser's message."""


def rule_id(namespace: str, name: str) -> str:
    """The ``rule`` label value that ties worker metrics, alerts and routes to one AlertRule."""
    return f"{namespace}/{name}"


def namespace_of(rule: str) -> str:
    """The namespace part of a :func:`rule_id` (``"games/x"`` -> ``"games"``).

    Raises:
        ValueError: ``rule`` has no ``<namespace>/`` prefix.
    """
    namespace, sep, name = rule.partition("/")
    if not sep or not namespace or not name:
        raise ValueError(f"rule id {rule!r} is not <namespace>/<name>")
    return namespace


def quote(value: str) -> str:
    """``value`` as a double-quoted PromQL string literal (backslash, quote and control characters escaped)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return '"' + escaped.replace("\t", "\\t") + '"'


def _ns(rule: str) -> str:
    """The namespace matcher every template selector carries (the scrape target's namespace, set by the
    ServiceMonitor), so that a rule only ever sees its own namespace's series."""
    return f"namespace={quote(namespace_of(rule))}"


def _flagged(rule: str, detector: str) -> str:
    return (f"max by (namespace, rule) ({names.DETECTION_FLAGGED}{{{_ns(rule)},rule={quote(rule)},"
            f"detector={quote(detector)}}}) > 0")


def top_cases(rule: str) -> str:
    """The query of the rule's top-case series (``rank`` 1..``names.TOP_CASES``, value = the intervention id of
    the rank-th flagged subject), which the page description reads with ``query`` and sorts by ``rank``. ``max by``
    merges the series of several detection-worker pods (they report the same cases)."""
    return f"max by (namespace, rule, rank) ({names.DETECTION_TOP_CASE}{{{_ns(rule)},rule={quote(rule)}}})"


def _inflation(d: Detector, rule: str) -> str:
    sel = f"{names.PRICE_INDEX}{{{_ns(rule)},currency={quote(d.currency_inflation.currency)}}}"
    by = "max by (namespace, game, currency)"
    return f"({by} ({sel}) / {by} ({sel} offset {d.currency_inflation.window})) - 1 > {d.currency_inflation.rate}"


_TEMPLATES: dict[str, Callable[[Detector, str], str]] = {
    "currencyInflation": _inflation,
    "highErrorRate": lambda d, rule: (
        f"sum by (namespace, game) (rate({names.EVENTS_INGESTED}{{{_ns(rule)},event_type=\"error\"}}"
        f"[{d.high_error_rate.window}])) / sum by (namespace, game) (rate({names.EVENTS_INGESTED}{{{_ns(rule)}}}"
        f"[{d.high_error_rate.window}])) > {d.high_error_rate.ratio}"
    ),
    # max, not sum: every exporter replica reports the same count, so a sum doubles with two of them
    "lowEngagement": lambda d, rule: (
        f"max by (namespace, game) ({names.ACTIVE_PLAYERS}{{{_ns(rule)},period={quote(d.low_engagement.period.value)}}})"
        f" < {d.low_engagement.min_active_players}"
    ),
    "ingestLag": lambda d, rule: (
        f"max by (namespace, stream) ({names.INGEST_LAG}{{{_ns(rule)}}}) > {d.ingest_lag.max_lag_seconds:g}"
    ),
    "promql": lambda d, rule: d.promql.expr,
}


def check(expr: str) -> None:
    """Parse ``expr`` with the Prometheus parser (``promql-parser``, a port of Prometheus' own grammar).

    Raises:
        InvalidPromQL: if it does not parse.
    """
    try:
        promql_parser.parse(expr)
    except Exception as exc:  # the parser raises plain ValueError/RuntimeError with its message
        raise InvalidPromQL(str(exc)) from exc


def metric_names(expr: str) -> set[str]:
    """Names of every metric ``expr`` selects, read from the parsed AST (``promql-parser``), not by pattern matching.

    A selector names its metric either before the braces (``foo{a="b"}``) or with an exact ``__name__`` matcher
    (``{__name__="foo"}``). Histogram series keep their suffix (``foo_bucket``).

    Raises:
        InvalidPromQL: if ``expr`` does not parse.
        ValueError: if a selector has no exact metric name (``{__name__=~"foo.*"}``), since it could select anything.
    """
    try:
        tree = promql_parser.parse(expr)
    except Exception as exc:
        raise InvalidPromQL(str(exc)) from exc
    found: set[str] = set()
    unnamed: list[str] = []

    def visit(node: object) -> None:
        if not isinstance(node, promql_parser.VectorSelector):
            return
        if node.name:
            found.add(node.name)
            return
        exact = [m.value for m in node.matchers.matchers
                 if m.name == "__name__" and m.op == promql_parser.MatchOp.Equal]
        if exact:
            found.update(exact)
        else:
            unnamed.append(str(node.prettify()))

    promql_parser.walk(tree, visit)
    if unnamed:
        raise ValueError(f"selectors without an exact metric name in {expr!r}: {unnamed}")
    return found


def render(detector: Detector, rule: str) -> str:
    """The alert expression for ``detector`` of the AlertRule identified by ``rule`` (see :func:`rule_id`).

    Raises:
        InvalidPromQL: if the result does not parse (only possible for a user's raw ``promql`` detector).
    """
    kind = detector.kind()
    expr = _flagged(rule, kind) if kind in WORKER_EVALUATED else _TEMPLATES[kind](detector, rule)
    check(expr)
    return expr
