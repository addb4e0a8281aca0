"""``game-analytics render -f FILE``: the operator's children for each custom resource in FILE, no cluster."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from game_analytics import cli
from game_analytics.controller import offline

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
#: examples that reference an object of another example file
NEEDS = {"gamedatasource.yaml": "RedisFailover", "rankingjob.yaml": "GameDataSource",
         "scheduledreport.yaml": "GameDataSource",
         **{p.name: "GameDataSource" for p in EXAMPLES if p.name.startswith(("alertrule-", "rankingjob-"))}}
#: a GameDataSource named ``default`` that needs nothing else, for rendering an AlertRule alone
PLAIN_DATA_SOURCE = """---
apiVersion: gameanalytics.io/v1alpha1
kind: GameDataSource
metadata: {name: default}
spec:
  postgres: {dsnSecretRef: {name: analytics-postgres, key: dsn}}
  redis: {urlSecretRef: {name: analytics-redis, key: url}}
"""


def all_examples(tmp_path: Path) -> Path:
    path = tmp_path / "all.yaml"
    path.write_text("".join(f"---\n{p.read_text()}\n" for p in EXAMPLES))
    return path


def test_render_is_registered_in_the_cli():
    assert cli.DELEGATED["render"][0] == "game_analytics.controller.offline"


def test_every_example_renders_together(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GAME_ANALYTICS_MONITORING_LABELS", raising=False)
    assert cli.main(["render", "-f", str(all_examples(tmp_path)), "-n", "games"]) == 0
    children = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    kinds = {d["kind"] for d in children}
    assert {"PrometheusRule", "AlertmanagerConfig", "ServiceMonitor", "Deployment", "StatefulSet",
            "CronJob", "ConfigMap"} <= kinds
    assert all(d["metadata"]["namespace"] == "games" for d in children)
    rules = [d for d in children if d["kind"] == "PrometheusRule"]
    assert len(rules) == len([p for p in EXAMPLES if p.name.startswith("alertrule-")])
    for rule in rules:
        assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert rule["spec"]["groups"][0]["rules"][0]["labels"]["namespace"] == "games"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_each_example_alone_renders_or_names_the_unresolved_reference(example, capsys):
    status = offline.main(["-f", str(example)])
    out, err = capsys.readouterr()
    if example.name in NEEDS:
        assert status == offline.EXIT_UNRESOLVED and out == ""
        assert "unresolved reference" in err and NEEDS[example.name] in err and "spec." in err
    else:
        assert status == 0, err
        assert [d for d in yaml.safe_load_all(out) if d]


def _rule_file(tmp_path: Path, **spec_updates) -> Path:
    doc = yaml.safe_load((ROOT / "examples" / "alertrule-wealth-jump.yaml").read_text())
    doc["spec"].update(spec_updates)
    path = tmp_path / "rule.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize("updates,field", [
    ({"labels": {"cost-center": "fraud"}}, "spec.labels.cost-center"),
    ({"annotations": {"summary": "{{ $value"}}, "spec.annotations.summary"),
    ({"severity": "page-me"}, "spec.severity"),
])
def test_an_invalid_spec_exits_2_naming_the_field_and_prints_nothing(tmp_path, capsys, updates, field):
    assert offline.main(["-f", str(_rule_file(tmp_path, **updates))]) == offline.EXIT_INVALID
    out, err = capsys.readouterr()
    assert out == "" and f"{field}: " in err and "Traceback" not in err


def test_a_rendered_rule_promtool_refuses_is_reported(monkeypatch):
    """Past the operator's own checks, promtool (when on PATH) has the last word on every PrometheusRule."""
    monkeypatch.setattr(offline, "promtool_problems", lambda groups: "bad rule")
    doc = yaml.safe_load((ROOT / "examples" / "alertrule-wealth-jump.yaml").read_text())
    doc["metadata"]["namespace"] = "games"
    source = {**yaml.safe_load(PLAIN_DATA_SOURCE), "metadata": {"name": "default", "namespace": "games"}}
    rendered, errors, status = offline.render_documents([doc, source], offline.Images())
    assert status == offline.EXIT_INVALID and [source for source, _ in rendered] == ["GameDataSource games/default"]
    assert errors == ["AlertRule games/whale-wealth-jump: invalid spec: PrometheusRule whale-wealth-jump: "
                      "promtool check rules: bad rule"]


def test_promtool_is_run_when_on_path():
    import shutil

    promtool = shutil.which("promtool")
    assert promtool, "promtool is not on PATH: make test installs it (hack/install-debs.sh, Debian prometheus)"
    assert offline.promtool_problems([{"name": "g", "rules": [{"alert": "A", "expr": "up"}]}]) is None
    refused = offline.promtool_problems([{"name": "g", "rules": [{"alert": "A", "expr": "up", "for": "x"}]}])
    assert refused and "rules" in refused


def test_the_console_script_reads_stdin():
    text = (ROOT / "examples" / "alertrule-ingest-lag.yaml").read_text() + PLAIN_DATA_SOURCE
    result = subprocess.run([sys.executable, "-m", "game_analytics.cli", "render", "-f", "-"], input=text,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert {d["kind"] for d in yaml.safe_load_all(result.stdout) if d} >= {"PrometheusRule", "ConfigMap",
                                                                        "AlertmanagerConfig"}
