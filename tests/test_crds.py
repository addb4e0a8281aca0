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
        if node["type"] == "object":  # an object with no fields is an empty struct: the apiserver prunes every key
            assert {"properties", "additionalProperties", "x-kubernetes-preserve-unknown-fields"} & node.keys(), path
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


def test_map_with_key_rules_becomes_additional_properties_and_cel():
    # what pydantic writes for dict[Annotated[str, pattern, max_length], str]: patternProperties is not structural
    node = {"type": "object", "patternProperties": {"^[a-z]+$": {"type": "string", "maxLength": 8}},
            "propertyNames": {"maxLength": 5}}
    out = structural(node)
    assert out["additionalProperties"] == {"type": "string", "maxLength": 8} and "patternProperties" not in out
    assert [r["rule"] for r in out["x-kubernetes-validations"]] == [
        "self.all(k, k.matches(r'^[a-z]+$'))", "self.all(k, size(k) <= 5)"]  # raw: a pattern's \. is no CEL escape


def test_union_of_two_types_is_refused():
    with pytest.raises(ValueError, match="no structural equivalent"):
        structural({"anyOf": [{"type": "string"}, {"type": "integer"}]})


def _model_of(annotation):
    """The pydantic model inside ``annotation`` (``X``, ``X | None``, ``list[X]``), or None."""
    import typing

    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _defaults_missing(model, schema, path):
    from pydantic import TypeAdapter
    from pydantic_core import PydanticUndefined

    from game_analytics.api.crdgen import _without_none

    for name, info in model.model_fields.items():
        alias = info.alias or name
        node = schema["properties"][alias]
        if not info.is_required():
            value = info.default_factory() if info.default_factory else info.default
            if value is not None and value is not PydanticUndefined:
                expected = _without_none(TypeAdapter(typing_any()).dump_python(value, by_alias=True, mode="json"))
                if node.get("default") != expected:
                    yield f"{path}.{alias}: model default {expected!r}, CRD default {node.get('default')!r}"
        sub = _model_of(info.annotation)
        if sub is not None:
            yield from _defaults_missing(sub, node.get("items", node), f"{path}.{alias}")


def typing_any():
    from typing import Any

    return Any


@pytest.mark.parametrize("info", KINDS, ids=lambda k: k.kind)
def test_every_model_default_is_in_the_crd(info):
    """Defect: RankingJob ``leagues`` had a pydantic default but none in the CRD (a RankingJob without leagues was
    rejected by a CEL rule reading the absent field)."""
    from game_analytics.api.crdgen import spec_schema

    missing = list(_defaults_missing(info.spec, spec_schema(info), "spec"))
    assert not missing, "\n".join(missing)


def _unguarded(rule: str, node: dict) -> list[str]:
    """References ``self.a.b`` in a CEL rule whose optional segments are not checked with ``has()``."""
    import re

    problems = []
    for root, chain in re.findall(r"\b(self|oldSelf)((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", rule):
        current, prefix = node, root
        for segment in chain.strip(".").split("."):
            props = current.get("properties", {})
            if segment not in props:
                break
            prefix = f"{prefix}.{segment}"
            if segment not in current.get("required", []) and f"has({prefix})" not in rule:
                problems.append(prefix)
            current = props[segment]
    return problems


@pytest.mark.parametrize("info", KINDS, ids=lambda k: k.kind)
def test_cel_rules_guard_optional_fields_with_has(info):
    """Defect: two RankingJob rules read ``self.leagues`` unguarded; every rule must mean the same with and without
    the API server's defaulting."""
    crd = yaml.safe_load(render_all()[f"{info.crd_name}.yaml"])
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    problems = []
    for path, node in _walk(spec):
        for entry in node.get("x-kubernetes-validations", []):
            problems += [f"{path}: {ref} in {entry['rule']!r}" for ref in _unguarded(entry["rule"], node)]
    assert not problems, "\n".join(problems)


def test_guard_checker_finds_an_unguarded_read():
    node = {"properties": {"leagues": {"type": "array"}, "reports": {"type": "array"}}, "required": ["reports"]}
    assert _unguarded("self.leagues.exists(l, l.x == 0)", node) == ["self.leagues"]
    assert _unguarded("!has(self.leagues) || self.leagues.exists(l, l.x == 0)", node) == []
    assert _unguarded("self.reports.all(r, true)", node) == []
