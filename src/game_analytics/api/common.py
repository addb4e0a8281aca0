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

#: Patterns never use ``\s``, ``\S``, ``\d`` or ``\w``: ``\s`` means [\t\n\f\r ] in the API server's RE2, Unicode
#: White_Space in pydantic's Rust regex (the operator) and that plus \x1c-\x1f in Python's ``re`` (the fuzz
#: harness), so a pattern with it admitted at apply what the operator then refused (``0\u2005* * * * *`` is five
#: cron fields to RE2, six to pydantic). Literal classes mean the same to all three:
#: printable ASCII, no space (URLs, host names, image references, e-mail addresses' parts);
PRINTABLE = "!-~"
#: with \x00-\x1f, every character any of the three counts as whitespace, as literal characters (game names).
SPACE = " \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
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


#: Per unit of :data:`DURATION_PATTERN`: its symbol and a RE2 pattern that finds the unit's number in a duration
#: (``m`` must not be the ``m`` of ``ms``; ``[0-9]+s`` never matches in ``5ms``, whose ``s`` follows an ``m``).
_DURATION_FINDERS = (("y", "[0-9]+y"), ("w", "[0-9]+w"), ("d", "[0-9]+d"), ("h", "[0-9]+h"),
                     ("m", "[0-9]+m([0-9]|$)"), ("s", "[0-9]+s"), ("ms", "[0-9]+ms"))


