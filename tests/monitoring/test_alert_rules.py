"""The stack's own alert rules (alert_rules/) and the rules AlertRules render to, checked by the real promtool.

``promtool check rules`` and ``promtool test rules`` read plain rule files, so each PrometheusRule's
``spec.groups`` is extracted to ``<stem>.rules.yaml`` next to a copy of ``alert_rules/tests/<stem>_test.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from game_analytics.api.alertrule import DETECTOR_CATEGORIES, AlertRuleSpec, Category
from game_analytics.controller.alertrule import render as alertrule
from game_analytics.controller.common.render import Owner
from game_analytics.monitoring import names, promql

from .tools import REPO, run

RULES_DIR = REPO / "alert_rules"
RULE_FILES = sorted(RULES_DIR.glob("*.yaml"))
TEST_FILES = sorted((RULES_DIR / "tests").glob("*_test.yaml"))
RUNBOOK_PREFIX = "https://github.com/game-analytics/game-analytics/blob/main/"
REQUIRED_ANNOTATIONS = ("summary", "description", "runbook_url")
SEVERITIES = {"critical", "warning", "info"}


def load_manifest(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def alerts(path: Path) -> list[dict]:
    return [rule for group in load_manifest(path)["spec"]["groups"] for rule in group["rules"] if "alert" in rule]


def write_plain(groups: list[dict], path: Path) -> Path:
    """Write ``groups`` as a plain Prometheus rule file (what promtool and Prometheus itself read)."""
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with every group file as ``<stem>.rules.yaml`` and every unit test file copied beside it."""
    out = tmp_path_factory.mktemp("alert-rules")
    for path in RULE_FILES:
        write_plain(load_manifest(path)["spec"]["groups"], out / f"{path.stem}.rules.yaml")
    for path in TEST_FILES:
        (out / path.name).write_text(path.read_text())
    return out


def test_there_is_one_file_per_group_and_a_test_file_per_group():
    assert RULE_FILES, "alert_rules/ is empty"
    for path in RULE_FILES:
        manifest = load_manifest(path)
        assert manifest["apiVersion"] == "monitoring.coreos.com/v1"
        assert manifest["kind"] == "PrometheusRule"
        assert len(manifest["spec"]["groups"]) == 1, f"{path.name}: one group per file"
    assert {p.name.removesuffix("_test.yaml") for p in TEST_FILES} == {p.stem for p in RULE_FILES}


def test_promtool_check_rules(promtool, extracted):
    files = sorted(str(p) for p in extracted.glob("*.rules.yaml"))
    result = run([promtool, "check", "rules", *files])
    assert result.returncode == 0, result.stdout + result.stderr
    found = sum(int(line.split()[1]) for line in result.stdout.splitlines() if "rules found" in line)
    assert found == sum(len(alerts(p)) for p in RULE_FILES)


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests(promtool, extracted, test_file):
    result = run([promtool, "test", "rules", test_file.name], cwd=extracted)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_can_fail(promtool, extracted, tmp_path):
    """The harness is not vacuous: a test expecting a firing alert where none fires is reported as a failure."""
    broken = yaml.safe_load((extracted / "workers_test.yaml").read_text())
    for case in broken["tests"]:
        for check in case["alert_rule_test"]:
            check["eval_time"] = "1m"  # too early for any `for:` to have elapsed
    broken["rule_files"] = [str(extracted / "workers.rules.yaml")]
    (tmp_path / "broken_test.yaml").write_text(yaml.safe_dump(broken))
    result = run([promtool, "test", "rules", "broken_test.yaml"], cwd=tmp_path)
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


def _cases(test_file: Path) -> dict[str, dict[str, int]]:
    """alertname -> {"firing": n, "silent": n} over every alert_rule_test of a promtool test file."""
    seen: dict[str, dict[str, int]] = {}
    for case in yaml.safe_load(test_file.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            counts = seen.setdefault(check["alertname"], {"firing": 0, "silent": 0})
            counts["firing" if check.get("exp_alerts") else "silent"] += 1
    return seen


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda p: p.name)
def test_every_alert_has_a_firing_and_a_silent_case(rule_file):
    cases = _cases(RULES_DIR / "tests" / f"{rule_file.stem}_test.yaml")
    for rule in alerts(rule_file):
        counts = cases.get(rule["alert"], {"firing": 0, "silent": 0})
        assert counts["firing"] >= 1, f"{rule['alert']}: no promtool case where it fires"
        assert counts["silent"] >= 1, f"{rule['alert']}: no promtool case where it stays silent"
    unknown = set(cases) - {rule["alert"] for rule in alerts(rule_file)}
    assert not unknown, f"test cases for alerts that do not exist: {unknown}"


ALL_ALERTS = [(path.name, rule) for path in RULE_FILES for rule in alerts(path)]


