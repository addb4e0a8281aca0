"""The CRDs in crds/ and the chart are generated from the pydantic models and carry what users need."""

from pathlib import Path

import pytest
import yaml

from game_analytics.api import KINDS, KINDS_BY_NAME
from game_analytics.api.crdgen import render_all, structural

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("folder", ["crds", "charts/game-analytics/crds"])
def test_checked_in_crds_are_current(folder):
    rendered = render_all()
    for name, text in rendered.items():
        path = ROOT / folder / name
        assert path.exists(), f"{path} missing: run `make crds`"
        assert path.read_text() == text, f"{path} is stale: run `make crds`"


def _walk(schema, path="spec"):
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if "items" in schema:
        yield from _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk(schema["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("info", KINDS, ids=lambda k: k.kind)
def test_crd_shape(info):
    crd = yaml.safe_load(render_all()[f"{info.crd_name}.yaml"])
    version = crd["spec"]["versions"][0]
    assert crd["spec"]["names"]["categories"] == ["game-analytics"]
    assert crd["spec"]["names"]["shortNames"]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[-3:] == ["Ready", "Reason", "Age"] and len(columns) >= 4
    schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    text = yaml.safe_dump(schema)
    assert "$ref" not in text and "anyOf" not in text and "title" not in text
    for path, node in _walk(schema):
        assert "type" in node, f"{path} has no type (not structural)"
        if path != "spec" and not path.endswith(("[]", "{}")):
            assert node.get("description"), f"{path} has no description (kubectl explain would be empty)"


def test_cross_field_rules_present():
    def rules(kind):
        return yaml.safe_dump(yaml.safe_load(render_all()[f"{KINDS_BY_NAME[kind].crd_name}.yaml"]))

    assert "exactly one detector must be set" in rules("AlertRule")
    assert "sentinel replicas must be odd" in rules("RedisFailover")
    assert "quorum must not exceed the number of sentinels" in rules("RedisFailover")
    assert "report types must not repeat" in rules("ScheduledReport")


def test_structural_translates_optional_and_exclusive_bounds():
    schema = {
        "type": "object",
        "properties": {
            "a": {"anyOf": [{"$ref": "#/$defs/A"}, {"type": "null"}], "default": None, "description": "field a"},
            "n": {"type": "number", "exclusiveMinimum": 0, "title": "N"},
        },
        "$defs": {"A": {"type": "object", "title": "A", "properties": {"x": {"type": "integer"}}}},
    }
    out = structural(schema)
    assert out["properties"]["a"] == {"type": "object", "description": "field a",
                                      "properties": {"x": {"type": "integer"}}}
    assert out["properties"]["n"] == {"type": "number", "minimum": 0, "exclusiveMinimum": True}


def test_union_of_two_types_is_refused():
    with pytest.raises(ValueError, match="no structural equivalent"):
        structural({"anyOf": [{"type": "string"}, {"type": "integer"}]})
