"""MongoShardedCluster: a sharded MongoDB with a config-server replica set, shard replica sets and mongos routers."""

from __future__ import annotations

from pydantic import Field

from .common import BaseStatus, Model, Resources, SecretKeyRef, Storage, cel

_ODD = cel("self.replicas % 2 == 1", "replica set members must be odd to keep a voting majority", ".replicas")


class ConfigServerSettings(Model):
    model_config = Model.model_config | {"json_schema_extra": {"x-kubernetes-validations": [_ODD]}}

    replicas: int = Field(default=3, ge=1, le=7, description="Config-server replica set members (odd).")
    resources: Resources = Field(default_factory=Resources, description="Container resources.")
    storage: Storage = Field(default_factory=Storage, description="Volume per member.")


class ShardSettings(Model):
    model_config = Model.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel("self.replicasPerShard % 2 == 1", "shard replica sets must have an odd member count", ".replicasPerShard")
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


class MongoShardedClusterSpec(Model):
    """Desired state of a MongoShardedCluster."""

    model_config = Model.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                cel(
                    "!has(oldSelf.shards) || self.shards.count >= oldSelf.shards.count",
                    "shards cannot be removed by lowering shards.count; drain them first (see docs/runbooks)",
                    ".shards.count",
                )
            ]
        }
    }

    version: str = Field(default="7.0", pattern=r"^[0-9]+\.[0-9]+(\.[0-9]+)?$", description="MongoDB server version.")
    image: str | None = Field(default=None, max_length=512, description="mongod/mongos image; the operator's default when unset.")
    config_server: ConfigServerSettings = Field(default_factory=ConfigServerSettings, description="The config-server replica set.")
    shards: ShardSettings = Field(default_factory=ShardSettings, description="The shard replica sets.")
    mongos: MongosSettings = Field(default_factory=MongosSettings, description="The mongos routers.")
    keyfile_secret_ref: SecretKeyRef = Field(description="Secret key holding the internal-auth keyfile.")
    admin_secret_ref: LocalAdminSecret = Field(description="Secret holding the admin user's name and password.")


class LocalAdminSecret(Model):
    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", max_length=253, description="Secret with keys username and password.")


class ReplicaSetStatus(Model):
    name: str = Field(description="Replica set name.")
    initialized: bool = Field(default=False, description="rs.initiate has completed.")
    added_as_shard: bool = Field(default=False, description="The replica set is registered with addShard.")


class MongoShardedClusterStatus(BaseStatus):
    replica_sets: list[ReplicaSetStatus] = Field(default_factory=list, description="Bootstrap state per replica set.")


MongoShardedClusterSpec.model_rebuild()
