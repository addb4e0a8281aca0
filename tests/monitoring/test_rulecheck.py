"""The operator's whole-rule checks (monitoring/rulecheck.py) agree with the real promtool, case by case."""

from __future__ import annotations

import pytest
import yaml

from game_analytics.monitoring.rulecheck import check_groups

from .test_alert_rules import RULE_FILES, load_manifest
from .tools import run

#: name -> extra fields of an alerting rule ``A`` over ``up == 0``; ``ok_*`` load, ``bad_*`` are refused
CASES = {
    "ok_value": {"annotations": {"d": "{{ $value }}"}},
    "ok_with": {"annotations": {"d": "x {{ with $labels.game }}in {{ . }}{{ end }}"}},
    "ok_range": {"annotations": {"d": '{{- range $i, $e := query "up" }}{{ $e.Value }}{{ end -}}'}},
    "ok_printf": {"annotations": {"d": '{{ printf "%.2f" $value }} {{ $value | humanizePercentage }}'}},
    "ok_else_if": {"annotations": {"d": "{{/* c */}}{{ if gt $value 1.0 }}a{{ else if lt $value 0.5 }}b"
                                        "{{ else }}c{{ end }}"}},
    "ok_fields": {"annotations": {"d": "{{ $externalURL }} {{ .Labels.game }} {{ $labels.game | toUpper }}"}},
    "ok_braces_outside_actions": {"annotations": {"d": "https://x.example/d?var-rule={rule} }} {"}},
    "bad_unclosed_action": {"annotations": {"d": "{{ $value"}},
    "bad_block_without_end": {"annotations": {"d": "{{ if true }}x"}},
    "bad_end_without_block": {"annotations": {"d": "{{ end }}"}},
    "bad_unknown_function": {"annotations": {"d": "{{ humanise $value }}"}},
    "bad_undeclared_variable": {"annotations": {"d": "{{ $foo }}"}},
    "bad_unterminated_string": {"annotations": {"d": '{{ "abc }}'}},
    "bad_empty_action": {"annotations": {"d": "{{}}"}},
    "bad_unclosed_paren": {"annotations": {"d": "{{ (len $labels }}"}},
    "bad_label_key_dash": {"labels": {"cost-center": "x"}},
    "bad_label_key_kubernetes": {"labels": {"app.kubernetes.io/part-of": "x"}},
    "bad_annotation_key": {"annotations": {"a-b": "x"}},
    "bad_label_template": {"labels": {"x": "{{ $value"}},
    "bad_for": {"for": "5 minutes"},
    "bad_expr": {"expr": "sum(rate(x[5m])"},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_agrees_with_promtool(promtool, tmp_path, case):
    groups = [{"name": "g", "rules": [{"alert": "A", "expr": "up == 0", **CASES[case]}]}]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}))
    promtool_ok = run([promtool, "check", "rules", str(path)]).returncode == 0
    problems = check_groups(groups)
    assert promtool_ok == case.startswith("ok_"), "the case itself is mislabelled"
    assert (not problems) == promtool_ok, problems
    if problems:
        assert problems[0].path.startswith("groups[0].rules[0]")


def test_paths_name_the_offending_key():
    groups = [{"name": "g", "rules": [{"alert": "A", "expr": "up", "labels": {"cost-center": "x"}}]},
              {"name": "g", "rules": []}]
    assert [p.path for p in check_groups(groups)] == ["groups[0].rules[0].labels.cost-center", "groups[1].name"]


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_the_stacks_own_rules_pass(path):
    assert check_groups(load_manifest(path)["spec"]["groups"]) == []
