"""Dashboards as code: generated files up to date, queries parse, metric names listed, ConfigMaps fit."""

from __future__ import annotations

import json

import pytest
import yaml

from game_analytics.monitoring import dashboard_queries, dashboards, names, promql

from .test_alert_rules import ALL_ALERTS
from .tools import REPO

OUTPUT = REPO / "grafana_dashboards"
MODELS = {name: build() for name, build in dashboards.DASHBOARDS.items()}


def test_checked_in_files_equal_the_generator_output():
    expected = dashboards.render_files()
    present = {str(p.relative_to(OUTPUT)) for p in OUTPUT.rglob("*") if p.is_file()}
    assert present == set(expected), "run: python -m game_analytics.monitoring.dashboards --output grafana_dashboards"
    for relative, content in expected.items():
        assert (OUTPUT / relative).read_text() == content, f"{relative} is stale: regenerate the dashboards"


def test_generation_is_deterministic():
    assert dashboards.render_files() == dashboards.render_files()


def test_uids_are_stable_and_unique():
    uids = {name: model["uid"] for name, model in MODELS.items()}
    assert uids == {name: f"game-analytics-{name}" for name in dashboards.DASHBOARDS}
    assert all(len(uid) <= 40 for uid in uids.values())  # Grafana's UID length limit


