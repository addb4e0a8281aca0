"""Generate CustomResourceDefinitions from the pydantic models in :mod:`game_analytics.api`.

Pydantic emits JSON Schema (draft 2020-12); Kubernetes wants a *structural* OpenAPI v3.0 schema: no ``$ref``, no
``anyOf`` for optional fields, boolean ``exclusiveMinimum``, and ``x-kubernetes-*`` extensions for CEL rules and
list semantics. :func:`structural` does that translation; :func:`crd` wraps a kind's schemas into a CRD manifest.
Run ``make crds`` (``game-analytics crds``) to rewrite ``crds/``; a test fails when the checked-in files are stale.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import PydanticUndefined

from . import CATEGORY, GROUP, KINDS, VERSION, KindInfo

#: JSON-Schema keywords kept as they are (everything else is translated or dropped).
_KEPT = {
    "type", "description", "default", "enum", "format", "pattern", "minimum", "maximum", "minLength", "maxLength",
    "minItems", "maxItems", "minProperties", "maxProperties", "required", "nullable",
}
#: Longest metadata.name allowed, so that derived child names (name + "-sentinel-headless" ...) fit 63 characters.
MAX_NAME_LENGTH = 40
#: Kinds whose longest child-name suffix needs a shorter name: a RankingJob's ``<name>-season-reset`` CronJob
#: must fit 52 characters (its Jobs add 11). tests/controller/test_child_names.py renders every kind at its limit.
MAX_NAME_LENGTHS: dict[str, int] = {"RankingJob": 39}
#: Kinds that render Services or StatefulSets, whose names must therefore be DNS-1035 labels: a Service name
#: starts with a letter and has no dots, and a StatefulSet's pods take its name as their hostname. (The API
#: server admits ``0-cache`` or ``cache.eu`` as a custom resource name; its Services would then be refused.)
DNS_1035_NAME_KINDS = frozenset({"GameDataSource", "RedisFailover", "MongoShardedCluster"})


def name_rules(kind: str) -> list[dict[str, str]]:
    """The CEL rules on ``metadata.name`` of ``kind``'s CRD (length, and a DNS-1035 label where Services are
    named after it): ``[{"rule": ..., "message": ...}]``, placed on the whole object's schema."""
    longest = max_name_length(kind)
    rules = [{"rule": f"size(self.metadata.name) <= {longest}",
              "message": f"metadata.name must be at most {longest} characters, "
                         "so that the names of generated objects stay valid"}]
    if kind in DNS_1035_NAME_KINDS:
        rules.append({"rule": "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
                      "message": "metadata.name must start with a letter and hold only lower-case letters, "
                                 "digits and '-' (no dots): it names Services"})
    return rules


def max_name_length(kind: str) -> int:
    """The longest ``metadata.name`` the CRD of ``kind`` admits (a CEL rule on the whole object)."""
    return MAX_NAME_LENGTHS.get(kind, MAX_NAME_LENGTH)


def _without_none(value: Any) -> Any:
    """``value`` with every None (an unset optional field of a default model) left out, recursively."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


class CRDSchema(GenerateJsonSchema):
    """Pydantic's schema generator, but a ``default_factory`` also becomes the field's ``default`` (pydantic leaves
    factories out), so that the API server fills in, and ``kubectl explain`` shows, every default the operator
    applies. Unset optional members of a default model are left out (the CRD has no nulls)."""

    def default_schema(self, schema: Any) -> dict[str, Any]:
        """The inner schema plus ``default``, for plain defaults and argument-less factories alike."""
        out = super().default_schema(schema)
        factory = schema.get("default_factory")
        if factory is not None and "default" not in out and not schema.get("default_factory_takes_data"):
            value = factory()
            if value is not PydanticUndefined and value is not None:
                out["default"] = self.encode_default(value)
        if "default" in out:
            out["default"] = _without_none(out["default"])
        return out


def spec_schema(info: KindInfo) -> dict[str, Any]:
    """The structural OpenAPI schema of ``info``'s spec, defaults (factories included) filled in."""
    return structural(info.spec.model_json_schema(by_alias=True, mode="validation", schema_generator=CRDSchema))


