"""Names of a MongoShardedCluster's children (``<cluster>`` is the MongoShardedCluster's name).

A StatefulSet and its replica set share a name; members are known by stable DNS names, so replica-set
configurations survive rescheduling.
"""

from __future__ import annotations

import hashlib

MONGO_PORT = 27017
#: Percona mongodb_exporter's default listen port (``--web.listen-address``).
EXPORTER_PORT = 9216
#: Label on the Services whose ``metrics`` port the ServiceMonitor scrapes.
LABEL_METRICS = "gameanalytics.io/mongo-metrics"
#: The bootstrap Job's component label (also on its pods, where the planner reads the termination message).
BOOTSTRAP_COMPONENT = "mongo-bootstrap"
#: Where the bootstrap worker writes its observation: the container's default termination-message path, which
#: the kubelet copies into the pod's ``status.containerStatuses[].state.terminated.message`` (at most 4 KiB).
STATUS_FILE = "/dev/termination-log"


def config_server_name(cluster: str) -> str:
    """Config-server StatefulSet and replica set name: ``<cluster>-cfg``."""
    return f"{cluster}-cfg"


def shard_name(cluster: str, index: int) -> str:
    """Shard StatefulSet and replica set name: ``<cluster>-shard-<i>``."""
    return f"{cluster}-shard-{index}"


def headless_name(statefulset: str) -> str:
    """The headless Service of a StatefulSet: ``<sts>-headless``."""
    return f"{statefulset}-headless"


def mongos_name(cluster: str) -> str:
    """The mongos Deployment, Service and PodDisruptionBudget: ``<cluster>-mongos``."""
    return f"{cluster}-mongos"


def member_host(statefulset: str, namespace: str, ordinal: int) -> str:
    """``<sts>-<i>.<sts>-headless.<ns>.svc:27017``: the stable name a member is known by in its replica set."""
    return f"{statefulset}-{ordinal}.{headless_name(statefulset)}.{namespace}.svc:{MONGO_PORT}"


def mongos_host(cluster: str, namespace: str) -> str:
    """``<cluster>-mongos.<ns>.svc:27017``: where the bootstrap reaches mongos."""
    return f"{mongos_name(cluster)}.{namespace}.svc:{MONGO_PORT}"


def service_monitor_name(cluster: str) -> str:
    """The ServiceMonitor scraping every mongodb_exporter of the cluster: ``<cluster>-mongodb``."""
    return f"{cluster}-mongodb"


def bootstrap_job_name(cluster: str, topology_json: str) -> str:
    """``<cluster>-bootstrap-<8 hex digits of the SHA-256 of the topology JSON>`` (Jobs are immutable, so a
    changed topology gets a new Job)."""
    return f"{cluster}-bootstrap-{hashlib.sha256(topology_json.encode()).hexdigest()[:8]}"
