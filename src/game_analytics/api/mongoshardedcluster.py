"""MongoShardedCluster: a sharded MongoDB with a config-server replica set, shard replica sets and mongos routers."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from .common import (
    DNS_SUBDOMAIN_PATTERN,
    BaseStatus,
    ImageRef,
    Model,
    Resources,
    SecretKeyRef,
    Storage,
    cel,
    opt,
)

_ODD = cel(f"{opt('replicas', 3)} % 2 == 1", "replica set members must be odd to keep a voting majority", ".replicas")


class ConfigServerSettings(Model):
    model_config = Model.model_config | {"json_schema_extra": {"x-kubernetes-validations": [_ODD]}}

    replicas: int = Field(default=3, ge=1, le=7, description="Config-server replica set members (odd).")
    resources: Resources = Field(default_factory=Resources, description="Container resources.")
    storage: Storage = Field(default_factory=Storage, description="Volume per member.")


class ShardSettings(Model):
    model_config = Model.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(f"{opt('replicasPerShard', 3)} % 2 == 1", "shard replica sets must have an odd member count", ".replicasPerShard")
            ]
        }
    }

    count: int = Field(default=2, ge=1, le=64, description="Number of shards.")
    replicas_per_shard: int = Field(default=3, ge=1, le=7, description="Members of each shard's replica set (odd).")
    resources: Resources = Field(default_factory=Resources, description="Container resources.")
    storage: Storage = Field(default_factory=lambda: Storage(size="10Gi"), description="Volume per member.")


class MongosSettings(Model):
    replicas: int = Field(default=2, ge=1, le=32, description="mongos router pods.")
    resources: Resources = Field(default_factory=Resources, description="Container resources.")


class MongoExporterSettings(Model):
    enabled: bool = Field(default=True, description="Run a Percona mongodb_exporter sidecar next to every mongod and mongos.")
    image: ImageRef | None = Field(default=None, description="Exporter image; the operator's default when unset.")


_KEY_NAME = r"^[A-Za-z_][A-Za-z0-9_.]*$"
#: a key of a zone bound: bounded (length, and at most 8 per bound, the shard key's maximum) for the CEL cost budget
_BoundKey = Annotated[str, Field(max_length=128)]
_DB_NAME = r"^[A-Za-z0-9_-]{1,63}$"


class ShardKeyField(Model):
    field: str = Field(pattern=_KEY_NAME, max_length=128, description="Document field (dotted paths allowed).")
    type: Literal["hashed", "ranged"] = Field(default="ranged", description="hashed (even spread) or ranged (zones, range queries).")


class ZoneRange(Model):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,63}$", description="Zone name, e.g. the region (addShardToZone).")
    shards: list[int] = Field(min_length=1, max_length=64, description="Indexes of the shards in the zone (0-based).")
    min: dict[_BoundKey, str] = Field(max_length=8, description="Inclusive lower bound per shard-key field; fields left out are MinKey, "
                                            "\"$minKey\"/\"$maxKey\" stand for MinKey/MaxKey.")
    max: dict[_BoundKey, str] = Field(max_length=8, description="Exclusive upper bound per shard-key field; fields left out are MaxKey.")


class ShardedCollection(Model):
    model_config = Model.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel("self.shardKey.filter(k, has(k.type) && k.type == 'hashed').size() <= 1",
                    "a shard key has at most one hashed field", ".shardKey"),
                cel("!has(self.unique) || !self.unique || self.shardKey.all(k, !has(k.type) || k.type == 'ranged')",
                    "a unique shard key cannot be hashed", ".unique"),
                cel("!has(self.zones) || self.zones.all(z, z.min.all(k, self.shardKey.exists(f, f.field == k)) "
                    "&& z.max.all(k, self.shardKey.exists(f, f.field == k)))",
                    "zone min and max keys must be fields of the shard key", ".zones"),
            ]
        }
    }

    database: str = Field(pattern=_DB_NAME, description="Database name.")
    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,119}$", description="Collection name.")
    shard_key: list[ShardKeyField] = Field(min_length=1, max_length=8, description="Shard key fields in order. "
                                           "MongoDB cannot change a shard key in place: a change is refused.")
    unique: bool = Field(default=False, description="Enforce uniqueness of the shard key (shardCollection unique).")
    zones: list[ZoneRange] = Field(default_factory=list, max_length=16,
                                   description="Zone sharding: each zone's shards and its shard-key range.")

    @property
    def namespace(self) -> str:
        """``<database>.<name>`` as MongoDB names it."""
        return f"{self.database}.{self.name}"


class MongoShardedClusterSpec(Model):
    """Desired state of a MongoShardedCluster."""

    model_config = Model.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    f"{opt('shards.count', 2)} >= {opt('shards.count', 2, root='oldSelf')}",
                    "shards cannot be removed by lowering shards.count; drain them first (see docs/runbooks)",
                    ".shards.count",
                ),
                cel(f"!has(self.collections) || self.collections.all(c, !has(c.zones) || c.zones.all(z, "
                    f"z.shards.all(s, s < {opt('shards.count', 2)})))",
                    "zone shards must be below shards.count (shard indexes are 0-based)", ".collections"),
            ]
        }
    }

    version: str = Field(default="7.0", pattern=r"^[0-9]+\.[0-9]+(\.[0-9]+)?$", description="MongoDB server version.")
    image: ImageRef | None = Field(default=None, description="mongod/mongos image; the operator's default when unset.")
    config_server: ConfigServerSettings = Field(default_factory=ConfigServerSettings, description="The config-server replica set.")
    shards: ShardSettings = Field(default_factory=ShardSettings, description="The shard replica sets.")
    mongos: MongosSettings = Field(default_factory=MongosSettings, description="The mongos routers.")
    keyfile_secret_ref: SecretKeyRef = Field(description="Secret key holding the internal-auth keyfile.")
    admin_secret_ref: LocalAdminSecret = Field(description="Secret holding the admin user's name and password.")
    exporter: MongoExporterSettings = Field(default_factory=MongoExporterSettings, description="Prometheus exporter.")
    collections: list[ShardedCollection] = Field(default_factory=list, max_length=64,
                                                 description="Collections the bootstrap shards (idempotently).")


class LocalAdminSecret(Model):
    name: str = Field(pattern=DNS_SUBDOMAIN_PATTERN, min_length=1, max_length=253,
                      description="Secret with keys username and password.")


class MemberStatus(Model):
    host: str = Field(description="Member host:port as configured in the replica set.")
    state: str = Field(description="replSetGetStatus stateStr: PRIMARY, SECONDARY, STARTUP2, ...")


class ReplicaSetStatus(Model):
    name: str = Field(description="Replica set name.")
    initialized: bool = Field(default=False, description="rs.initiate has completed.")
    added_as_shard: bool = Field(default=False, description="The replica set is registered with addShard.")
    primary: str | None = Field(default=None, description="host:port of the PRIMARY member, as observed.")
    members: list[MemberStatus] = Field(default_factory=list, description="Members and their states, as observed.")


class ShardStatus(Model):
    name: str = Field(description="Shard _id from listShards.")
    host: str = Field(description="The shard's seed list from listShards.")
    zones: list[str] = Field(default_factory=list, description="Zones the shard belongs to.")


class CollectionStatus(Model):
    namespace: str = Field(description="<database>.<collection>.")
    shard_key: list[ShardKeyField] = Field(default_factory=list, description="The shard key as config.collections holds it.")
    unique: bool = Field(default=False, description="The shard key is unique.")
    zones: list[str] = Field(default_factory=list, description="Zones with a key range on this collection.")


class MongoShardedClusterStatus(BaseStatus):
    replica_sets: list[ReplicaSetStatus] | None = Field(default=None, description="Observed state per replica set.")
    shards: list[ShardStatus] | None = Field(default=None, description="Registered shards, as listShards reports them.")
    collections: list[CollectionStatus] | None = Field(default=None, description="Sharded collections, as observed.")


MongoShardedClusterSpec.model_rebuild()
