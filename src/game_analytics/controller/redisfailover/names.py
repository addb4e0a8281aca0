"""Names, ports and labels of a RedisFailover's children (``<name>`` is the RedisFailover's name).

Every Redis and Sentinel pod announces a stable DNS name (``<pod>.<headless>.<ns>.svc``) instead of its pod IP;
the helpers here build those names and turn them back into pod names.
"""

from __future__ import annotations

REDIS_PORT = 6379
SENTINEL_PORT = 26379
EXPORTER_PORT = 9121

#: Label the operator patches onto the current master pod; ``<name>-redis-master`` selects it.
LABEL_ROLE = "gameanalytics.io/redis-role"
ROLE_MASTER = "master"
ROLE_REPLICA = "replica"
#: Pod-template annotation holding a digest of the configuration the pod was rendered with.
ANNOTATION_CONFIG_HASH = "gameanalytics.io/config-hash"
#: Label telling the metrics Service apart from the other Services of the ``redis`` component.
LABEL_SERVICE_ROLE = "gameanalytics.io/service-role"


def redis_name(name: str) -> str:
    """Name of the Redis StatefulSet (and prefix of its pods ``<name>-redis-<ordinal>``)."""
    return f"{name}-redis"


def redis_headless_name(name: str) -> str:
    """The headless Service giving every Redis pod a stable DNS name."""
    return f"{name}-redis-headless"


def redis_master_service_name(name: str) -> str:
    """The Service selecting the pod labelled master."""
    return f"{name}-redis-master"


def sentinel_name(name: str) -> str:
    """Name of the Sentinel StatefulSet and of its client Service."""
    return f"{name}-sentinel"


def sentinel_headless_name(name: str) -> str:
    """The headless Service giving every Sentinel pod a stable DNS name."""
    return f"{name}-sentinel-headless"


def config_map_name(name: str) -> str:
    """The ConfigMap holding the config templates and the scripts."""
    return f"{name}-redis-config"


def redis_pod_host(name: str, namespace: str, ordinal: int) -> str:
    """Stable DNS name a Redis pod announces: ``<name>-redis-<i>.<name>-redis-headless.<ns>.svc``."""
    return f"{redis_name(name)}-{ordinal}.{redis_headless_name(name)}.{namespace}.svc"


def sentinel_pod_host(name: str, namespace: str, ordinal: int) -> str:
    """Stable DNS name a Sentinel pod announces."""
    return f"{sentinel_name(name)}-{ordinal}.{sentinel_headless_name(name)}.{namespace}.svc"


def sentinel_service_address(name: str, namespace: str) -> tuple[str, int]:
    """``(host, port)`` of the Sentinel client Service, as clients and the operator's probe use it."""
    return (f"{sentinel_name(name)}.{namespace}.svc", SENTINEL_PORT)


def sentinel_pod_addresses(name: str, namespace: str, replicas: int) -> list[tuple[str, int]]:
    """``(host, port)`` of every Sentinel pod; the operator probes each one to detect disagreement."""
    return [(sentinel_pod_host(name, namespace, i), SENTINEL_PORT) for i in range(replicas)]


def pod_name_from_host(host: str) -> str:
    """``r-redis-1.r-redis-headless.ns.svc`` -> ``r-redis-1`` (the first DNS label is the pod name)."""
    return host.split(".", 1)[0]
