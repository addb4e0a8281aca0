"""Custom resources drawn from each CRD's own openAPIV3Schema, admitted as the API server would admit them.

The pieces, for :mod:`tests.controller.test_fuzz_crs` (fast tier) and ``tests/e2e/test_fuzz_dry_run.py``:

- :func:`spec_strategy`: hypothesis-jsonschema over the CRD's ``spec`` schema, turned into JSON Schema first
  (:func:`to_json_schema`: the ``x-kubernetes-*`` keys dropped, unknown fields closed, as a structural schema
  prunes them);
- :func:`admit`: what admission does after the schema: defaults (:func:`apply_defaults`), then every CEL rule
  that needs no ``oldSelf`` (evaluated with the ``cel`` package, the Rust CEL implementation), list-map keys and
  sets unique. Returns the defaulted object, or the reason it would be refused;
- :func:`child_problems`: what the API server would refuse in a rendered child, checked without one (names,
  labels, ports, container and env names, Secret keys); the e2e test sends a sample to a real API server's dry-run.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import cel
import jsonschema
import yaml
from hypothesis import strategies as st
from hypothesis.internal.conjecture import utils as _conjecture_utils
from hypothesis_jsonschema import _from_schema, from_schema

from game_analytics.api import GROUP, KINDS_BY_NAME, VERSION
from game_analytics.api.crdgen import DNS_1035_NAME_KINDS, max_name_length

CRDS = Path(__file__).resolve().parents[2] / "crds"
#: a DNS-1123 subdomain, which the API server requires of a custom resource's name
NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
#: ``kind: (pattern, longest)`` of a child's name, as the API server (v1.33) checks it, or as the objects it makes
#: need it: a Service name is a DNS-1035 label; a StatefulSet's pods take its name as their hostname (a DNS label)
#: and a ``controller-revision-hash`` label of ``<name>-<10 characters>``; a CronJob's Jobs add 11 characters and
#: a Job's name is its pods' ``job-name`` label (63). Every other kind (ConfigMap, Deployment, ServiceMonitor ...)
#: is a DNS-1123 subdomain, dots included; a Deployment is kept to 63 for its pods' hostnames.
NAME_RULES = {"Service": (DNS_1035, 63), "StatefulSet": (DNS_LABEL, 52), "CronJob": (NAME, 52),
              "Job": (NAME, 63), "Deployment": (NAME, 63)}


class _Many:
    """hypothesis-jsonschema 0.23 (the latest) calls ``many(...).more()``, which hypothesis 6.170 replaced with
    ``with many(...) as elements: for _ in elements``; this drives the new form through the old calls."""

    def __init__(self, data: Any, min_size: int, max_size: float, average_size: float) -> None:
        self._many = _conjecture_utils.many(data, min_size=min_size, max_size=max_size, average_size=average_size)
        self._many.__enter__()
        self._elements = iter(self._many)

    def more(self) -> bool:
        if next(self._elements, False) is None:
            return True
        self._many.__exit__(None, None, None)
        return False

    def reject(self, why: str | None = None) -> None:
        self._many.reject(why)


if not hasattr(_conjecture_utils.many, "more"):
    _from_schema.cu = type("_ConjectureUtils", (), {"many": _Many})

_MERGED: dict[tuple[str, int, int], tuple[st.SearchStrategy, Any, Any]] = {}
_merged_as_strategies = _from_schema.merged_as_strategies


def _cached_merged_as_strategies(schemas: list, *, alphabet: Any, custom_formats: Any) -> st.SearchStrategy:
    """hypothesis-jsonschema's ``merged_as_strategies``, built once per schema: its object strategy calls it for
    every property of every drawn object, and building (canonicalising) the strategy took 95 % of the run (1.4 s
    per MongoShardedCluster example). The entry holds ``alphabet`` and ``custom_formats``, so their ids stay theirs."""
    key = (json.dumps(schemas, sort_keys=True), id(alphabet), id(custom_formats))
    if key not in _MERGED:
        _MERGED[key] = (_merged_as_strategies(schemas, alphabet=alphabet, custom_formats=custom_formats),
                        alphabet, custom_formats)
    return _MERGED[key][0]


_from_schema.merged_as_strategies = _cached_merged_as_strategies


@cache
def openapi_schema(kind: str) -> dict:
    """The ``openAPIV3Schema`` of ``kind``'s CRD in crds/ (the generated file the chart ships)."""
    crd = yaml.safe_load((CRDS / f"{KINDS_BY_NAME[kind].crd_name}.yaml").read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


_ONE_OF = (re.compile(r"^(?:\s*\+?\s*\(has\(self\.\w+\) \? 1 : 0\))+ == 1$"),
           re.compile(r"^has\(self\.\w+\) != has\(self\.\w+\)$"))


def exactly_one_of(node: dict) -> list[str]:
    """The fields of which a CEL rule of ``node`` requires exactly one (``(has(self.a) ? 1 : 0) + ... == 1`` or
    ``has(self.a) != has(self.b)``); empty when it has no such rule."""
    for v in node.get("x-kubernetes-validations") or []:
        rule = " ".join(v["rule"].split())
        if any(p.match(rule) for p in _ONE_OF):
            return re.findall(r"has\(self\.(\w+)\)", rule)
    return []


def to_json_schema(node: Any) -> Any:
    """An OpenAPI v3 structural schema as JSON Schema: without descriptions, defaults and ``x-kubernetes-*``
    keys, and with ``additionalProperties: false`` where the CRD prunes unknown fields (an object with
    ``properties``). An object whose CEL rule requires exactly one of some fields becomes an ``anyOf`` of one
    variant per field (drawing them independently almost never sets exactly one)."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items()
           if not k.startswith("x-kubernetes-") and k not in ("description", "default", "nullable")}
    if isinstance(out.get("pattern"), str) and re.search(r"(?<!\\)\$$", out["pattern"]):
        out["pattern"] = out["pattern"][:-1] + r"\Z"  # RE2's $ is the end of the text; Python's also before a "\n"
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if "properties" in out:
        out["properties"] = {k: to_json_schema(v) for k, v in node["properties"].items()}
    one_of = exactly_one_of(node)
    if one_of:
        variants = []
        for keep in one_of:
            variant = dict(out, properties={k: v for k, v in out["properties"].items()
                                            if k == keep or k not in one_of})
            variant["required"] = sorted({*out.get("required", []), keep})
            variants.append(variant)
        out = {"anyOf": variants}
    return out


@cache
def _spec_validator(kind: str) -> jsonschema.protocols.Validator:
    """A JSON Schema validator of ``kind``'s ``spec`` (types, enums, bounds, patterns: the structural checks). Draft 4,
    whose boolean ``exclusiveMinimum`` OpenAPI v3 has."""
    return jsonschema.Draft4Validator(to_json_schema(openapi_schema(kind)["properties"]["spec"]))


@cache
def spec_strategy(kind: str) -> st.SearchStrategy[dict]:
    """Specs of ``kind`` that pass its CRD's schema (types, enums, bounds, patterns; not yet CEL)."""
    return from_schema(to_json_schema(openapi_schema(kind)["properties"]["spec"]))


@cache
def name_strategy(kind: str) -> st.SearchStrategy[str]:
    """``metadata.name`` values the API server accepts for a custom resource of ``kind``: DNS-1123 subdomains up
    to the length its CRD's CEL rule allows (:func:`~game_analytics.api.crdgen.max_name_length`); for the kinds
    whose CRD also requires a DNS-1035 label, three in four draws are one (the rest test that rule)."""
    longest = max_name_length(kind)
    subdomains = st.from_regex(rf"\A[a-z0-9]([-a-z0-9.]{{0,{longest - 2}}}[a-z0-9])?\Z").filter(
        lambda n: NAME.fullmatch(n) is not None)
    if kind not in DNS_1035_NAME_KINDS:
        return subdomains
    # mostly names the CRD admits (a letter first, no dots), some it refuses (admission is still evaluated)
    labels = st.from_regex(rf"\A[a-z]([-a-z0-9]{{0,{longest - 2}}}[a-z0-9])?\Z").filter(
        lambda n: DNS_1035.fullmatch(n) is not None)
    return st.one_of(labels, labels, labels, subdomains)


def apply_defaults(schema: dict, value: Any) -> Any:
    """``value`` with the schema's defaults filled in where a field is absent, as the API server does before
    validating (recursively, into defaulted values too)."""
    if isinstance(value, dict) and schema.get("type") == "object":
        props = schema.get("properties") or {}
        out = dict(value)
        for key, sub in props.items():
            if key not in out and "default" in sub:
                out[key] = copy.deepcopy(sub["default"])
            if key in out:
                out[key] = apply_defaults(sub, out[key])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            out = {k: (apply_defaults(extra, v) if k not in props else v) for k, v in out.items()}
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], v) for v in value]
    return value


