"""Pure helpers for ``status.conditions`` in the standard Kubernetes shape."""

from __future__ import annotations

from typing import Any

from ..api.common import utcnow


def condition(type_: str, status: bool | None, reason: str, message: str = "", generation: int | None = None) -> dict:
    """A condition dict; ``status`` True/False/None maps to "True"/"False"/"Unknown"."""
    text = {True: "True", False: "False", None: "Unknown"}[status]
    out: dict[str, Any] = {"type": type_, "status": text, "reason": reason, "message": message}
    if generation is not None:
        out["observedGeneration"] = generation
    return out


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
    return next((c for c in conditions or [] if c.get("type") == type_), None)
