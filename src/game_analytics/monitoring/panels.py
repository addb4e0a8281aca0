"""Panel and dashboard builders shared by every dashboard module (``grafana-foundation-sdk``): the Prometheus data
source variable, the ``namespace``/``game``/``region`` template variables and their label filters, one function per
panel kind, and :func:`_dashboard` (stable panel ids in layout order).

Defaults chosen after looking at the rendered dashboards (``game-analytics report run --type dashboard``):

* stat, bar gauge and distribution panels get explicit thresholds: one neutral colour for figures that are neither
  good nor bad (Grafana's default would turn any value from 80 red), or green/red from ``alert_at`` for counts of
  problems;
* time series start their value axis at 0 unless the data go below it (``axisSoftMin``), so a flat count does not
  look like a swing between 0.96 and 1.05.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from grafana_foundation_sdk.builders import bargauge, heatmap, prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dbm
from grafana_foundation_sdk.models import prometheus as prom

from . import names

DATASOURCE_VAR = "datasource"
DATASOURCE = dbm.DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE_VAR}}}")
TAGS = ["game-analytics"]
UID_PREFIX = "game-analytics-"
#: a ConfigMap holds at most 1 MiB of data (etcd's object size limit is a little above that)
CONFIGMAP_LIMIT_BYTES = 1024 * 1024
CONFIGMAP_LABEL = {"grafana_dashboard": "1"}

# label filters bound to the template variables
NS = 'namespace=~"$namespace"'
GAME = f'{NS}, game=~"$game"'
REGION = f'{GAME}, region=~"$region"'
#: the alerts dashboard's ``rule`` variable (AlertRule ids ``<namespace>/<name>``; the page links set it)
RULE = f'{NS}, rule=~"$rule"'
RATE = "$__rate_interval"


def _query(expr: str, legend: str = "", *, ref: str = "A", instant: bool = False,
           fmt: prom.PromQueryFormat | None = None) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DATASOURCE)
    if legend:
        q = q.legend_format(legend)
    q = q.instant() if instant else q.range()
    if fmt is not None:
        q = q.format(fmt)
    return q


def _targets(panel: Any, queries: Iterable[tuple[str, str]], **kwargs: Any) -> Any:
    for i, (expr, legend) in enumerate(queries):
        panel = panel.with_target(_query(expr, legend, ref=chr(ord("A") + i), **kwargs))
    return panel


def _common(panel: Any, title: str, description: str, unit: str, span: int, height: int) -> Any:
    return panel.title(title).description(description).datasource(DATASOURCE).unit(unit).span(span).height(height)


#: colour of figures that are neither good nor bad
NEUTRAL = "blue"


def thresholds(alert_at: float | None = None) -> db.ThresholdsConfig:
    """One neutral step, or green below ``alert_at`` and red from it."""
    steps = [dbm.Threshold(value=None, color=NEUTRAL if alert_at is None else "green")]
    if alert_at is not None:
        steps.append(dbm.Threshold(value=alert_at, color="red"))
    return db.ThresholdsConfig().mode(dbm.ThresholdsMode.ABSOLUTE).steps(steps)


def timeseries_panel(title: str, description: str, queries: list[tuple[str, str]], *, unit: str = "short",
                     span: int = 12, height: int = 8, soft_min: float | None = 0) -> timeseries.Panel:
    """A time series panel; ``queries`` are ``(PromQL, legend format)`` pairs; the value axis includes
    ``soft_min`` (None: fitted to the data)."""
    panel = _common(timeseries.Panel(), title, description, unit, span, height)
    if soft_min is not None:
        panel = panel.axis_soft_min(soft_min)
    return _targets(panel, queries)


def stat_panel(title: str, description: str, expr: str, *, unit: str = "short", span: int = 6,
               height: int = 4, alert_at: float | None = None) -> stat.Panel:
    """A single-value panel of an instant query, neutral or red from ``alert_at`` (:func:`thresholds`)."""
    panel = _common(stat.Panel(), title, description, unit, span, height).thresholds(thresholds(alert_at))
    return _targets(panel, [(expr, "")], instant=True)


def distribution_panel(title: str, description: str, bucket_expr: str, *, unit: str = "short", span: int = 12,
                       height: int = 8) -> bargauge.Panel:
    """Bars of a (gauge) histogram at the current time: one bar per bucket, counts per bucket (Grafana turns
    cumulative ``le`` buckets into per-bucket counts with the ``heatmap`` format)."""
    panel = _common(bargauge.Panel(), title, description, unit, span, height).thresholds(thresholds())
    return _targets(panel, [(bucket_expr, "{{le}}")], instant=True, fmt=prom.PromQueryFormat.HEATMAP)


def rows_heatmap_panel(title: str, description: str, expr: str, legend: str, *, unit: str = "short",
                       span: int = 24, height: int = 9) -> heatmap.Panel:
    """A heat map with one row per series (e.g. per region) over time, not calculated from buckets."""
    panel = _common(heatmap.Panel(), title, description, unit, span, height).calculate(False)
    return _targets(panel, [(expr, legend)])


def table_panel(title: str, description: str, queries: list[tuple[str, str]], *, span: int = 12,
                height: int = 8) -> table.Panel:
    """A table of instant queries (one column per label, ``Value`` columns per query)."""
    panel = _common(table.Panel(), title, description, "short", span, height)
    return _targets(panel, queries, instant=True, fmt=prom.PromQueryFormat.TABLE)


def _variables(extra: Iterable[tuple[str, str, str]] = ()) -> list[Any]:
    """The data source variable, ``namespace``, ``game``, ``region`` and ``extra`` ``(name, label, query)``
    query variables (multi-value, All = ``.*``)."""

    def query_var(name: str, label: str, query: str) -> db.QueryVariable:
        return (db.QueryVariable(name).label(label).query(query).datasource(DATASOURCE)
                .multi(True).include_all(True).all_value(".*")
                .refresh(dbm.VariableRefresh.ON_TIME_RANGE_CHANGED).sort(dbm.VariableSort.ALPHABETICAL_ASC)
                .current(dbm.VariableOption(selected=True, text="All", value="$__all")))

    return [
        db.DatasourceVariable(DATASOURCE_VAR).label("Data source").type("prometheus"),
        query_var("namespace", "Namespace", "label_values(up, namespace)"),
        query_var("game", "Game", f'label_values({names.ACTIVE_PLAYERS}{{{NS}}}, game)'),
        query_var("region", "Region", f'label_values({names.ACTIVE_PLAYERS_BY_REGION}{{{GAME}}}, region)'),
        *(query_var(name, label, query) for name, label, query in extra),
    ]


def _dashboard(slug: str, title: str, description: str, rows: list[tuple[str, list[Any]]], *,
               variables: Iterable[tuple[str, str, str]] = ()) -> dict[str, Any]:
    """The dashboard model (uid ``game-analytics-<slug>``) with the common variables plus ``variables``
    (see :func:`_variables`) and ``rows`` of panels."""
    builder = (db.Dashboard(title).uid(UID_PREFIX + slug).description(description).tags(TAGS)
               .editable().time("now-6h", "now").refresh("1m").timezone("browser")
               .tooltip(dbm.DashboardCursorSync.CROSSHAIR).variables(_variables(variables)))
    for row_title, panels in rows:
        builder = builder.with_row(db.Row(row_title))
        for panel in panels:
            builder = builder.with_panel(panel)
    model = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    for number, panel in enumerate(model["panels"], start=1):  # stable panel ids, in layout order
        panel["id"] = number
        if panel.get("options") is None and panel["type"] != "row":
            panel["options"] = {}  # unset in the builder: Grafana applies the plugin's defaults
    return model



def bargauge_panel(title: str, description: str, expr: str, legend: str, *, span: int = 12,
                   height: int = 8, unit: str = "short") -> bargauge.Panel:
    """Horizontal bars of an instant query, one per series."""
    panel = _common(bargauge.Panel(), title, description, unit, span, height).thresholds(thresholds())
    return _targets(panel, [(expr, legend)], instant=True)

