"""Sharded collections and zones, the pure half: desired collections from ``spec.collections``, observed ones from
``config.collections`` / ``config.tags`` / ``listShards``, the steps that shard them, and key conflicts.

MongoDB cannot change a shard key in place (``refineCollectionShardKey`` only appends suffix fields, and
``reshardCollection`` rewrites the whole collection): a collection already sharded on another key, or with another
``unique``, is a *conflict*. :func:`conflicts` names it by its spec field (``spec.collections[1].shardKey``); no
step touches it, and the operator refuses the spec (see :mod:`.plan`).

Zone bounds are strings per shard-key field; a field left out is MinKey in ``min`` and MaxKey in ``max``, and the
strings ``$minKey`` / ``$maxKey`` stand for them explicitly (the executor turns them into BSON MinKey/MaxKey).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ...api.mongoshardedcluster import ShardedCollection

MIN_KEY = "$minKey"
MAX_KEY = "$maxKey"


@dataclass(frozen=True)
class ZoneSpec:
    """A zone of one collection: its name, the shard names in it, and its key range (every key field set)."""

    name: str
    shards: tuple[str, ...]
    min: tuple[tuple[str, Any], ...]
    max: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class CollectionSpec:
    """A collection as it should be sharded. ``key`` pairs each field with ``"hashed"`` or ``1`` (ranged), in
    order, as ``shardCollection`` takes it; ``index`` is its position in ``spec.collections``."""

    namespace: str
    key: tuple[tuple[str, Any], ...]
    unique: bool = False
    zones: tuple[ZoneSpec, ...] = ()
    index: int = 0

    @property
    def database(self) -> str:
        return self.namespace.split(".", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (lists for tuples), the inverse of :meth:`from_dict`."""
        return {"namespace": self.namespace, "key": [list(p) for p in self.key], "unique": self.unique,
                "index": self.index,
                "zones": [{"name": z.name, "shards": list(z.shards), "min": [list(p) for p in z.min],
                           "max": [list(p) for p in z.max]} for z in self.zones]}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> CollectionSpec:
        """Raises KeyError/TypeError/ValueError on malformed input."""
        zones = tuple(ZoneSpec(z["name"], tuple(z["shards"]), tuple(tuple(p) for p in z["min"]),
                               tuple(tuple(p) for p in z["max"])) for z in raw.get("zones", []))
        return cls(raw["namespace"], tuple(tuple(p) for p in raw["key"]), bool(raw.get("unique", False)), zones,
                   int(raw.get("index", 0)))


def desired_collections(collections: Iterable[ShardedCollection], shard_names: list[str]) -> tuple[CollectionSpec, ...]:
    """``spec.collections`` as :class:`CollectionSpec` values; zone shard indexes become shard names.

    Raises:
        ValueError: a zone names a shard index beyond ``shards.count``, or a bound names a field that is not in the
            shard key; the message starts with the field path (``spec.collections[0].zones[1].shards: ...``).
    """
    out = []
    for i, c in enumerate(collections):
        fields = [k.field for k in c.shard_key]
        key = tuple((k.field, "hashed" if k.type == "hashed" else 1) for k in c.shard_key)
        zones = []
        for j, z in enumerate(c.zones):
            path = f"spec.collections[{i}].zones[{j}]"
            bad = [s for s in z.shards if not 0 <= s < len(shard_names)]
            if bad:
                raise ValueError(f"{path}.shards: no shard {bad[0]} (shards.count is {len(shard_names)})")
            for bound in ("min", "max"):
                extra = sorted(set(getattr(z, bound)) - set(fields))
                if extra:
                    raise ValueError(f"{path}.{bound}: {extra[0]!r} is not a shard key field ({', '.join(fields)})")
            zones.append(ZoneSpec(z.name, tuple(shard_names[s] for s in z.shards),
                                  tuple((f, z.min.get(f, MIN_KEY)) for f in fields),
                                  tuple((f, z.max.get(f, MAX_KEY)) for f in fields)))
        out.append(CollectionSpec(c.namespace, key, c.unique, tuple(zones), i))
    return tuple(out)


