"""The user's field behind an API server refusal of a generated child.

When the API server refuses an update of a child (HTTP 422), its message names the child's field
(``StatefulSet.apps "lb-redis" is invalid: spec: Forbidden: updates to statefulset spec for fields other than
...``), which the user never wrote. :func:`rejected_message` puts the spec field that produces that child field
first. Admission normally refuses such a change already (the CEL transition rules on every ``storage``); this
covers objects admitted by an older CRD, or a client that bypassed it.
"""

from __future__ import annotations

#: (owner kind, child kind, text in the API server's message) -> the spec fields the user changed
IMMUTABLE_CHILD_FIELDS: dict[tuple[str, str, str], str] = {
    ("RedisFailover", "StatefulSet", "updates to statefulset spec"): "spec.redis.storage",
    ("MongoShardedCluster", "StatefulSet", "updates to statefulset spec"):
        "spec.configServer.storage / spec.shards.storage",
}


def rejected_message(owner_kind: str, child: str | None, status: int, api_message: str) -> str:
    """The Ready message for a refused apply of ``child`` (``Kind/name``, None when unknown).

    Returns ``"<spec field>: cannot be changed after creation (<child> is immutable there): <api message>"`` for
    a known immutable child field, else ``"<status> <child>: <api message>"``.
    """
    child_kind = (child or "").partition("/")[0]
    for (kind, ckind, marker), field in IMMUTABLE_CHILD_FIELDS.items():
        if status == 422 and kind == owner_kind and ckind == child_kind and marker in api_message:
            return (f"{field}: cannot be changed after creation ({child} is immutable there; resize the "
                    f"PersistentVolumeClaims themselves, see docs/hardening.md): {api_message}")
    return f"{status} {child + ': ' if child else ''}{api_message}"
