"""Checks moved from the operator into the CRDs because the CR fuzzer saw them as InvalidSpec (issue 15).

In the long fuzz run 926 AlertRules and 1,291 ScheduledReports were admitted by the CRD and then refused by the
operator. The classes a schema pattern or CEL rule can express are now refused at apply (docs/hardening.md lists
those that stay in status and why):

- cron schedules: the five-field grammar with each field's range (CEL, :data:`~game_analytics.api.common.CRON_RULE`);
  ``0 0 * * 7`` and ``*/0 * * * *`` were admitted, croniter accepts weekday 7, and the CronJob was refused;
- ``\\s`` in patterns: RE2 (the API server), Rust regex (pydantic, the operator) and Python's ``re`` (this harness)
  disagree on it, so ``0\\u2005* * * * *`` was five cron fields at apply and six in the operator;
- Kubernetes label keys and values of ``monitoringLabels`` / ``nodeSelector`` / ``matchLabels`` (pattern, and a CEL
  rule on the keys), Prometheus label names as the keys of an AlertRule's ``labels`` and ``annotations``.
"""

from __future__ import annotations

import re

import cel
import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from game_analytics.api import KINDS, KINDS_BY_NAME
from game_analytics.api.common import CRON_GRAMMAR, check_cron_grammar
from game_analytics.monitoring import rulecheck

from . import crd_fuzz
from .test_reconcile import body

#: pattern classes whose meaning differs between RE2, Rust regex and Python's re
ENGINE_DEPENDENT = re.compile(r"(?<!\\)(\\\\)*\\[sSdDwWb]")


def _walk(node, path=""):
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")


@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
def test_every_pattern_means_the_same_to_every_regex_engine_and_every_rule_compiles(kind):
    schema = crd_fuzz.openapi_schema(kind)
    for path, node in _walk(schema):
        if isinstance(node.get("pattern"), str):
            assert not ENGINE_DEPENDENT.search(node["pattern"]), f"{kind}{path}: {node['pattern']!r}"
        for rule in node.get("x-kubernetes-validations") or []:
            cel.compile(rule["rule"])  # a rule that does not compile would make the API server refuse the CRD
            assert not ENGINE_DEPENDENT.search(rule["rule"]), f"{kind}{path}: {rule['rule']!r}"


def _report(schedule: str) -> dict:
    obj = body("scheduledreport.yaml")
    obj["spec"]["schedule"] = schedule
    return obj


@pytest.mark.parametrize("schedule", ["0 0 * * 7", "*/0 * * * *", "61 * * * *", "0 0 0 * *", "0 24 * * *",
                                      "0\u2005* * * * *", "0 0 * 13 *", "0 0 * * MON#2", "0 0 L * *", "x y z w v"])
def test_a_schedule_no_cronjob_takes_is_refused_at_apply(schedule):
    admitted, refusals = crd_fuzz.admit(_report(schedule))
    assert admitted is None
    assert any(r.startswith(".spec.schedule") for r in refusals), refusals
    with pytest.raises(ValidationError):  # the operator refuses it too (objects stored under an older CRD)
        KINDS_BY_NAME["ScheduledReport"].spec.model_validate(_report(schedule)["spec"])


@pytest.mark.parametrize("schedule", ["0 6 * * 1", "*/15 * * * *", "0 0 1 jan,JUL ?", "0 0 ? * MON-FRI",
                                      "5,10-20/5 0-23/2 1-31/3 1-12 0-6", "@daily", "0\t6 * * 1", "00 06 01 01 00"])
def test_a_schedule_every_parser_takes_is_admitted(schedule):
    admitted, refusals = crd_fuzz.admit(_report(schedule))
    assert admitted is not None, refusals
    assert croniter.is_valid(schedule)
    KINDS_BY_NAME["ScheduledReport"].spec.model_validate(admitted["spec"])


@settings(max_examples=300, deadline=None, database=None)
@given(st.from_regex(CRON_GRAMMAR, fullmatch=True))
def test_every_schedule_the_cron_rule_admits_is_valid_to_croniter(schedule):
    """The CEL rule's grammar never admits a schedule the operator's croniter check would refuse; what is left to
    the operator is a reversed range (``5-1``), which check_cron_grammar refuses naming it."""
    try:
        check_cron_grammar(schedule)
    except ValueError as exc:
        assert "starts after it ends" in str(exc)
        return
    assert croniter.is_valid(schedule), schedule


def test_a_reversed_range_is_refused_by_the_model_naming_it():
    with pytest.raises(ValidationError, match="the range 5-1 starts after it ends"):
        KINDS_BY_NAME["ScheduledReport"].spec.model_validate(_report("5-1 * * * *")["spec"])


@pytest.mark.parametrize(("field", "value"), [
    ("monitoringLabels", {"bad key!": "x"}), ("monitoringLabels", {"release": "a b"}),
    ("monitoringLabels", {"-x": "y"}), ("monitoringLabels", {"a" * 64: "y"}),
    ("labels", {"cost-center": "x"}), ("labels", {"__name__": "x"}), ("annotations", {"0summary": "x"}),
    ("annotations", {"é": "x"}),
])
def test_a_label_the_rendered_objects_cannot_carry_is_refused_at_apply(field, value):
    obj = body("alertrule-wealth-jump.yaml")
    obj["spec"][field] = value
    admitted, refusals = crd_fuzz.admit(obj)
    assert admitted is None
    assert any(r.startswith(f".spec.{field}") for r in refusals), refusals
    if "__name__" in value:  # the model takes it; the operator's check of the rendered rule refuses it
        spec = KINDS_BY_NAME["AlertRule"].spec.model_validate(obj["spec"])
        assert rulecheck.check_groups([{"name": "g", "rules": [{"alert": "A", "expr": "up", "labels": spec.labels}]}])
        return
    with pytest.raises(ValidationError):
        KINDS_BY_NAME["AlertRule"].spec.model_validate(obj["spec"])


def test_good_labels_are_admitted():
    obj = body("alertrule-wealth-jump.yaml")
    obj["spec"].update(monitoringLabels={"release": "kube-prometheus-stack", "example.com/tier": "1"},
                       labels={"cost_center": "games"}, annotations={"summary": "x \u2005 y", "_x": ""})
    admitted, refusals = crd_fuzz.admit(obj)
    assert admitted is not None, refusals
    KINDS_BY_NAME["AlertRule"].spec.model_validate(admitted["spec"])


@pytest.mark.parametrize("to", ["ops@example.com", "a@b.io, c@d.io", "ops\u2005x@example.com", "ops@exa\x1cmple.com",
                                "ops@example.com,\u2005c@d.io", "é@example.com"])
def test_the_crd_and_the_model_agree_on_addresses(to):
    """Before, the API server (RE2: ``\\s`` is ASCII) admitted ``ops\\u2005x@example.com`` and the operator
    (pydantic's Unicode ``\\s``) refused it."""
    obj = body("alertrule-wealth-jump.yaml")
    obj["spec"]["channels"] = [{"name": "mail", "email": {"to": to, "from": "alerts@example.com",
                                                         "smarthost": "smtp.example.com:587"}}]
    admitted, _ = crd_fuzz.admit(obj)
    try:
        KINDS_BY_NAME["AlertRule"].spec.model_validate(obj["spec"])
        model_ok = True
    except ValidationError:
        model_ok = False
    assert (admitted is not None) == model_ok
    assert model_ok == (to in ("ops@example.com", "a@b.io, c@d.io"))