def duration_rules(limit: timedelta = MAX_DURATION) -> list[dict[str, str]]:
    """CEL rules on a :data:`DURATION_PATTERN` string that refuse exactly what :func:`parse_duration` (without
    ``allow_zero``) refuses in it: zero (``0``, ``0s``, ``0d0h``: no digit 1-9) and more than ``limit``.

    CEL's ``duration()`` knows only Go's units (h, m, s), so the rule adds the units up itself in milliseconds:
    each unit's number is taken with the Kubernetes regex library's ``find`` (``'0' +`` makes an absent unit 0)
    and converted with ``int()``. A number with more significant digits than ``limit`` has in that unit is over
    the limit on its own, and is refused by a pattern first; that also keeps every ``int()`` and the sum far
    below int64 (at most about 2e15 ms, against 9.2e18), so no input makes the rule fail to evaluate (CEL's
    ``&&`` is false when either side is false, even if the other errs).

    Returns:
        two ``x-kubernetes-validations`` entries for the string itself (``self`` is the duration).
    """
    limit_ms = limit // timedelta(milliseconds=1)
    factors = [unit // timedelta(milliseconds=1) for unit in _DURATION_UNITS]
    too_many_digits = "|".join(f"[1-9][0-9]{{{len(str(limit_ms // f))},}}{symbol}{'([0-9]|$)' if symbol == 'm' else ''}"
                               for (symbol, _), f in zip(_DURATION_FINDERS, factors, strict=True))
    total = " + ".join(f"int('0' + self.find('{finder}').find('[0-9]+')) * {f}"
                       for (_, finder), f in zip(_DURATION_FINDERS, factors, strict=True))
    years = limit // _DURATION_UNITS[0]
    return [cel("self.matches('[1-9]')", "must be positive (e.g. 90d)"),
            cel(f"!self.matches('{too_many_digits}') && {total} <= {limit_ms}",
                f"must be at most {years}y ({limit.days}d)")]


def _cron_field(number: str, names: str = "", question: bool = False) -> str:
    """A pattern of one cron field: a comma-separated list of ``*``, ``N`` or ``N-M``, each with an optional
    ``/step`` (step 1-99); ``number`` matches one value in the field's range, ``names`` (``jan|feb|...``) the
    three-letter names of month and weekday fields in either case, ``question`` allows ``?`` (day fields)."""
    value = f"({number}|{''.join(f'[{c.upper()}{c}]' if c.isalpha() else c for c in names)})" if names else number
    item = f"([*]|{value}(-{value})?)(/[1-9][0-9]?)?"
    return f"([?]|{item}(,{item})*)" if question else f"{item}(,{item})*"  # ? stands alone: no list, range, step


_MONTHS = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec"
_WEEKDAYS = "sun|mon|tue|wed|thu|fri|sat"
_CRON_MACROS = "@(yearly|annually|monthly|weekly|daily|midnight|hourly)"
#: The schema pattern of a cron schedule: a macro or five fields of printable ASCII separated by spaces or tabs.
CRON_PATTERN = rf"^({_CRON_MACROS}|([!-~]+[ \t]+){{4}}[!-~]+)$"
#: The grammar of a five-field cron expression (minute 0-59, hour 0-23, day of month 1-31, month 1-12 or jan-dec,
#: day of week 0-6 or sun-sat, with ``*``, ``?``, lists, ranges and steps) or a macro: what both the Kubernetes
#: CronJob parser (robfig/cron's standard parser, which refuses weekday 7 and step 0) and the operator's croniter
#: check accept, so a schedule the CRD admits is one its CronJob gets. A CEL rule (:data:`CRON_RULE`), so that the
#: API server's message is a sentence rather than this pattern. Left to the operator: a range whose start is after
#: its end (``5-1``), which a pattern cannot compare: :func:`check_cron_grammar`, in status.
CRON_GRAMMAR = (f"^({_CRON_MACROS}|" + r"[ \t]+".join((
    _cron_field("[0-5]?[0-9]"), _cron_field("([01]?[0-9]|2[0-3])"),
    _cron_field("(0?[1-9]|[12][0-9]|3[01])", question=True), _cron_field("(0?[1-9]|1[0-2])", _MONTHS),
    _cron_field("0?[0-6]", _WEEKDAYS, question=True))) + ")$")
CRON_MESSAGE = ("must be a five-field cron expression (minute 0-59, hour 0-23, day of month 1-31, month 1-12 or "
                "jan-dec, day of week 0-6 or sun-sat; *, ?, lists, ranges, /steps 1-99) or a macro such as @daily")
CRON_RULE = {"rule": f"self.matches(r'{CRON_GRAMMAR}')", "message": CRON_MESSAGE}
_CRON_RE = re.compile(CRON_GRAMMAR)


_CRON_NAMES = ({}, {}, {}, {n: i for i, n in enumerate(_MONTHS.split("|"), 1)},
               {n: i for i, n in enumerate(_WEEKDAYS.split("|"))})


def check_cron_grammar(expression: str) -> str:
    """``expression`` unchanged when it is in :data:`CRON_GRAMMAR` (the CRD's CEL rule) and no range starts after
    it ends (``5-1``, which the CronJob parser refuses and croniter accepts); ValueError else."""
    if not _CRON_RE.fullmatch(expression):  # not match: Python's $ also matches before a final newline
        raise ValueError(CRON_MESSAGE)
    if expression.startswith("@"):
        return expression
    for names, field in zip(_CRON_NAMES, expression.split(), strict=True):
        for item in field.split(","):
            start, _, end = item.split("/")[0].partition("-")
            if end and int(names.get(start.lower(), start)) > int(names.get(end.lower(), end)):
                raise ValueError(f"the range {item.split('/')[0]} starts after it ends")
    return expression


#: A cron schedule: :data:`CRON_PATTERN` and :data:`CRON_RULE` in the CRD, :func:`check_cron_grammar` in the model.
CronSchedule = Annotated[str, Field(pattern=CRON_PATTERN, max_length=128,
                                    json_schema_extra={"x-kubernetes-validations": [CRON_RULE]}),
                         AfterValidator(check_cron_grammar)]
#: An IANA time-zone name such as ``UTC`` or ``Europe/Berlin``. Existence is checked by the operator.
TIME_ZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$"
#: A Kubernetes resource quantity such as ``100m``, ``1``, ``256Mi`` or ``10Gi``.
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
#: A DNS subdomain (RFC 1123): dot-separated DNS labels, at most 253 characters (the bound goes on the field).
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
#: One e-mail address (``ops@example.com``), optionally with a display name (``Game Ops <ops@example.com>``).
_ADDR_CHAR = r"[!-+\--;=?A-~]"  # printable ASCII but , < > @
_ADDR = rf"{_ADDR_CHAR}+@{_ADDR_CHAR}+\.{_ADDR_CHAR}+"
EMAIL_PATTERN = f"^({_ADDR}|[^<>@,]*<{_ADDR}>)$"
#: A comma-separated list of :data:`EMAIL_PATTERN` addresses (Alertmanager's ``to``).
EMAIL_LIST_PATTERN = f"^{_ADDR}([ \\t]*,[ \\t]*{_ADDR})*$"
#: A game name: games travel to the workers as one comma-joined environment variable, so no comma, no
#: whitespace at either end and no control characters.
GAME_NAME_PATTERN = f"^[^,{SPACE}\\x00-\\x1f\\x7f]([^,\\x00-\\x1f\\x7f]*[^,{SPACE}\\x00-\\x1f\\x7f])?$"

Duration = Annotated[str, Field(pattern=DURATION_PATTERN, min_length=1, max_length=32)]
#: A container image reference: printable ASCII without spaces (the Pod validation refuses an image with
#: surrounding whitespace; the fuzzer found ``image: " "`` admitted and every mongod refused).
ImageRef = Annotated[str, Field(min_length=1, max_length=512, pattern=f"^[{PRINTABLE}]+$")]
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
    #: a StorageClass name is a DNS subdomain: the API server admits a StatefulSet with any claim template, then
    #: refuses every PersistentVolumeClaim its controller creates from it (the pods stay Pending)
    storage_class_name: str | None = Field(
        default=None, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN,
        description="StorageClass to use (a DNS subdomain, e.g. gp3 or fast-ssd); the cluster default when unset.",
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
_LABEL_PREFIX_RE = re.compile(DNS_SUBDOMAIN_PATTERN)
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")


def check_kubernetes_labels(labels: dict[str, str]) -> dict[str, str]:
    """``labels`` unchanged when every key and value is a valid Kubernetes label (they go onto generated objects'
    metadata.labels). Raises ValueError naming the first bad key or value. (The CRD checks the same patterns at
    apply, :data:`KubernetesLabels`; this also bounds a key's prefix to 253 characters.)"""
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        if not _LABEL_NAME_RE.match(name) or (prefix and (len(prefix) > 253 or not _LABEL_PREFIX_RE.match(prefix))):
            raise ValueError(f"{key!r} is not a valid label key ([prefix/]name, name at most 63 characters)")
        if not _LABEL_VALUE_RE.match(value):
            raise ValueError(f"the value of {key!r} is not a valid label value (at most 63 characters: letters, "
                             "digits, '-', '_' and '.', starting and ending with a letter or digit)")
    return labels


#: A label key or topology key: a qualified name, ``[DNS-subdomain prefix/]name`` with a name of at most 63
#: characters (the prefix's own limit of 253 is left to :func:`check_kubernetes_labels`: not a pattern's to count).
QUALIFIED_NAME_PATTERN = (r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                          r"([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$")
#: A label value (empty, or at most 63 letters, digits, '-', '_', '.', starting and ending alphanumeric).
LABEL_VALUE_PATTERN = _LABEL_VALUE_RE.pattern
QualifiedName = Annotated[str, Field(pattern=QUALIFIED_NAME_PATTERN, max_length=317)]
LabelValue = Annotated[str, Field(pattern=LABEL_VALUE_PATTERN, max_length=63)]
#: The type of ``spec.monitoringLabels`` (and nodeSelector, matchLabels): Kubernetes labels; keys and values have
#: their patterns in the CRD (keys by a CEL rule: a structural schema has no key patterns), the rest is checked by
#: :func:`check_kubernetes_labels`.
KubernetesLabels = Annotated[dict[QualifiedName, LabelValue], AfterValidator(check_kubernetes_labels)]
#: A Prometheus label or annotation name (the keys of an AlertRule's ``labels`` and ``annotations``).
PrometheusLabelName = Annotated[str, Field(pattern=PROMETHEUS_LABEL_NAME_PATTERN, max_length=128)]


def monitoring_labels_field() -> Any:
    """The ``spec.monitoringLabels`` field shared by the kinds that generate monitoring objects."""
    return Field(
        default_factory=dict,
        max_length=32,
        description="Extra labels on the generated monitoring objects (PrometheusRule, ServiceMonitor, "
                    "AlertmanagerConfig), e.g. {release: kube-prometheus-stack} for that stack's selectors. "
                    "Merged over the operator's default (chart value monitoring.labels); a key set here wins.",
    )