@pytest.mark.parametrize("name", sorted(MODELS))
def test_template_variables(name):
    variables = {v["name"]: v for v in MODELS[name]["templating"]["list"]}
    extra = {"interventions": ["pgdatasource", "priority"], "audit": ["pgdatasource"],
             "security": ["pgdatasource"], "alerts": ["rule", "pgdatasource"], "activity": ["report"]}.get(name, [])
    assert list(variables) == ["datasource", "namespace", "game", "region", *extra]
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for var in ("namespace", "game", "region", *(v for v in ("rule", "report") if v in extra)):
        assert variables[var]["type"] == "query" and variables[var]["multi"] and variables[var]["includeAll"]
        assert variables[var]["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_panels_are_complete_and_laid_out(name):
    panels = MODELS[name]["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["title"]
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24 and pos["h"] > 0
        if panel["type"] == "row":
            continue
        assert panel["description"] and panel["targets"], panel["title"]
        assert panel["datasource"] in ({"type": "prometheus", "uid": "${datasource}"},
                                       {"type": "grafana-postgresql-datasource", "uid": "${pgdatasource}"})
        assert isinstance(panel["options"], dict)
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
    # no two panels overlap
    cells = set()
    for panel in panels:
        pos = panel["gridPos"]
        new = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & new, f"{panel['title']} overlaps another panel"
        cells |= new


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_panel_query_parses(name):
    queries = dashboard_queries.panel_queries(MODELS[name]) + dashboard_queries.variable_queries(MODELS[name])
    assert queries
    for expr in queries:
        promql.check(dashboard_queries.expand_variables(expr))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_metric_names_come_from_names_py(name):
    used = dashboard_queries.metric_names_used(MODELS[name])
    assert used
    unknown = {m for m in used if not names.is_known(m)}
    assert not unknown, f"{name} uses metrics not listed in monitoring/names.py: {unknown}"


REQUIRED = {
    "activity": {names.ACTIVE_PLAYERS, names.SESSIONS, names.EVENTS_INGESTED, names.ACTIVE_PLAYERS_BY_REGION,
                 names.PERIOD_EVENTS, names.KPI, names.FORECAST, names.FORECAST_30D},
    "economy": {names.PLAYER_WEALTH, names.GINI, names.PRICE_INDEX, names.TRADE_VOLUME, names.KPI, names.PLAYER_CLV,
                names.CHURN_RISK_PLAYERS, names.FORECAST, names.FORECAST_30D},
    "rankings": {names.PLAYER_RATING, names.LEAGUE_PLAYERS, names.TOP_MOVER_RATING_CHANGE, names.RANKING_MODEL_LOG_LOSS,
                 names.RANKING_MODEL_BRIER, names.RANKING_MATCH_QUALITY},
    "alerts": {names.DETECTION_FLAGGED, names.DETECTIONS, names.DETECTIONS_OPEN, names.INTERVENTIONS_OPEN,
               names.DETECTIONS_STORED, names.DETECTION_TOP_CASE},
    "interventions": {names.CASES_OPEN, names.CASE_OLDEST_OPEN_AGE, names.CASE_OLDEST_UNACKED_AGE, names.TIME_TO_ACK,
                      names.TIME_TO_RESOLVE},
    "audit": {names.AUDIT_CHAIN_LENGTH, names.AUDIT_CHAIN_HEAD},
    "operator": {names.RECONCILES, names.RECONCILE_ERRORS, names.RECONCILE_DURATION, names.INGEST_LAG,
                 names.INGEST_GROUP_LAG, names.INGEST_GROUP_PENDING, names.EXPORTER_REFRESH_DURATION,
                 names.EXPORTER_QUERY_ERRORS, names.EXPORTER_AS_OF, names.DETECTION_PASS_DURATION,
                 names.DETECTION_RULES, names.DETECTION_ERRORS},
    "topology": {"redis_instance_info", "redis_sentinel_master_ckquorum_status", "mongodb_up"},
    "ml": {names.RANKING_MODEL_LOG_LOSS, names.RANKING_MODEL_BRIER, names.CHURN_CLASSIFIER_AUC,
           names.MODEL_FIT_TIMESTAMP, names.ANOMALY_SCORE, names.FORECAST_MAPE},
    "security": {names.DEAD_LETTERS, names.DETECTIONS_STORED, names.DETECTION_FLAGGED},
    "platform": {names.INGEST_LAG, names.DB_STATEMENTS, names.DB_STATEMENT_SECONDS, "redis_keyspace_hits_total",
                 "redis_keyspace_misses_total", names.EXPORTER_REFRESH_DURATION},
}


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_dashboard_shows_what_it_is_for(name):
    families = {names.family(m) for m in dashboard_queries.metric_names_used(MODELS[name])}
    assert REQUIRED[name] <= families, REQUIRED[name] - families


def test_every_listed_metric_is_used_by_a_dashboard_or_an_alert():
    used = {names.family(m) for model in MODELS.values() for m in dashboard_queries.metric_names_used(model)}
    used |= {names.family(m) for _, rule in ALL_ALERTS for m in promql.metric_names(rule["expr"])}
    assert names.OWN_METRICS | names.EXTERNAL_METRICS <= used, (names.OWN_METRICS | names.EXTERNAL_METRICS) - used


@pytest.mark.parametrize("name", sorted(MODELS))
def test_config_map_is_labelled_and_fits(name):
    text = (OUTPUT / "configmaps" / f"{name}.yaml").read_text()
    config_map = yaml.safe_load(text)
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    (content,) = config_map["data"].values()
    assert json.loads(content) == MODELS[name]
    assert len(text.encode()) < dashboards.CONFIGMAP_LIMIT_BYTES
    # the sidecar writes each data key as a file: the key must be a valid ConfigMap key
    (key,) = config_map["data"]
    assert key.endswith(".json") and all(c.isalnum() or c in "-._" for c in key)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_grafana_operator_resource(name):
    resource = yaml.safe_load((OUTPUT / "grafana-operator" / f"{name}.yaml").read_text())
    assert resource["apiVersion"] == "grafana.integreatly.org/v1beta1" and resource["kind"] == "GrafanaDashboard"
    assert json.loads(resource["spec"]["json"])["uid"] == MODELS[name]["uid"]


def test_metric_names_used_reads_the_syntax_tree():
    model = {
        "panels": [
            {"type": "row", "panels": [{"targets": [{"expr": 'sum(rate(a_total{x="rate(b[5m])"}[$__rate_interval]))'}]}]},
            {"targets": [{"expr": '{__name__="c", namespace=~"$namespace"} / on() d offset 1h'}]},
            {"targets": [{"expr": "histogram_quantile(0.9, sum by (le) (e_bucket))"}, {"expr": ""}]},
        ],
        "templating": {"list": [{"type": "query", "query": 'label_values(f{job="x"}, namespace)'}]},
    }
    # "b" only appears inside a label value: a regex would find it, the parser does not
    assert dashboard_queries.metric_names_used(model) == {"a_total", "c", "d", "e_bucket", "f"}
    assert dashboard_queries.metric_names_used(json.dumps(model)) == {"a_total", "c", "d", "e_bucket", "f"}


def test_metric_names_used_rejects_broken_queries():
    with pytest.raises(promql.InvalidPromQL):
        dashboard_queries.metric_names_used({"panels": [{"targets": [{"expr": "sum(rate(x[5m])"}]}]})


def test_expand_variables():
    assert dashboard_queries.expand_variables('rate(x{a=~"$namespace", b="${game}"}[$__rate_interval])') == \
        'rate(x{a=~"x", b="x"}[5m])'
    assert dashboard_queries.expand_variables("increase(y[$__range]) + [[old]]") == "increase(y[1h]) + x"


def test_generator_entry_point(tmp_path):
    assert dashboards.main(["--output", str(tmp_path)]) == 0
    assert {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()} == set(dashboards.render_files())


def test_page_links_open_the_alerts_dashboard_with_game_and_rule_set():
    """The page's dashboard_url names the alerts dashboard's uid and only variables it has; every query of the
    alerts dashboard over a per-rule metric narrows by the ``rule`` variable the link sets."""
    from urllib.parse import parse_qs, urlsplit

    from game_analytics.api.alertrule import AlertRuleSpec
    from game_analytics.controller.alertrule import render
    from game_analytics.controller.common.render import Owner

    spec = AlertRuleSpec.model_validate({"category": "player", "detector": {"rapidAssetTransfer": {"count": 5}},
                                         "runbookURL": "https://runbooks.example.com/x"})
    owner = Owner("gameanalytics.io/v1alpha1", "AlertRule", "burst", "games", "uid-1")
    url = urlsplit(render.page_annotations(owner, spec, "https://grafana.example.com/")["dashboard_url"])
    model = MODELS["alerts"]
    assert url.path == f"/d/{model['uid']}"
    query = parse_qs(url.query)
    assert query["var-rule"] == ["games/burst"] and query["var-namespace"] == ["games"]
    assert query["var-game"] == ["{{ with $labels.game }}{{ . }}{{ else }}$__all{{ end }}"]
    variables = {v["name"] for v in model["templating"]["list"]}
    assert {key.removeprefix("var-") for key in query} <= variables
    per_rule = (names.DETECTION_FLAGGED, names.DETECTIONS, names.DETECTIONS_STORED, names.DETECTION_TOP_CASE, "ALERTS")
    exprs = [t["expr"] for p in model["panels"] for t in p.get("targets", []) if "expr" in t]
    rule_exprs = [e for e in exprs if any(n in e for n in per_rule)]
    assert len(rule_exprs) >= 6 and all('rule=~"$rule"' in e for e in rule_exprs), rule_exprs
    sql = [t["rawSql"] for p in model["panels"] for t in p.get("targets", []) if "rawSql" in t]
    assert sql and all("${rule:regex}" in q for q in sql)