def _cel_value(schema: dict, value: Any) -> Any:
    """``value`` typed as CEL sees it under ``schema``: ``number`` fields are doubles."""
    if isinstance(value, dict):
        props, extra = schema.get("properties") or {}, schema.get("additionalProperties")
        return {k: _cel_value(props.get(k) or (extra if isinstance(extra, dict) else {}), v) for k, v in value.items()}
    if isinstance(value, list):
        return [_cel_value(schema.get("items") or {}, v) for v in value]
    if schema.get("type") == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


@cache
def _program(rule: str) -> Any:
    return cel.compile(rule)


def _find(text: str, pattern: str) -> str:
    """The Kubernetes CEL regex library's ``<string>.find(<regex>)``: the first match, or ``''`` (not in the
    ``cel`` package; Python's ``re`` means the same as RE2 for the classes CRD rules may use, see
    test_fuzz_admission)."""
    found = re.search(pattern, text)
    return found.group(0) if found else ""


#: functions of the Kubernetes CEL libraries that CRD rules use and the ``cel`` package lacks
KUBERNETES_FUNCTIONS = {"find": _find}


def evaluate(rule: str, self_value: Any) -> Any:
    """``rule`` evaluated with ``self`` bound to ``self_value`` (typed as CEL sees it) and the Kubernetes
    functions of :data:`KUBERNETES_FUNCTIONS`. Raises what the ``cel`` package raises on an evaluation error."""
    context = cel.Context()
    context.add_variable("self", self_value)
    for name, function in KUBERNETES_FUNCTIONS.items():
        context.add_function(name, function)
    return _program(rule).execute(context)