def _bound(value: Any) -> Any:
    """A bound value as the spec writes it: BSON MinKey/MaxKey (by type name: no bson import) become markers."""
    name = type(value).__name__
    return MIN_KEY if name == "MinKey" else MAX_KEY if name == "MaxKey" else value


@dataclass(frozen=True)
class ObservedCollection:
    """A sharded collection from ``config.collections``: key pairs in order, unique, and its zone ranges."""

    namespace: str
    key: tuple[tuple[str, Any], ...]
    unique: bool = False
    zones: tuple[tuple[str, tuple[tuple[str, Any], ...], tuple[tuple[str, Any], ...]], ...] = ()

    @classmethod
    def from_documents(cls, doc: Mapping[str, Any], tags: Iterable[Mapping[str, Any]] = ()) -> ObservedCollection:
        """From a ``config.collections`` document and the ``config.tags`` documents of its namespace."""
        key = tuple((f, "hashed" if v == "hashed" else 1) for f, v in doc["key"].items())
        zones = tuple((t["tag"], tuple((f, _bound(v)) for f, v in t["min"].items()),
                       tuple((f, _bound(v)) for f, v in t["max"].items())) for t in tags if t.get("ns") == doc["_id"])
        return cls(doc["_id"], key, bool(doc.get("unique", False)), zones)


def key_text(key: Iterable[tuple[str, Any]]) -> str:
    """``{player_id: hashed}`` / ``{region: 1, ts: 1}`` for messages."""
    return "{" + ", ".join(f"{f}: {v}" for f, v in key) + "}"


def conflicts(observed: Mapping[str, ObservedCollection] | None, want: Iterable[CollectionSpec]) -> list[str]:
    """Messages for collections already sharded on another key (or another ``unique``), each starting with the
    spec field path; empty when there is none or nothing was observed."""
    out = []
    for c in want:
        obs = (observed or {}).get(c.namespace)
        if obs is None:
            continue
        if obs.key != c.key:
            out.append(f"spec.collections[{c.index}].shardKey: {c.namespace} is sharded on {key_text(obs.key)}, "
                       f"not {key_text(c.key)}; MongoDB cannot change a shard key in place")
        elif obs.unique != c.unique:
            out.append(f"spec.collections[{c.index}].unique: {c.namespace} is sharded with unique={obs.unique}; "
                       "uniqueness of a shard key cannot be changed in place")
    return out


@dataclass(frozen=True)
class ShardingStep:
    """``enable_sharding`` (target: database), ``shard_collection`` (target: namespace), ``add_shard_to_zone``
    (target: shard, argument: zone) or ``update_zone_key_range`` (target: namespace, argument: zone)."""

    action: str
    target: str
    reason: str
    argument: str = ""


def steps(observed: Mapping[str, ObservedCollection], shard_zones: Mapping[str, tuple[str, ...]],
          want: Iterable[CollectionSpec]) -> list[ShardingStep]:
    """What shards the wanted collections and sets their zones, skipping everything already observed and every
    conflicting collection. ``enableSharding`` is sent only for a database with a collection still to shard."""
    out: list[ShardingStep] = []
    enabled: set[str] = set()
    zoned: set[tuple[str, str]] = set()
    for c in want:
        obs = observed.get(c.namespace)
        if obs is not None and (obs.key != c.key or obs.unique != c.unique):
            continue  # a conflict: refused, never touched
        if obs is None:
            if c.database not in enabled:
                enabled.add(c.database)
                out.append(ShardingStep("enable_sharding", c.database, f"{c.namespace} is not sharded yet"))
            out.append(ShardingStep("shard_collection", c.namespace, f"{c.namespace} is not sharded"))
        for z in c.zones:
            for shard in z.shards:
                if z.name not in shard_zones.get(shard, ()) and (shard, z.name) not in zoned:
                    zoned.add((shard, z.name))
                    out.append(ShardingStep("add_shard_to_zone", shard, f"{shard} is not in zone {z.name}", z.name))
            if (z.name, z.min, z.max) not in (obs.zones if obs else ()):
                out.append(ShardingStep("update_zone_key_range", c.namespace,
                                        f"{c.namespace} has no range for zone {z.name}", z.name))
    return out
