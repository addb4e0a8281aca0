"""The detection worker only evaluates rules of the namespace its detector ConfigMaps live in."""

from __future__ import annotations

import json
from types import SimpleNamespace

from game_analytics.workers.detection import load_rules_kubernetes


def _config_map(name: str, rule: str) -> SimpleNamespace:
    doc = {"rule": rule, "category": "player", "severity": "critical", "detector": "suddenWealthChange",
           "params": {"thresholdRatio": 3}}
    return SimpleNamespace(metadata=SimpleNamespace(name=name), data={"rule.json": json.dumps(doc)})


class FakeCoreV1:
    """``list_namespaced_config_map`` over a fixed list (the selector is the API server's business)."""

    def __init__(self, items: list[SimpleNamespace]):
        self.items = items
        self.calls: list[tuple[str, str]] = []

    def list_namespaced_config_map(self, namespace: str, label_selector: str) -> SimpleNamespace:
        self.calls.append((namespace, label_selector))
        return SimpleNamespace(items=self.items)


def test_a_config_map_naming_another_namespaces_rule_is_ignored_and_reported():
    api = FakeCoreV1([_config_map("own-detector", "b/own"), _config_map("spoof-detector", "a/x")])
    rules, errors = load_rules_kubernetes("b", "gameanalytics.io/detector-config=true", api=api)
    assert [r.rule for r in rules] == ["b/own"]
    (error,) = errors
    assert "configmap b/spoof-detector" in error and "'a/x'" in error and "namespace 'b'" in error
    assert api.calls == [("b", "gameanalytics.io/detector-config=true")]


def test_a_rule_id_that_only_shares_a_prefix_is_not_the_namespace():
    rules, errors = load_rules_kubernetes("b", "x=y", api=FakeCoreV1([_config_map("cm", "bb/x")]))
    assert rules == [] and len(errors) == 1