def _refusals(schema: dict, value: Any, path: str) -> list[str]:
    """Why admission refuses ``value`` at ``path`` (CEL rules without oldSelf, list-map and set uniqueness)."""
    out = []
    for v in schema.get("x-kubernetes-validations") or []:
        if "oldSelf" in v["rule"]:
            continue  # a transition rule: not evaluated on create
        try:
            ok = evaluate(v["rule"], _cel_value(schema, value))
        except Exception as exc:  # noqa: BLE001 - an evaluation error refuses the object, as in the API server
            ok = f"error: {exc}"
        if ok is not True:
            out.append(f"{path}{v.get('fieldPath', '')}: {v.get('message', v['rule'])} ({ok})")
    if isinstance(value, dict):
        props, extra = schema.get("properties") or {}, schema.get("additionalProperties")
        for key, sub in value.items():
            sub_schema = props.get(key) or (extra if isinstance(extra, dict) else None)
            if sub_schema:
                out += _refusals(sub_schema, sub, f"{path}.{key}")
    elif isinstance(value, list):
        items = schema.get("items") or {}
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "map":
            keys = [tuple(i.get(k) for k in schema.get("x-kubernetes-list-map-keys", [])) for i in value]
            if len(set(keys)) != len(keys):
                out.append(f"{path}: duplicate list-map key")
        elif list_type == "set" and len({repr(i) for i in value}) != len(value):
            out.append(f"{path}: duplicate set item")
        for i, item in enumerate(value):
            out += _refusals(items, item, f"{path}[{i}]")
    return out


def custom_resource(kind: str, name: str, spec: dict, namespace: str = "games") -> dict:
    """The manifest of a ``kind`` object named ``name`` with ``spec`` (as a user would write it)."""
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind,
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def admit(obj: dict) -> tuple[dict | None, list[str]]:
    """``(defaulted object, [])`` when admission (the schema, then CEL) accepts ``obj``, else ``(None, reasons)``;
    each reason starts with the path of the refused field (``.spec.workers.tolerations[0].key: ...``)."""
    schema = openapi_schema(obj["kind"])
    defaulted = copy.deepcopy(obj)
    defaulted["spec"] = apply_defaults(schema["properties"]["spec"], obj["spec"])
    refusals = [f".spec{''.join(f'[{p}]' if isinstance(p, int) else f'.{p}' for p in e.absolute_path)}: {e.message}"
                for e in _spec_validator(obj["kind"]).iter_errors(defaulted["spec"])]
    refusals = refusals or _refusals(schema, defaulted, "")
    return (None, refusals) if refusals else (defaulted, [])


def _pod(child: dict) -> dict:
    """The pod spec of a workload's template (a CronJob's through its jobTemplate); empty for other kinds."""
    spec = child.get("spec") or {}
    template = (spec.get("jobTemplate", {}).get("spec", {}).get("template")
                if child["kind"] == "CronJob" else spec.get("template")) or {}
    return template.get("spec") or {}


def _containers(child: dict) -> list[dict]:
    pod = _pod(child)
    return [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]


