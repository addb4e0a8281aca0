"""AlertRule ``spec.autoResolveAfter`` reaches the detection worker: CRD model -> detector ConfigMap -> RuleConfig.

The worker's auto-resolve itself is tested on the real PostgreSQL in ``tests/workers/test_detection.py``
(``test_auto_resolve_after_the_condition_stays_clear``) from a hand-written ``rule.json``; this closes the chain
from the custom resource's field to what the worker reads.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from game_analytics.api.alertrule import AlertRuleSpec
from game_analytics.controller.alertrule import render
from game_analytics.controller.common.render import Owner
from game_analytics.workers.detection import load_rules_kubernetes

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "alertrule-wealth-jump.yaml"
OWNER = Owner("gameanalytics.io/v1alpha1", "AlertRule", "whale-wealth-jump", "games", "uid-1", 1)


class ConfigMaps:
    """``list_namespaced_config_map`` over the ConfigMaps the operator rendered (as the API would return them)."""

    def __init__(self, manifests: list[dict]) -> None:
        self.items = [SimpleNamespace(metadata=SimpleNamespace(name=m["metadata"]["name"]), data=m["data"])
                      for m in manifests]  # fmt: skip

    def list_namespaced_config_map(self, namespace: str, label_selector: str) -> SimpleNamespace:
        return SimpleNamespace(items=self.items)


def worker_rule(spec: dict) -> object:
    """The RuleConfig the detection worker loads from the detector ConfigMap rendered for ``spec``."""
    children = render.render(OWNER, AlertRuleSpec.model_validate(spec))
    config_maps = [c for c in children if c["kind"] == "ConfigMap"]
    rules, errors = load_rules_kubernetes("games", "gameanalytics.io/detector-config=true", ConfigMaps(config_maps))
    assert errors == []
    (rule,) = rules
    return rule


@pytest.mark.parametrize(("value", "expected"), [("30m", timedelta(minutes=30)), ("2h", timedelta(hours=2)),
                                                 ("1d", timedelta(days=1))])  # fmt: skip
def test_auto_resolve_after_reaches_the_detection_worker(value: str, expected: timedelta) -> None:
    spec = {**yaml.safe_load(EXAMPLE.read_text())["spec"], "autoResolveAfter": value}
    rule = worker_rule(spec)
    assert rule.auto_resolve_after == expected
    detector = next(c for c in render.render(OWNER, AlertRuleSpec.model_validate(spec)) if c["kind"] == "ConfigMap")
    assert json.loads(detector["data"]["rule.json"])["autoResolveAfter"] == value


def test_without_the_field_the_worker_never_auto_resolves() -> None:
    spec = yaml.safe_load(EXAMPLE.read_text())["spec"]
    assert "autoResolveAfter" not in spec
    assert worker_rule(spec).auto_resolve_after is None