@pytest.mark.parametrize("file_name,rule", ALL_ALERTS, ids=lambda v: v if isinstance(v, str) else v["alert"])
def test_alert_has_labels_annotations_and_runbook(file_name, rule):
    assert rule["alert"].startswith("GameAnalytics")
    assert rule["labels"]["severity"] in SEVERITIES
    assert rule["labels"].get("team")
    for key in REQUIRED_ANNOTATIONS:
        assert rule["annotations"].get(key, "").strip(), f"{rule['alert']}: annotation {key} missing"
    url = rule["annotations"]["runbook_url"]
    assert url.startswith(RUNBOOK_PREFIX + "docs/runbooks/") and url.endswith(".md"), url
    runbook = REPO / urlparse(url).path.split("/blob/main/", 1)[1]
    assert runbook.is_file(), f"{rule['alert']}: runbook {runbook.relative_to(REPO)} does not exist"
    assert rule["alert"] in runbook.read_text(), f"{runbook.name} does not mention {rule['alert']}"


@pytest.mark.parametrize("file_name,rule", ALL_ALERTS, ids=lambda v: v if isinstance(v, str) else v["alert"])
def test_alert_uses_only_listed_metric_names(file_name, rule):
    used = promql.metric_names(rule["expr"])
    unknown = {name for name in used if not names.is_known(name)}
    assert not unknown, f"{rule['alert']} uses metrics not listed in monitoring/names.py: {unknown}"


def test_alert_names_are_unique():
    seen = [rule["alert"] for _, rule in ALL_ALERTS]
    assert len(seen) == len(set(seen))


# ---- rules rendered from AlertRule resources ------------------------------------------------------------------

EXAMPLES = sorted((REPO / "examples").glob("alertrule-*.yaml"))

#: the smallest valid parameters of each detector type
DETECTOR_PARAMS = {
    "suddenWealthChange": {"thresholdRatio": 3},
    "rapidAssetTransfer": {"count": 20},
    "unusualLoginPattern": {},
    "currencyInflation": {"rate": 0.05},
    "marketManipulation": {"priceChange": 0.5},
    "monopolyFormation": {"marketShare": 0.4},
    "highErrorRate": {"ratio": 0.05},
    "lowEngagement": {"minActivePlayers": 100},
    "ingestLag": {"maxLagSeconds": 120},
    "anomalyScore": {},
    "churnRisk": {},
    "forecastDeviation": {},
    "promql": {"expr": 'sum by (game) (rate(game_analytics_events_ingested_total{event_type="purchase"}[5m])) == 0'},
}


def render_rule(name: str, spec: dict, grafana_url: str | None = None) -> dict:
    """The PrometheusRule an AlertRule ``ga/<name>`` renders to."""
    owner = Owner("gameanalytics.io/v1alpha1", "AlertRule", name, "ga", "uid-1", 1)
    children = alertrule.render(owner, AlertRuleSpec.model_validate(spec), grafana_url=grafana_url)
    (rule,) = [c for c in children if c["kind"] == "PrometheusRule"]
    return rule


