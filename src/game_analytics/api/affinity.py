"""Pod affinity, modelled as core/v1 defines it, for the worker pods a GameDataSource creates.

Structural (not ``x-kubernetes-preserve-unknown-fields``) so that the CRD refuses a misspelt or ill-formed
affinity at ``kubectl apply``, naming the user's field, instead of the API server refusing the generated Deployment
later. Field names, operators and limits follow ``io.k8s.api.core.v1.Affinity``; the rules that the Pod validation
enforces on requirement ``values`` are CEL rules here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from .common import (
    DNS_LABEL_PATTERN,
    QUALIFIED_NAME_PATTERN,
    KubernetesLabels,
    LabelValue,
    Model,
    QualifiedName,
    cel,
)

_KEY = Field(pattern=QUALIFIED_NAME_PATTERN, max_length=317, description="Label key.")


_EMPTY = "(!has(self.values) || size(self.values) == 0)"
_SET = "(has(self.values) && size(self.values) > 0)"
#: CEL on a label requirement's values, as the Pod validation has them.
LABEL_VALUES_RULE = cel(f"self.operator in ['In', 'NotIn'] ? {_SET} : {_EMPTY}",
                        "values: non-empty for In and NotIn, empty for Exists and DoesNotExist", ".values")
#: CEL on a node requirement's values (Gt and Lt compare one integer).
NODE_VALUES_RULE = cel(f"self.operator in ['In', 'NotIn'] ? {_SET} : self.operator in ['Gt', 'Lt'] ? "
                       f"(has(self.values) && size(self.values) == 1 && self.values[0].matches('^-?[0-9]+$')) "
                       f": {_EMPTY}",
                       "values: non-empty for In and NotIn, exactly one integer for Gt and Lt, empty for Exists "
                       "and DoesNotExist", ".values")


class LabelSelectorRequirement(Model):
    """A label requirement: key, operator and values, e.g. app.kubernetes.io/component In [ingest]."""

    model_config = Model.model_config | {"json_schema_extra": {"x-kubernetes-validations": [LABEL_VALUES_RULE]}}

    key: str = _KEY
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(description="How key and values relate.")
    values: list[LabelValue] = Field(default_factory=list, max_length=64,
                                     description="Label values: set for In and NotIn, empty otherwise.")


class LabelSelector(Model):
    """Pods (or namespaces) by label: every matchLabels pair and every expression must match."""

    match_labels: KubernetesLabels = Field(default_factory=dict, max_length=32, description="Labels that must be equal.")
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list, max_length=32,
                                                              description="Label requirements (ANDed).")


class NodeSelectorRequirement(Model):
    """A requirement on node labels (in matchFields: on node fields such as metadata.name)."""

    model_config = Model.model_config | {"json_schema_extra": {"x-kubernetes-validations": [NODE_VALUES_RULE]}}

    key: str = _KEY
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"] = Field(
        description="How key and values relate; Gt and Lt compare one integer value.")
    values: list[LabelValue] = Field(default_factory=list, max_length=64, description="Values for the operator.")


class NodeSelectorTerm(Model):
    """Node requirements, ANDed."""

    model_config = Model.model_config | {"json_schema_extra": {"x-kubernetes-validations": [cel(
        "!has(self.matchFields) || self.matchFields.all(f, f.key == 'metadata.name' "
        "&& f.operator in ['In', 'NotIn'] && has(f.values) && size(f.values) == 1)",
        "matchFields: only metadata.name, with In or NotIn and exactly one value", ".matchFields")]}}

    match_expressions: list[NodeSelectorRequirement] = Field(default_factory=list, max_length=32,
                                                             description="Requirements on node labels.")
    match_fields: list[NodeSelectorRequirement] = Field(default_factory=list, max_length=32,
                                                        description="Requirements on node fields.")


class NodeSelector(Model):
    node_selector_terms: list[NodeSelectorTerm] = Field(min_length=1, max_length=16,
                                                        description="Terms, ORed: a node matching any qualifies.")


class PreferredSchedulingTerm(Model):
    weight: int = Field(ge=1, le=100, description="Added to a node's score when it matches the preference.")
    preference: NodeSelectorTerm = Field(description="The node requirements.")


class NodeAffinity(Model):
    required_during_scheduling_ignored_during_execution: NodeSelector | None = Field(
        default=None, description="Nodes the worker pods must run on.")
    preferred_during_scheduling_ignored_during_execution: list[PreferredSchedulingTerm] = Field(
        default_factory=list, max_length=16, description="Nodes the worker pods prefer, by weight.")


class PodAffinityTerm(Model):
    """Pods matching labelSelector in namespaces (default: the pod's own), within the topologyKey domain."""

    label_selector: LabelSelector | None = Field(default=None, description="The pods this term is about.")
    namespace_selector: LabelSelector | None = Field(default=None, description="Namespaces, by label.")
    namespaces: list[Annotated[str, Field(pattern=DNS_LABEL_PATTERN, max_length=63)]] = Field(
        default_factory=list, max_length=32, description="Namespaces, by name.")
    topology_key: QualifiedName = Field(description="Node label defining the domain, e.g. kubernetes.io/hostname.")
    match_label_keys: list[QualifiedName] = Field(default_factory=list, max_length=16,
                                                  description="Incoming pod label keys ANDed into labelSelector.")
    mismatch_label_keys: list[QualifiedName] = Field(default_factory=list, max_length=16,
                                                     description="Incoming pod label keys that must differ.")


class WeightedPodAffinityTerm(Model):
    weight: int = Field(ge=1, le=100, description="Added to a node's score when the term matches.")
    pod_affinity_term: PodAffinityTerm = Field(description="The pod affinity term.")


class PodAffinity(Model):
    """Co-location (podAffinity) or separation (podAntiAffinity) with other pods."""

    required_during_scheduling_ignored_during_execution: list[PodAffinityTerm] = Field(
        default_factory=list, max_length=16, description="Terms that must hold.")
    preferred_during_scheduling_ignored_during_execution: list[WeightedPodAffinityTerm] = Field(
        default_factory=list, max_length=16, description="Terms preferred, by weight.")


class Affinity(Model):
    """A pod spec's affinity: node affinity, pod affinity and pod anti-affinity."""

    node_affinity: NodeAffinity | None = Field(default=None, description="Which nodes the pods may run on.")
    pod_affinity: PodAffinity | None = Field(default=None, description="Pods to run near.")
    pod_anti_affinity: PodAffinity | None = Field(default=None, description="Pods to keep away from.")

    def to_pod_spec(self) -> dict[str, Any]:
        """As in a pod spec: camelCase, unset and empty optional fields left out (the API server drops empty
        lists, so a rendered ``values: []`` would read back as drift)."""
        return self.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True, mode="json")