def structural(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Translate one pydantic JSON schema node into a structural OpenAPI v3 schema node.

    Args:
        schema: a node of ``Model.model_json_schema(by_alias=True)``.
        defs: that schema's ``$defs`` (taken from ``schema`` itself at the top level).

    Returns:
        A new dict; the input is not modified.

    Raises:
        ValueError: on a construct with no structural equivalent (a union of two real types).
    """
    defs = schema.get("$defs", {}) if defs is None else defs
    node = dict(schema)
    if "$ref" in node:  # inline the referenced definition; the referring field's own keys win
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = {**target, **node}
    if "anyOf" in node:  # Optional[X] is "X or null": a field that may be left out
        options = [o for o in node.pop("anyOf") if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"no structural equivalent for a union of {options}")
        option = options[0]
        if "$ref" in option:
            option = {**defs[option["$ref"].rsplit("/", 1)[-1]]}
        node = {**option, **node}
    if node.get("default", 0) is None:
        del node["default"]

    out: dict[str, Any] = {k: copy.deepcopy(v) for k, v in node.items() if k in _KEPT}  # shared lists: anchors
    for bound, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if bound in node:
            out[inclusive] = node[bound]
            out[bound] = True
    out.update({k: copy.deepcopy(v) for k, v in node.items() if k.startswith("x-kubernetes-")})  # no YAML anchors
    if "properties" in node:
        out["type"] = "object"
        out["properties"] = {name: structural(sub, defs) for name, sub in node["properties"].items()}
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = structural(node["additionalProperties"], defs)
    if "patternProperties" in node or "propertyNames" in node:
        out.update(_keyed_map(node, defs))
    if "items" in node:
        out["items"] = structural(node["items"], defs)
    return out


def _keyed_map(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """A ``dict[Key, Value]`` whose key type has a pattern or length, which pydantic writes as ``patternProperties``
    and ``propertyNames``: neither is structural, so the map becomes ``additionalProperties`` and each key rule a CEL
    rule on the map (the apiserver otherwise rejects the CRD, or drops the value type and with it every entry).

    Raises:
        ValueError: on more than one key pattern (no single value type).
    """
    patterns = node.get("patternProperties", {})
    if len(patterns) > 1:
        raise ValueError(f"no structural equivalent for several key patterns {sorted(patterns)}")
    out: dict[str, Any] = {}
    rules = list(node.get("x-kubernetes-validations", []))
    for pattern, value in patterns.items():
        out["additionalProperties"] = structural(value, defs)
        rules.append({"rule": f"self.all(k, k.matches(r'{pattern}'))", "message": f"keys must match {pattern}"})
    if "maxLength" in node.get("propertyNames", {}):
        limit = node["propertyNames"]["maxLength"]
        rules.append({"rule": f"self.all(k, size(k) <= {limit})", "message": f"keys must be at most {limit} characters"})
    out["x-kubernetes-validations"] = rules
    return out


def crd(info: KindInfo) -> dict[str, Any]:
    """The CustomResourceDefinition manifest for one kind, as a plain dict."""
    status_schema = structural(info.status.model_json_schema(by_alias=True, mode="serialization"))
    status_schema.pop("required", None)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": info.crd_name,
            "labels": {"app.kubernetes.io/part-of": "game-analytics"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": list(info.short_names),
                "categories": [CATEGORY],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {
                            "name": c.name,
                            "type": c.type,
                            "jsonPath": c.json_path,
                            **({"description": c.description} if c.description else {}),
                            **({"priority": c.priority} if c.priority else {}),
                        }
                        for c in info.printer_columns()
                    ],
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": info.description,
                            "required": ["spec"],
                            "x-kubernetes-validations": name_rules(info.kind),
                            "properties": {
                                "apiVersion": {"type": "string", "description": "API version of this object."},
                                "kind": {"type": "string", "description": "Kind of this object."},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(info),
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def render_all() -> dict[str, str]:
    """File name -> YAML text of every CRD, as stored in ``crds/``."""
    header = "# Generated by `make crds` from src/game_analytics/api. Do not edit.\n"
    return {
        f"{info.crd_name}.yaml": header + yaml.safe_dump(crd(info), sort_keys=False, width=120)
        for info in KINDS
    }


def write_all(directory: Path) -> list[Path]:
    """Write every CRD into ``directory`` (created if needed) and remove stale generated files there."""
    directory.mkdir(parents=True, exist_ok=True)
    rendered = render_all()
    for stale in directory.glob(f"*.{GROUP}.yaml"):
        if stale.name not in rendered:
            stale.unlink()
    paths = []
    for name, text in rendered.items():
        path = directory / name
        path.write_text(text)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    """``python -m game_analytics.api.crdgen --output crds [--chart charts/game-analytics]``: write the CRDs
    (and the chart's copy under ``<chart>/crds``), print the paths written; returns 0."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m game_analytics.api.crdgen", description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="crds", help="directory of the generated CRDs (default: crds)")
    parser.add_argument("--chart", help="also write <chart>/crds")
    args = parser.parse_args(argv)
    paths = write_all(Path(args.output))
    if args.chart:
        paths += write_all(Path(args.chart) / "crds")
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