def test_parametrized_detectors_cover_every_type():
    assert set(DETECTOR_PARAMS) == set(DETECTOR_CATEGORIES)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_alert_rule_renders_rules_promtool_accepts(promtool, tmp_path, example):
    doc = load_manifest(example)
    rule = render_rule(doc["metadata"]["name"], doc["spec"])
    path = write_plain(rule["spec"]["groups"], tmp_path / "rendered.rules.yaml")
    result = run([promtool, "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rules found" in result.stdout


@pytest.mark.parametrize("detector", sorted(DETECTOR_PARAMS))
def test_each_detector_type_renders_a_rule_promtool_accepts(promtool, tmp_path, detector):
    category = DETECTOR_CATEGORIES[detector] or Category.SYSTEM
    spec = {"category": category.value, "detector": {detector: DETECTOR_PARAMS[detector]},
            "runbookURL": "https://runbooks.example.com/x", "for": "5m"}
    rule = render_rule(f"{detector.lower()}-rule", spec)
    path = write_plain(rule["spec"]["groups"], tmp_path / "rendered.rules.yaml")
    result = run([promtool, "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    (alert,) = rule["spec"]["groups"][0]["rules"]
    unknown = {n for n in promql.metric_names(alert["expr"]) if not names.is_known(n)}
    assert not unknown, f"{detector} renders metrics not listed in monitoring/names.py: {unknown}"


def test_promtool_rejects_a_broken_rule(promtool, tmp_path):
    """The check is not vacuous: promtool refuses an expression that does not parse."""
    path = write_plain([{"name": "g", "rules": [{"alert": "Broken", "expr": "sum(rate(x[5m])"}]}], tmp_path / "b.yaml")
    assert run([promtool, "check", "rules", str(path)]).returncode != 0


def test_sudden_wealth_change_rule_fires_while_subjects_are_flagged(promtool, tmp_path):
    doc = load_manifest(REPO / "examples" / "alertrule-wealth-jump.yaml")
    name = doc["metadata"]["name"]
    rule = render_rule(name, doc["spec"])
    write_plain(rule["spec"]["groups"], tmp_path / "rendered.rules.yaml")
    rule_id = f"ga/{name}"
    flagged = names.DETECTION_FLAGGED
    labels = {"severity": "critical", "team": "economy", "category": "player", "rule": rule_id, "namespace": "ga"}
    test = {
        "rule_files": ["rendered.rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                {"series": f'{flagged}{{namespace="ga", rule="{rule_id}", detector="suddenWealthChange", '
                           f'category="player", severity="critical", pod="ga-detection-1"}}', "values": "0 0 0 2 3 0"},
                # a detection worker in another namespace exporting this rule's id (a spoofed detector
                # ConfigMap) must not make it fire: the scrape gives its series namespace="intruder"
                {"series": f'{flagged}{{namespace="intruder", rule="{rule_id}", detector="suddenWealthChange", '
                           f'category="player", severity="critical", pod="x-detection-1"}}', "values": "7 7 7 7 7 7"},
                # another rule flagging subjects must not make this one fire
                {"series": f'{flagged}{{namespace="ga", rule="ga/other", detector="suddenWealthChange", '
                           f'category="player", severity="critical", pod="ga-detection-1"}}', "values": "5 5 5 5 5 5"},
                # the worker's top-case series of the rule (rank -> intervention id; two pods report the same),
                # read by the description's query in rank order; another namespace's series of the same rule id
                # is never read
                *({"series": f'{names.DETECTION_TOP_CASE}{{namespace="ga", rule="{rule_id}", rank="{rank}", '
                             f'pod="ga-detection-{pod}"}}', "values": f"_ _ _ {case} {case} _"}
                  for rank, case in (("3", 4), ("1", 7), ("2", 9)) for pod in (1, 2)),
                {"series": f'{names.DETECTION_TOP_CASE}{{namespace="intruder", rule="{rule_id}", rank="1"}}',
                 "values": "1 1 1 1 1 1"},
            ],
            "alert_rule_test": [
                {"eval_time": "2m", "alertname": alertrule.alert_name(name), "exp_alerts": []},
                {"eval_time": "4m", "alertname": alertrule.alert_name(name), "exp_alerts": [{
                    "exp_labels": labels,
                    "exp_annotations": {
                        "summary": f"all games: 3 subjects flagged by suddenWealthChange (AlertRule {rule_id})",
                        "description": f"AlertRule {rule_id} (suddenWealthChange, severity critical) flags 3 subjects "
                                       f"in all games. Top cases: #1 (intervention 7) #2 (intervention 9) "
                                       f"#3 (intervention 4). All of them: game-analytics interventions list "
                                       f"--rule {rule_id} --status open",
                        "dashboard": doc["spec"]["annotations"]["dashboard"],
                        "runbook_url": doc["spec"]["runbookURL"],
                    },
                }]},
                {"eval_time": "5m", "alertname": alertrule.alert_name(name), "exp_alerts": []},
            ],
        }],
    }
    (tmp_path / "wealth_test.yaml").write_text(yaml.safe_dump(test, sort_keys=False))
    result = run([promtool, "test", "rules", "wealth_test.yaml"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_low_engagement_fires_with_the_namespace_label_and_does_not_double_with_two_exporters(promtool, tmp_path):
    """Two exporter replicas report the same active-player count: ``max`` keeps it (a ``sum`` would double it and
    hide the drop); another namespace's gauge is never selected; the alert carries ``namespace``."""
    spec = {"category": "system", "detector": {"lowEngagement": {"minActivePlayers": 100}},
            "runbookURL": "https://runbooks.example.com/x", "severity": "warning", "team": "ops"}
    rule = render_rule("low-engagement", spec)
    write_plain(rule["spec"]["groups"], tmp_path / "rendered.rules.yaml")
    active = names.ACTIVE_PLAYERS
    alert = alertrule.alert_name("low-engagement")
    series = [
        {"series": f'{active}{{namespace="ga", game="g1", period="1h", pod="exporter-{i}"}}', "values": "80 80 80"}
        for i in (1, 2)
    ] + [{"series": f'{active}{{namespace="elsewhere", game="g2", period="1h", pod="exporter-1"}}', "values": "5 5 5"}]
    test = {"rule_files": ["rendered.rules.yaml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": series,
        "alert_rule_test": [{"eval_time": "2m", "alertname": alert, "exp_alerts": [{
            "exp_labels": {"namespace": "ga", "game": "g1", "severity": "warning", "team": "ops",
                           "category": "system", "rule": "ga/low-engagement"},
            "exp_annotations": {
                "summary": "g1: lowEngagement at 80 (AlertRule ga/low-engagement)",
                "description": "AlertRule ga/low-engagement (lowEngagement, severity warning) fired with value 80 "
                               "in game g1.",
                "runbook_url": "https://runbooks.example.com/x",
            },
        }]}],
    }]}
    (tmp_path / "engagement_test.yaml").write_text(yaml.safe_dump(test, sort_keys=False))
    result = run([promtool, "test", "rules", "engagement_test.yaml"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("detector", sorted(DETECTOR_PARAMS))
def test_every_template_selector_is_scoped_to_the_namespace(detector):
    """Every selector of a rendered template carries ``namespace="<the AlertRule's namespace>"`` and every
    alert the ``namespace`` label (raw ``promql`` is the user's own expression: only the label is guaranteed)."""
    import promql_parser

    category = DETECTOR_CATEGORIES[detector] or Category.SYSTEM
    spec = {"category": category.value, "detector": {detector: DETECTOR_PARAMS[detector]},
            "runbookURL": "https://runbooks.example.com/x"}
    (alert,) = render_rule(f"{detector.lower()}-rule", spec)["spec"]["groups"][0]["rules"]
    assert alert["labels"]["namespace"] == "ga"
    if detector == "promql":
        return
    selectors: list = []
    promql_parser.walk(promql_parser.parse(alert["expr"]),
                       lambda n: selectors.append(n) if isinstance(n, promql_parser.VectorSelector) else None)
    assert selectors
    for sel in selectors:
        assert ("namespace", "ga") in {(m.name, m.value) for m in sel.matchers.matchers}, str(sel.prettify())


def test_readme_applies_the_folder_and_kubectl_reads_exactly_the_rule_files():
    """``kubectl apply -f alert_rules/*.yaml`` passes the extra files as arguments; the README applies the folder,
    from which kubectl reads every group file and nothing under tests/."""
    readme = (RULES_DIR / "README.md").read_text()
    assert "kubectl apply -n monitoring -f alert_rules/\n" in readme
    assert "kubectl apply -n monitoring -f alert_rules/*.yaml" not in readme
    kubectl = REPO / ".cache" / "bin" / "kubectl"
    if not kubectl.exists():
        pytest.fail("kubectl is not installed: run `make tools`")
    result = run([str(kubectl), "label", "--local", "-f", str(RULES_DIR), "release=x", "-o", "name"])
    assert result.returncode == 0, result.stderr
    names_read = sorted(line.rsplit("/", 1)[1] for line in result.stdout.split())
    assert names_read == sorted(load_manifest(p)["metadata"]["name"] for p in RULE_FILES)


def test_page_links_the_alerts_dashboard_with_its_variables_set(promtool, tmp_path):
    """With the operator's Grafana URL, the page carries ``dashboard_url``: the alerts dashboard (the uid
    monitoring/dashboards.py gives it) with ``namespace`` and ``game`` set from the alert."""
    from game_analytics.monitoring.dashboards import UID_PREFIX

    assert alertrule.ALERTS_DASHBOARD_UID == f"{UID_PREFIX}alerts"
    spec = {"category": "system", "detector": {"lowEngagement": {"minActivePlayers": 100}},
            "runbookURL": "https://runbooks.example.com/x", "severity": "warning", "team": "ops"}
    rule = render_rule("low-engagement", spec, grafana_url="https://grafana.example.com/")
    write_plain(rule["spec"]["groups"], tmp_path / "rendered.rules.yaml")
    alert = alertrule.alert_name("low-engagement")
    test = {"rule_files": ["rendered.rules.yaml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [{"series": f'{names.ACTIVE_PLAYERS}{{namespace="ga", game="g1", period="1h"}}',
                          "values": "80 80 80"}],
        "alert_rule_test": [{"eval_time": "2m", "alertname": alert, "exp_alerts": [{
            "exp_labels": {"namespace": "ga", "game": "g1", "severity": "warning", "team": "ops",
                           "category": "system", "rule": "ga/low-engagement"},
            "exp_annotations": {
                "summary": "g1: lowEngagement at 80 (AlertRule ga/low-engagement)",
                "description": "AlertRule ga/low-engagement (lowEngagement, severity warning) fired with value 80 "
                               "in game g1.",
                "dashboard_url": "https://grafana.example.com/d/game-analytics-alerts?var-namespace=ga&var-game=g1&var-rule=ga%2Flow-engagement",
                "runbook_url": "https://runbooks.example.com/x",
            },
        }]}],
    }]}
    (tmp_path / "dashboard_test.yaml").write_text(yaml.safe_dump(test, sort_keys=False))
    result = run([promtool, "test", "rules", "dashboard_test.yaml"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
