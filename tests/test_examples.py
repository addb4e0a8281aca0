"""Every manifest in examples/ is valid for its kind's model, and every kind has an example."""

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from game_analytics.api import API_VERSION, KINDS_BY_NAME
from game_analytics.validation import SpecError, check_alert_rule, check_ranking_job, check_scheduled_report

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))
CHECKS = {"AlertRule": check_alert_rule, "RankingJob": check_ranking_job, "ScheduledReport": check_scheduled_report}


def documents():
    for path in EXAMPLES:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path.name, doc


@pytest.mark.parametrize("name,doc", list(documents()), ids=lambda v: v if isinstance(v, str) else "")
def test_example_is_valid(name, doc):
    assert doc["apiVersion"] == API_VERSION
    spec = KINDS_BY_NAME[doc["kind"]].spec.model_validate(doc["spec"])
    if doc["kind"] in CHECKS:
        CHECKS[doc["kind"]](spec)


def test_every_kind_has_an_example():
    assert {doc["kind"] for _, doc in documents()} == set(KINDS_BY_NAME)


def test_semantic_checks_name_the_field():
    with pytest.raises(ValidationError, match="minute 0-59"):  # the CRD's cron grammar, in the model too
        KINDS_BY_NAME["ScheduledReport"].spec.model_validate({"reports": ["retention"], "schedule": "61 * * * *"})
    spec = KINDS_BY_NAME["ScheduledReport"].spec.model_validate(
        {"reports": ["retention"], "schedule": "0 * * * *", "timeZone": "Mars/Olympus"})
    with pytest.raises(SpecError) as err:
        check_scheduled_report(spec)
    assert err.value.field == "spec.timeZone"
    rule = KINDS_BY_NAME["AlertRule"].spec.model_validate({
        "category": "system", "detector": {"promql": {"expr": "sum(rate(x[5m])"}},
        "runbookURL": "https://r.example.com/x"})
    with pytest.raises(SpecError) as err:
        check_alert_rule(rule)
    assert err.value.field == "spec.detector.promql.expr"


def test_every_secret_an_example_names_is_in_the_test_secrets():
    """The e2e and kmock tiers create EXAMPLE_SECRETS before applying examples/: a key missing there leaves that
    example SecretNotFound (a new example's channel once did)."""
    from controller.fake_cluster import EXAMPLE_SECRETS  # noqa: I001 - tests/ is on sys.path (rootdir imports)

    def refs(node):
        if isinstance(node, dict):
            for field, value in node.items():
                if field.endswith("SecretRef") and isinstance(value, dict) and "key" in value:
                    yield value["name"], value["key"]
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    missing = sorted({f"{path.name}: {name}/{key}" for path in EXAMPLES
                      for doc in yaml.safe_load_all(path.read_text()) if doc
                      for name, key in refs(doc.get("spec", {}))
                      if key not in EXAMPLE_SECRETS.get(name, {})})
    assert not missing, missing
