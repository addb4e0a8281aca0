"""Building blocks shared by every custom resource: naming conventions, references, conditions.

All spec models use Python snake_case attributes with camelCase aliases, which is what users write in YAML and what
the generated CRD schemas contain. Models forbid unknown fields so that typos are caught by the API server
(structural schema pruning would otherwise drop them silently).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "gameanalytics.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "game-analytics"

#: Prometheus-style duration: ``30s``, ``5m``, ``1h30m``, ``7d``. Same grammar as Prometheus' ``model.Duration``.
DURATION_PATTERN = r"^(0|([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?)$"
_DURATION_RE = re.compile(DURATION_PATTERN)
#: Prometheus label (and annotation) name: the classic grammar, which every Prometheus version accepts.
PROMETHEUS_LABEL_NAME_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
#: A value interpolated into a PromQL string literal: no double quote, backslash or control character (newline).
PROMQL_STRING_PATTERN = r'^[^"\\\x00-\x1f\x7f]+$'
_DURATION_UNITS = (timedelta(days=365), timedelta(weeks=1), timedelta(days=1), timedelta(hours=1),
                   timedelta(minutes=1), timedelta(seconds=1), timedelta(milliseconds=1))  # fmt: skip


#: The longest duration any field takes: ``now`` minus it is still a valid datetime.
MAX_DURATION = timedelta(days=365 * 1000)


def parse_duration(text: str, *, allow_zero: bool = False) -> timedelta:
    """A :data:`DURATION_PATTERN` duration (``90s``, ``10m``, ``1h30m``, ``7d``, ``2w``; ``y`` = 365 days) as a
    timedelta.  The one parser of durations: report periods, rating periods and detector windows all use it.

    Args:
        text: the duration; surrounding whitespace is ignored, units must come in the order y w d h m s ms.
        allow_zero: accept ``0`` / ``0s`` (a detector window may be zero; a period may not).

    Raises:
        ValueError: empty, not a duration (the message says "duration" and gives examples), zero without
            ``allow_zero``, or longer than :data:`MAX_DURATION`.
    """
    value = text.strip()
    match = _DURATION_RE.match(value)
    if not value or match is None:
        raise ValueError(f"invalid duration {text!r}: expected e.g. 30s, 10m, 1h30m, 7d")
    parts = match.groups()[1:] if value != "0" else (None,) * len(_DURATION_UNITS)
    try:
        total = sum((int(p[:-2] if p.endswith("ms") else p[:-1]) * unit
                     for p, unit in zip(parts, _DURATION_UNITS, strict=True) if p), timedelta())  # fmt: skip
    except OverflowError:
        total = timedelta.max
    if total > MAX_DURATION:
        raise ValueError(f"duration {text!r} is too long (at most 1000y: times this far back or ahead are out of "
                         "range)")
    if total <= timedelta() and not allow_zero:
        raise ValueError(f"duration {text!r} must be positive")
    return total


#: A five-field cron expression or one of the ``@hourly``-style macros accepted by Kubernetes CronJobs. The exact
#: grammar is checked by the operator with croniter; this pattern only rejects obvious garbage at admission.
CRON_PATTERN = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$"
#: An IANA time-zone name such as ``UTC`` or ``Europe/Berlin``. Existence is checked by the operator.
TIME_ZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$"
#: A Kubernetes resource quantity such as ``100m``, ``1``, ``256Mi`` or ``10Gi``.
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
#: A DNS subdomain (RFC 1123): dot-separated DNS labels, at most 253 characters (the bound goes on the field).
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
#: One e-mail address (``ops@example.com``), optionally with a display name (``Game Ops <ops@example.com>``).
EMAIL_PATTERN = r"^([^@\s<>,]+@[^@\s<>,]+\.[^@\s<>,]+|[^<>@,]*<[^@\s<>,]+@[^@\s<>,]+\.[^@\s<>,]+>)$"
#: A comma-separated list of :data:`EMAIL_PATTERN` addresses (Alertmanager's ``to``).
EMAIL_LIST_PATTERN = r"^[^@\s<>,]+@[^@\s<>,]+\.[^@\s<>,]+(\s*,\s*[^@\s<>,]+@[^@\s<>,]+\.[^@\s<>,]+)*$"
#: A game name: games travel to the workers as one comma-joined environment variable, so no comma, no
#: whitespace at either end and no control characters.
GAME_NAME_PATTERN = r"^[^,\s\x00-\x1f\x7f]([^,\x00-\x1f\x7f]*[^,\s\x00-\x1f\x7f])?$"

Duration = Annotated[str, Field(pattern=DURATION_PATTERN, max_length=32)]
Quantity = Annotated[str, Field(pattern=QUANTITY_PATTERN, max_length=32)]
ResourceName = Annotated[str, Field(pattern=DNS_LABEL_PATTERN, min_length=1, max_length=63)]
GameName = Annotated[str, Field(pattern=GAME_NAME_PATTERN, min_length=1, max_length=63)]
EmailAddress = Annotated[str, Field(pattern=EMAIL_PATTERN, min_length=3, max_length=254)]


def cel(rule: str, message: str, field_path: str | None = None, reason: str | None = None) -> dict[str, str]:
    """One ``x-kubernetes-validations`` entry (a CEL rule evaluated by the API server at admission).

    ``field_path`` (a JSONPath relative to the object carrying the rule, e.g. ``.sentinel.quorum``) makes the API
    server name that field in its error, which is what users see from ``kubectl apply``.
    """
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    if reason:
        entry["reason"] = reason
    return entry


def opt(path: str, default: Any, root: str = "self") -> str:
    """A CEL expression reading the optional field ``path`` (``quorum``, ``shards.count``) of ``root``, or
    ``default`` (the pydantic default) when the object leaves it out: ``(has(self.quorum) ? self.quorum : 2)``.

    Every CEL rule reads optional fields through this (or a ``has()`` guard), so that it means the same with and
    without the API server's defaulting (a test checks every rule of every CRD).
    """
    parts = path.split(".")
    guard = " && ".join(f"has({root}.{'.'.join(parts[:i + 1])})" for i in range(len(parts)))
    literal = f"'{default}'" if isinstance(default, str) else str(default).lower() if isinstance(default, bool) \
        else repr(default)
    return f"({guard} ? {root}.{path} : {literal})"


class Model(BaseModel):
    """Base for spec models: camelCase aliases, unknown fields rejected, values validated on assignment."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", validate_assignment=True
    )

    def to_api(self) -> dict[str, Any]:
        """Dump as the API server sees it: camelCase keys, unset optional fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class SecretKeyRef(Model):
    """A key in a Secret of the custom resource's namespace (the ``secretKeyRef`` convention of core/v1)."""

    name: ResourceName = Field(description="Name of the Secret in the same namespace.")
    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$",
                     description="Key inside the Secret's data (letters, digits, '-', '_' and '.', as Secret keys are).")


