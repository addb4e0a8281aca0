"""Reading a dashboard model back: its PromQL queries, Grafana's template variables, the metric names it selects.

Used by the tests (every query parses; every metric name is one a live scrape exposes) and by anything that must
run a dashboard's queries outside Grafana.
"""

from __future__ import annotations

import json
import re
from typing import Any

from . import promql

_GRAFANA_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
_INTERVALS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}


def expand_variables(expr: str) -> str:
    """Replace Grafana's template variables by sample values so that the result is plain PromQL
    (``$__rate_interval`` -> ``5m``, ``$namespace`` -> ``x``)."""
    def sample(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        return _INTERVALS.get(name, "x")
    return _GRAFANA_VARIABLE.sub(sample, expr)


def panel_queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of every panel (rows' nested panels included), as written (with variables)."""
    exprs = []
    for panel in dashboard.get("panels", []):
        for inner in [panel, *panel.get("panels", [])]:
            exprs += [t["expr"] for t in inner.get("targets", []) if t.get("expr")]
    return exprs


def variable_queries(dashboard: dict[str, Any]) -> list[str]:
    """The series selectors inside the ``label_values(<selector>, <label>)`` queries of template variables."""
    out = []
    for var in dashboard.get("templating", {}).get("list", []):
        query = var.get("query")
        if var.get("type") == "query" and isinstance(query, str) and query.startswith("label_values("):
            out.append(query[len("label_values("):query.rindex(",")])
    return out


def metric_names_used(dashboard_json: dict[str, Any] | str) -> set[str]:
    """Names of all metrics the dashboard's panel and variable queries select, read from the PromQL AST.

    Args:
        dashboard_json: the dashboard model, as a dict or JSON text.

    Raises:
        promql.InvalidPromQL: if a query does not parse once Grafana's variables are expanded.
    """
    model = json.loads(dashboard_json) if isinstance(dashboard_json, str) else dashboard_json
    used: set[str] = set()
    for expr in panel_queries(model) + variable_queries(model):
        used |= promql.metric_names(expand_variables(expr))
    return used
