"""A sharded cluster simulated at the MongoDB wire protocol, for the bootstrap executor's tests.

One ``mockupdb`` server stands for the first member of each replica set and one for mongos. pymongo talks OP_MSG
to them as it would to mongod/mongos; every command is logged as ``(server, command, argument)`` and answered
with the reply shape the MongoDB manual documents for it (fields the executor does not read are left out):

* ``replSetGetStatus``: ``NotYetInitialized`` (94) on a fresh set, else ``set`` and ``members`` (``stateStr``);
* ``replSetInitiate``: ``{ok: 1}``, on an initialised set ``AlreadyInitialized`` (23, "already initialized");
* ``listShards``: ``shards`` with ``_id``, ``host``, ``state`` and ``tags``; ``addShard``: ``shardAdded``
  (also when the shard is present with the same hosts: addShard is idempotent);
* ``usersInfo``: ``users``; ``createUser``: ``{ok: 1}``, for an existing user error 51003
  ('User "admin@admin" already exists');
* ``enableSharding``: ``{ok: 1}``; ``shardCollection``: ``collectionsharded``, again ``{ok: 1}`` for the same key
  (idempotent since 5.0), ``AlreadyInitialized`` (23) for another key; ``addShardToZone``,
  ``updateZoneKeyRange``: ``{ok: 1}``;
* ``find`` on ``config.collections`` / ``config.tags``: a cursor over the documents the cluster holds.

This is not mongod: nothing here elects, replicates, authenticates or moves chunks (see docs/topologies.md).
"""

from __future__ import annotations

from typing import Any

import pymongo
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from mockupdb import Matcher, MockupDB

from game_analytics.controller.mongoshardedcluster.bootstrap import DesiredCluster

#: Fields pymongo adds to every command; not part of what the executor decided to send.
DRIVER_FIELDS = {"$db", "lsid", "$clusterTime", "$readPreference", "txnNumber", "autocommit", "apiVersion"}
MUTATING = {"replSetInitiate", "replSetReconfig", "addShard", "createUser", "enableSharding", "shardCollection",
            "addShardToZone", "updateZoneKeyRange"}
HELLO = {"hello": True, "isWritablePrimary": True, "maxWireVersion": 21, "minWireVersion": 0,
         "maxBsonObjectSize": 16 * 1024 * 1024, "maxMessageSizeBytes": 48_000_000, "maxWriteBatchSize": 100_000}