def _pod_spec_problems(child: dict, where: str) -> list[str]:
    """What the Pod validation refuses in the pod template's scheduling fields (tolerations, nodeSelector,
    priorityClassName) and container images."""
    pod, problems = _pod(child), []
    for t in pod.get("tolerations") or []:
        key, value, operator = t.get("key") or "", t.get("value") or "", t.get("operator") or "Equal"
        if key and not _label_key_ok(key) or not LABEL_VALUE.fullmatch(value) or len(value) > 63:
            problems.append(f"{where}: invalid toleration {t}")
        if (operator == "Exists" and value) or (not key and operator != "Exists"):
            problems.append(f"{where}: toleration operator/value mismatch {t}")
        if "tolerationSeconds" in t and t.get("effect") != "NoExecute":
            problems.append(f"{where}: tolerationSeconds without effect NoExecute {t}")
    for key, value in (pod.get("nodeSelector") or {}).items():
        if not _label_key_ok(key) or not LABEL_VALUE.fullmatch(value) or len(value) > 63:
            problems.append(f"{where}: invalid nodeSelector {key}={value!r}")
    priority = pod.get("priorityClassName")
    if priority is not None and (len(priority) > 253 or not NAME.fullmatch(priority)):
        problems.append(f"{where}: invalid priorityClassName {priority!r}")
    for c in _containers(child):
        if not c.get("image") or c["image"] != c["image"].strip():
            problems.append(f"{where}: invalid image {c.get('image')!r} in container {c.get('name')}")
    return problems


def _label_key_ok(key: str) -> bool:
    prefix, _, label = key.rpartition("/")
    return len(label) <= 63 and bool(LABEL_NAME.fullmatch(label)) and (
        not prefix or (len(prefix) <= 253 and bool(NAME.fullmatch(prefix))))


def child_problems(child: dict) -> list[str]:
    """What the API server would refuse in ``child`` (checked offline; empty when nothing is found)."""
    kind, meta = child["kind"], child["metadata"]
    name, where = meta["name"], f"{child['kind']}/{meta['name']}"
    problems = []
    pattern, longest = NAME_RULES.get(kind, (NAME, 253))
    if len(name) > longest or not pattern.fullmatch(name):
        problems.append(f"{where}: invalid name ({len(name)} characters, at most {longest}: {pattern.pattern})")
    problems += _pod_spec_problems(child, where)
    for key, value in (meta.get("labels") or {}).items():
        if not _label_key_ok(key):
            problems.append(f"{where}: invalid label key {key!r}")
        if not isinstance(value, str) or len(value) > 63 or not LABEL_VALUE.fullmatch(value):
            problems.append(f"{where}: invalid label value {key}={value!r}")
    if sum(len(k) + len(str(v)) for k, v in (meta.get("annotations") or {}).items()) > 256 * 1024:
        problems.append(f"{where}: annotations too large")
    for key in (child.get("data") or {}):
        if len(key) > 253 or not CONFIG_KEY.fullmatch(key):
            problems.append(f"{where}: invalid data key {key!r}")
    for c in _containers(child):
        if len(c.get("name", "")) > 63 or not DNS_LABEL.fullmatch(c.get("name", "")):
            problems.append(f"{where}: invalid container name {c.get('name')!r}")
        for env in c.get("env") or []:
            if not ENV_NAME.fullmatch(env["name"]):
                problems.append(f"{where}: invalid env name {env['name']!r}")
            if "\x00" in str(env.get("value", "")):
                problems.append(f"{where}: NUL in env {env['name']}")
            secret_key = ((env.get("valueFrom") or {}).get("secretKeyRef") or {}).get("key")
            if secret_key is not None and (len(secret_key) > 253 or not CONFIG_KEY.fullmatch(secret_key)):
                problems.append(f"{where}: invalid Secret key {secret_key!r} in env {env['name']}")
        for p in c.get("ports") or []:
            if not 0 < int(p["containerPort"]) < 65536 or len(p.get("name", "")) > 15:
                problems.append(f"{where}: invalid container port {p}")
    for claim in (child.get("spec") or {}).get("volumeClaimTemplates") or [] if kind == "StatefulSet" else []:
        # not checked when the API server admits the StatefulSet: its controller's PVC creation is refused
        storage_class = (claim.get("spec") or {}).get("storageClassName")
        if storage_class and (len(storage_class) > 253 or not NAME.fullmatch(storage_class)):
            problems.append(f"{where}: invalid storageClassName {storage_class!r} in volume claim template "
                            f"{claim['metadata']['name']}")
    for p in (child.get("spec") or {}).get("ports") or [] if kind == "Service" else []:
        if not 0 < int(p["port"]) < 65536 or len(p.get("name", "")) > 15:
            problems.append(f"{where}: invalid Service port {p}")
    return problems