class LocalObjectReference(Model):
    """A reference by name to another object in the same namespace."""

    name: ResourceName = Field(description="Name of the referenced object in the same namespace.")


class ResourceList(Model):
    """CPU and memory amounts, as in a container's ``resources.requests`` or ``resources.limits``."""

    cpu: Quantity | None = Field(default=None, description="CPU, e.g. 100m or 1.")
    memory: Quantity | None = Field(default=None, description="Memory, e.g. 256Mi or 1Gi.")


class Resources(Model):
    """Compute resources for a container. Defaults are filled in by the operator when left empty."""

    requests: ResourceList | None = Field(default=None, description="Minimum resources the scheduler reserves.")
    limits: ResourceList | None = Field(default=None, description="Maximum resources the container may use.")


class Storage(Model):
    """A PersistentVolumeClaim template for a stateful component. Fixed once created: a StatefulSet's volume claim
    templates are immutable, so admission refuses a change naming this field (not the StatefulSet)."""

    model_config = Model.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel("!has(self.size) || !has(oldSelf.size) || self.size == oldSelf.size",
                    "cannot be changed after creation: the StatefulSet's volume claim templates are immutable "
                    "(resize the PersistentVolumeClaims themselves, see docs/hardening.md)", ".size"),
                cel(f"{opt('storageClassName', '')} == {opt('storageClassName', '', root='oldSelf')}",
                    "cannot be changed after creation: the StatefulSet's volume claim templates are immutable",
                    ".storageClassName"),
            ]
        }
    }

    size: Quantity = Field(default="1Gi", description="Requested volume size, e.g. 10Gi.")
    storage_class_name: str | None = Field(
        default=None, max_length=253, description="StorageClass to use; the cluster default when unset."
    )


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(Model):
    """A status condition in the standard Kubernetes shape (metav1.Condition)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    type: str = Field(max_length=316, description="Condition type, e.g. Ready.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(max_length=1024, description="CamelCase reason for the last transition.")
    message: str = Field(default="", max_length=32768, description="Human-readable details.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation the condition was computed from."
    )
    last_transition_time: datetime | None = Field(
        default=None, description="When the condition last changed status."
    )


class BaseStatus(Model):
    """Status fields every kind shares."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    observed_generation: int | None = Field(
        default=None, description="The .metadata.generation the operator last reconciled."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Current state: Ready plus kind-specific conditions.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


def utcnow() -> datetime:
    """The current time, timezone-aware, truncated to seconds (the precision of Kubernetes timestamps)."""
    return datetime.now(UTC).replace(microsecond=0)


#: A Kubernetes label key (``[prefix/]name``: a DNS subdomain of at most 253 characters, a name of at most 63) and a
#: label value (at most 63 characters).
_LABEL_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$")
_LABEL_PREFIX_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")


def check_kubernetes_labels(labels: dict[str, str]) -> dict[str, str]:
    """``labels`` unchanged when every key and value is a valid Kubernetes label (they go onto generated objects'
    metadata.labels). Raises ValueError naming the first bad key or value. (A CEL rule cannot do this within the
    API server's cost budget: map keys have no length bound.)"""
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if not _LABEL_NAME_RE.match(name) or (prefix and (len(prefix) > 253 or not _LABEL_PREFIX_RE.match(prefix))):
            raise ValueError(f"{key!r} is not a valid label key ([prefix/]name, name at most 63 characters)")
        if not _LABEL_VALUE_RE.match(value):
            raise ValueError(f"the value of {key!r} is not a valid label value (at most 63 characters: letters, "
                             "digits, '-', '_' and '.', starting and ending with a letter or digit)")
    return labels


#: The type of ``spec.monitoringLabels``: Kubernetes labels (checked by :func:`check_kubernetes_labels`).
KubernetesLabels = Annotated[dict[str, str], AfterValidator(check_kubernetes_labels)]


def monitoring_labels_field() -> Any:
    """The ``spec.monitoringLabels`` field shared by the kinds that generate monitoring objects."""
    return Field(
        default_factory=dict,
        max_length=32,
        description="Extra labels on the generated monitoring objects (PrometheusRule, ServiceMonitor, "
                    "AlertmanagerConfig), e.g. {release: kube-prometheus-stack} for that stack's selectors. "
                    "Merged over the operator's default (chart value monitoring.labels); a key set here wins.",
    )
