"""AlertRules as an SRE writes them, which Prometheus would refuse once rendered, end Ready=False InvalidSpec
with the field named, in one reconcile, creating nothing and raising nothing (so the handler never loops)."""

import pytest
import yaml

from game_analytics.api import KINDS_BY_NAME
from game_analytics.config import Images
from game_analytics.controller.common import conditions
from game_analytics.controller.reconcile import reconcile

from .fake_cluster import FakeCluster
from .test_reconcile import EXAMPLES


def rule_body(example: str, **spec_updates) -> dict:
    doc = yaml.safe_load((EXAMPLES / example).read_text())
    doc["metadata"].update(namespace="games", uid="uid-1", generation=1)
    doc["spec"].update(spec_updates)
    doc["status"] = {}
    return doc


CASES = [
    # (case, example, spec updates, field the condition must name, words of the reason)
    ("kubernetes-style label key", "alertrule-wealth-jump.yaml", {"labels": {"cost-center": "fraud"}},
     "spec.labels.cost-center", "should match pattern"),  # the model's key pattern (the CRD's too, at apply)
    ("dotted label key", "alertrule-wealth-jump.yaml", {"labels": {"app.kubernetes.io/part-of": "economy"}},
     "spec.labels.app.kubernetes.io/part-of", "should match pattern"),
    ("unterminated template", "alertrule-wealth-jump.yaml",
     {"annotations": {"summary": "wealth jumped by {{ $value"}}, "spec.annotations.summary", "unclosed action"),
    ("unknown template function", "alertrule-wealth-jump.yaml",
     {"annotations": {"summary": "{{ $value | humanise }}"}}, "spec.annotations.summary", "humanise"),
    ("annotation key with a dash", "alertrule-wealth-jump.yaml", {"annotations": {"grafana-url": "x"}},
     "spec.annotations.grafana-url", "should match pattern"),
    ("template in a label value", "alertrule-wealth-jump.yaml", {"labels": {"tier": "{{ if true }}x"}},
     "spec.labels.tier", "has no {{end}}"),
    ("two detectors", "alertrule-ingest-lag.yaml",
     {"detector": {"ingestLag": {"maxLagSeconds": 5}, "highErrorRate": {"ratio": 0.1}}}, "spec.detector",
     "exactly one detector"),
]


@pytest.mark.parametrize("case,example,updates,field,reason", CASES, ids=[c[0] for c in CASES])
def test_rule_prometheus_would_refuse_is_invalid_spec_naming_the_field(case, example, updates, field, reason):
    cluster, body = FakeCluster(), rule_body(example, **updates)
    outcome = reconcile(KINDS_BY_NAME["AlertRule"], body, cluster, Images())
    ready = conditions.get(outcome.status["conditions"], "Ready")
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpec", ready
    assert ready["message"].startswith(f"{field}: "), ready["message"]
    assert reason in ready["message"], ready["message"]
    assert cluster.created() == {}, "nothing is created for a rule Prometheus would refuse"
    assert ("Warning", "InvalidSpec", ready["message"]) in outcome.events


@pytest.mark.parametrize("currency", ["US\nD", 'US"D', "US\\D"])
def test_currency_that_would_break_promql_is_invalid_spec(currency):
    cluster = FakeCluster()
    body = rule_body("alertrule-inflation.yaml")
    body["spec"]["detector"]["currencyInflation"]["currency"] = currency
    outcome = reconcile(KINDS_BY_NAME["AlertRule"], body, cluster, Images())
    ready = conditions.get(outcome.status["conditions"], "Ready")
    assert ready["reason"] == "InvalidSpec", ready
    assert ready["message"].startswith("spec.detector.currencyInflation.currency: "), ready["message"]
    assert cluster.created() == {}


def test_the_crd_rejects_such_a_currency_at_apply():
    """The pattern is in the CRD too, so the API server refuses it before the operator sees it."""
    crd = yaml.safe_load((EXAMPLES.parent / "crds" / "alertrules.gameanalytics.io.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    currency = schema["properties"]["spec"]["properties"]["detector"]["properties"]["currencyInflation"][
        "properties"]["currency"]
    assert currency["pattern"] == r'^[^"\\\x00-\x1f\x7f]+$'


def test_a_valid_spec_with_templates_and_underscored_labels_is_ready():
    cluster = FakeCluster()
    body = rule_body("alertrule-wealth-jump.yaml", labels={"cost_center": "fraud"},
                     annotations={"summary": "{{ $labels.game }}: wealth x{{ $value | humanize }}"})
    outcome = reconcile(KINDS_BY_NAME["AlertRule"], body, cluster, Images())
    assert conditions.get(outcome.status["conditions"], "Ready")["status"] == "True"