def _plain(value: Any) -> Any:
    """BSON values as comparable, printable Python: MinKey/MaxKey as ``$minKey``/``$maxKey``, SON as dict."""
    if isinstance(value, MinKey):
        return "$minKey"
    if isinstance(value, MaxKey):
        return "$maxKey"
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class WireCluster:
    """The servers of a sharded cluster and what they hold; start with :meth:`start`, stop with :meth:`stop`.

    Attributes:
        log: every command received, as ``(server, command name, document without driver fields)``.
        connects: every ``connect`` call, as ``(server, username, auth source, direct)``.
    """

    def __init__(self, want: DesiredCluster) -> None:
        self.want = want
        self.initialized: set[str] = set()
        self.shards: dict[str, str] = {}
        self.shard_tags: dict[str, list[str]] = {}
        self.users: set[str] = set()
        self.collections: dict[str, dict[str, Any]] = {}
        self.tags: list[dict[str, Any]] = []
        self.log: list[tuple[str, str, dict[str, Any]]] = []
        self.connects: list[tuple[str, str, str, bool]] = []
        self.servers: dict[str, MockupDB] = {}
        self.hosts: dict[str, str] = {}

    # -- servers -------------------------------------------------------------------------------------------
    def start(self) -> WireCluster:
        for rs in self.want.replica_sets:
            self._serve(rs.name, rs.members[0], HELLO)
        self._serve("mongos", self.want.mongos, {**HELLO, "msg": "isdbgrid"})
        return self

    def _serve(self, label: str, host: str, hello: dict[str, Any]) -> None:
        server = MockupDB(auto_ismaster=hello)
        server.autoresponds(Matcher(), lambda request: self._handle(label, request))
        server.run()
        self.servers[label] = server
        self.hosts[host] = label

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()

    def connect(self, hosts: Any, username: str, password: str, auth_source: str, *, direct: bool) -> Any:
        """The executor's ``connect``: the first host's server (credentials are recorded, not checked)."""
        host = hosts if isinstance(hosts, str) else hosts[0]
        label = self.hosts[host]
        self.connects.append((label, username, auth_source, direct))
        return pymongo.MongoClient(self.servers[label].uri, directConnection=direct, serverSelectionTimeoutMS=3000,
                                   connectTimeoutMS=3000)

    # -- what happened -------------------------------------------------------------------------------------
    def commands(self) -> list[tuple[str, str, Any]]:
        """``(server, command, its first value)``: ``("mongos", "addShard", "<seed list>")``."""
        return [(label, name, _plain(next(iter(doc.values())))) for label, name, doc in self.log]

    def mutating(self) -> list[tuple[str, str, Any]]:
        return [c for c in self.commands() if c[1] in MUTATING]

    def clear(self) -> None:
        self.log.clear()
        self.connects.clear()

    # -- replies ---------------------------------------------------------------------------------------------
    def _handle(self, label: str, request: Any) -> bool:
        name = request.command_name
        if name in ("hello", "ismaster", "isMaster"):
            return False  # auto_ismaster answers
        if name == "endSessions":
            request.ok()
            return True
        doc = {k: v for k, v in request.doc.items() if k not in DRIVER_FIELDS}
        self.log.append((label, name, doc))
        request.reply(self._reply(label, name, doc))
        return True

    def _reply(self, label: str, name: str, doc: dict[str, Any]) -> dict[str, Any]:
        if label != "mongos":
            return self._replica_set(label, name, doc)
        value = doc[name]
        if name == "ping":
            return {"ok": 1.0}
        if name == "listShards":
            return {"ok": 1.0, "shards": [{"_id": s, "host": h, "state": 1, "tags": self.shard_tags.get(s, [])}
                                          for s, h in self.shards.items()]}
        if name == "addShard":
            self.shards[doc.get("name", value.split("/")[0])] = value
            return {"ok": 1.0, "shardAdded": doc.get("name")}
        if name == "usersInfo":
            user = value["user"]
            return {"ok": 1.0, "users": [{"_id": f"admin.{user}", "user": user, "db": "admin",
                                          "roles": [{"role": "root", "db": "admin"}]}] if user in self.users else []}
        if name == "createUser":
            if value in self.users:
                return {"ok": 0.0, "errmsg": f'User "{value}@admin" already exists', "code": 51003,
                        "codeName": "Location51003"}
            self.users.add(value)
            return {"ok": 1.0}
        if name == "enableSharding":
            return {"ok": 1.0}
        if name == "shardCollection":
            key, unique = dict(doc["key"]), bool(doc.get("unique", False))
            held = self.collections.get(value)
            if held is not None and (held["key"] != key or held["unique"] != unique):
                return {"ok": 0.0, "code": 23, "codeName": "AlreadyInitialized",
                        "errmsg": f"sharding already enabled for collection {value} with options {held}"}
            self.collections[value] = {"key": key, "unique": unique}
            return {"ok": 1.0, "collectionsharded": value}
        if name == "addShardToZone":
            tags = self.shard_tags.setdefault(value, [])
            if doc["zone"] not in tags:
                tags.append(doc["zone"])
            return {"ok": 1.0}
        if name == "updateZoneKeyRange":
            self.tags = [t for t in self.tags if not (t["ns"] == value and _plain(t["min"]) == _plain(doc["min"]))]
            self.tags.append({"_id": ObjectId(), "ns": value, "min": doc["min"], "max": doc["max"], "tag": doc["zone"]})
            return {"ok": 1.0}
        if name == "find":
            ids = set(doc.get("filter", {}).get("_id", doc.get("filter", {}).get("ns", {})).get("$in", []))
            if value == "collections":
                batch = [{"_id": ns, "key": c["key"], "unique": c["unique"]}
                         for ns, c in self.collections.items() if ns in ids]
            else:
                batch = [t for t in self.tags if t["ns"] in ids]
            return {"ok": 1.0, "cursor": {"id": 0, "ns": f"config.{value}", "firstBatch": batch}}
        return {"ok": 0.0, "errmsg": f"no such command: '{name}'", "code": 59, "codeName": "CommandNotFound"}

    def _replica_set(self, label: str, name: str, doc: dict[str, Any]) -> dict[str, Any]:
        rs = next(r for r in self.want.replica_sets if r.name == label)
        if name == "replSetGetStatus":
            if label not in self.initialized:
                return {"ok": 0.0, "errmsg": "no replset config has been received", "code": 94,
                        "codeName": "NotYetInitialized"}
            return {"ok": 1.0, "set": label, "myState": 1, "members": [
                {"_id": i, "name": h, "health": 1.0, "state": 1 if i == 0 else 2,
                 "stateStr": "PRIMARY" if i == 0 else "SECONDARY"} for i, h in enumerate(rs.members)]}
        if name == "replSetInitiate":
            if label in self.initialized:
                return {"ok": 0.0, "errmsg": "already initialized", "code": 23, "codeName": "AlreadyInitialized"}
            self.initialized.add(label)
            return {"ok": 1.0}
        return {"ok": 0.0, "errmsg": f"no such command: '{name}'", "code": 59, "codeName": "CommandNotFound"}
