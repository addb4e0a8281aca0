"""Pure helpers for ``status.conditions`` in the standard Kubernetes shape (metav1.Condition).

:func:`condition` is the one constructor every planner uses; :func:`merge` keeps ``lastTransitionTime`` stable.
"""

from __future__ import annotations

from typing import Any

from ...api.common import Condition, ConditionStatus, utcnow

_STATUS = {True: ConditionStatus.TRUE, False: ConditionStatus.FALSE, None: ConditionStatus.UNKNOWN}


def condition(type_: str, status: bool | None | ConditionStatus, reason: str, message: str = "",
              generation: int | None = None) -> dict[str, Any]:
    """A condition dict built through :class:`~game_analytics.api.common.Condition` (camelCase keys).

    ``status`` True/False/None maps to "True"/"False"/"Unknown"; a :class:`ConditionStatus` is taken as it is.
    ``observedGeneration`` is set when ``generation`` is given; ``lastTransitionTime`` is left to :func:`merge`.

    Raises:
        pydantic.ValidationError: a field breaks the model's limits (e.g. a reason over 1024 characters).
    """
    value = status if isinstance(status, ConditionStatus) else _STATUS[status]
    return Condition(type=type_, status=value, reason=reason, message=message,
                     observed_generation=generation).to_api()


def merge(current: list[dict] | None, updates: list[dict]) -> list[dict]:
    """Return ``current`` with ``updates`` applied, keeping ``lastTransitionTime`` where the status did not change.

    Conditions not named in ``updates`` are kept as they are. The result is ordered by type so that an unchanged
    state always produces the same list (and no status write).
    """
    by_type = {c["type"]: dict(c) for c in current or []}
    for new in updates:
        old = by_type.get(new["type"])
        merged = dict(new)
        if old and old.get("status") == new["status"] and old.get("lastTransitionTime"):
            merged["lastTransitionTime"] = old["lastTransitionTime"]
        else:
            merged["lastTransitionTime"] = utcnow().isoformat().replace("+00:00", "Z")
        by_type[new["type"]] = merged
    return sorted(by_type.values(), key=lambda c: (c["type"] != "Ready", c["type"]))


def get(conditions: list[dict] | None, type_: str) -> dict | None:
    """The condition of type ``type_`` in ``conditions``, or None."""
    return next((c for c in conditions or [] if c.get("type") == type_), None)
