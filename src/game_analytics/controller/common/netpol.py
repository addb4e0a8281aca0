"""The NetworkPolicy of an object's pods, derived from the children it renders (issue 15; docs/hardening.md).

One policy per custom resource that makes pods (``<name>-<kind>``, e.g. ``leaderboards-redisfailover``), selecting
every pod it owns (the owner labels every pod template carries), ingress only:

- the pods' client ports (every container port not named ``metrics``: Redis 6379, Sentinel 26379, MongoDB 27017)
  from the product's pods in the namespace (``app.kubernetes.io/part-of: game-analytics``: the workers, ranking
  and bootstrap Jobs, the replicas and Sentinels themselves) and from the operator's namespace (Sentinel probes);
- the ``metrics`` ports from Prometheus's namespaces only;
- nothing else: pods without ports (report and ranking Jobs) get no ingress rule at all, a default deny.

Kubelet probes come from the node, which NetworkPolicies do not restrict. Egress is open, except for a
GameDataSource's pods (its workers, migrations and partition CronJob) with ``worker_egress`` set
(:func:`worker_egress`: DNS, Redis/Sentinel, PostgreSQL, Alertmanager, the API server; docs/hardening.md).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from ...config import NetworkPolicySettings
from .render import LABEL_OWNER_KIND, LABEL_OWNER_NAME, PART_OF, Manifest, Owner, manifest, metadata

NETWORK_POLICY = ("networking.k8s.io/v1", "NetworkPolicy")
#: the namespace label every namespace carries (Kubernetes >= 1.22)
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
#: kinds whose children make pods, and where their pod template is
_POD_KINDS = ("Deployment", "StatefulSet", "Job", "CronJob")


def pod_templates(children: list[Manifest]) -> list[dict[str, Any]]:
    """The pod templates (``{"metadata", "spec"}``) of the Deployments, StatefulSets, Jobs and CronJobs."""
    out = []
    for child in children:
        if child["kind"] in _POD_KINDS:
            spec = child["spec"]
            out.append(spec["jobTemplate"]["spec"]["template"] if child["kind"] == "CronJob" else spec["template"])
    return out


def policy_name(owner: Owner) -> str:
    """``<name>-<kind in lower case>``: one per object, never shared between kinds."""
    return f"{owner.name}-{owner.kind.lower()}"


def _ports(templates: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(client ports, metrics ports) of the templates' containers as NetworkPolicy ports, sorted, deduplicated."""
    client: dict[tuple[int, str], dict[str, Any]] = {}
    scraped: dict[tuple[int, str], dict[str, Any]] = {}
    for template in templates:
        for c in [*template["spec"].get("initContainers", []), *template["spec"]["containers"]]:
            for p in c.get("ports") or []:
                entry = {"port": p["containerPort"], "protocol": p.get("protocol", "TCP")}
                (scraped if p.get("name") == "metrics" else client)[(entry["port"], entry["protocol"])] = entry
    return [client[k] for k in sorted(client)], [scraped[k] for k in sorted(scraped)]


#: DNS to any address: the cluster DNS Service is translated to pods a policy cannot name portably
DNS_PORTS = ({"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"})
REDIS_PORT = 6379
#: the API server's ports: 443 (the ``kubernetes`` Service) and 6443 (the usual endpoint port it translates to)
API_SERVER_PORTS = (443, 6443)
#: the owner kind whose pods :func:`worker_egress` restricts
WORKER_KIND = "GameDataSource"


def _environment(children: list[Manifest], templates: list[dict[str, Any]]) -> dict[str, str]:
    """The literal environment of the templates' containers: ``env`` values and the ``envFrom`` ConfigMaps among
    ``children`` (a Secret's values are not known here)."""
    config_maps = {c["metadata"]["name"]: c.get("data") or {} for c in children if c["kind"] == "ConfigMap"}
    env: dict[str, str] = {}
    for template in templates:
        for c in [*template["spec"].get("initContainers", []), *template["spec"]["containers"]]:
            for source in c.get("envFrom") or []:
                env.update(config_maps.get((source.get("configMapRef") or {}).get("name"), {}))
            env.update({e["name"]: e["value"] for e in c.get("env") or [] if "value" in e})
            env.update({e["name"]: "" for e in c.get("env") or [] if "valueFrom" in e and e["name"] not in env})
    return env


def _tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"port": p, "protocol": "TCP"} for p in sorted(set(ports))]


def worker_egress(env: dict[str, str], settings: NetworkPolicySettings) -> list[dict[str, Any]]:
    """Egress rules of a GameDataSource's pods from their environment ``env`` (:func:`_environment`).

    - DNS (UDP and TCP 53) to any address;
    - Redis through Sentinels (``GAME_ANALYTICS_REDIS_SENTINELS``, a RedisFailover in the namespace): the Sentinel
      ports and Redis 6379 to the product's pods in the namespace only;
    - Redis by URL (``GAME_ANALYTICS_REDIS_URL``, from a Secret): 6379 to any address;
    - PostgreSQL (the DSN is in a Secret, its host often outside the cluster): ``settings.worker_postgres_ports``
      (default 5432) to any address;
    - Alertmanager (``GAME_ANALYTICS_ALERTMANAGER_URLS``): each URL's port (80/443 by scheme) to any address;
    - the API server (the detection worker lists its detector ConfigMaps): 443 and 6443 to
      ``settings.api_server_cidrs``, or to any address when none are set.

    A policy names no host, so "any address" is the narrowest rule for a host known only by name; NetworkPolicies
    add up, so a cluster admin can allow more (another PostgreSQL port) with a policy of their own.
    """
    rules: list[dict[str, Any]] = [{"ports": list(DNS_PORTS)}]
    sentinels = [a.rpartition(":")[2] for a in env.get("GAME_ANALYTICS_REDIS_SENTINELS", "").split(",") if a]
    if sentinels:
        rules.append({"to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": PART_OF}}}],
                      "ports": _tcp(REDIS_PORT, *(int(p) for p in sentinels if p.isdigit()))})
    any_ports = list(settings.worker_postgres_ports)
    if "GAME_ANALYTICS_REDIS_URL" in env:
        any_ports.append(REDIS_PORT)
    for url in env.get("GAME_ANALYTICS_ALERTMANAGER_URLS", "").split(","):
        if url:
            parts = urlsplit(url)
            any_ports.append(parts.port or (443 if parts.scheme == "https" else 80))
    rules.append({"ports": _tcp(*any_ports)})
    api = {"ports": _tcp(*API_SERVER_PORTS)}
    if settings.api_server_cidrs:
        api["to"] = [{"ipBlock": {"cidr": c}} for c in settings.api_server_cidrs]
    rules.append(api)
    return rules


def network_policies(owner: Owner, children: list[Manifest], settings: NetworkPolicySettings | None) -> list[Manifest]:
    """The NetworkPolicy of ``owner``'s pods (an empty list with ``settings`` None or when it makes no pods).

    Raises:
        ValueError: a pod template without the owner labels (a renderer bug: the policy would not select it).
    """
    templates = pod_templates(children)
    if settings is None or not templates:
        return []
    owner_labels = {LABEL_OWNER_KIND: owner.kind, LABEL_OWNER_NAME: owner.name}
    for template in templates:
        labels = template["metadata"].get("labels") or {}
        if any(labels.get(k) != v for k, v in owner_labels.items()):
            raise ValueError(f"{owner.kind}/{owner.name}: a pod template without the owner labels {owner_labels}")
    client, scraped = _ports(templates)
    ingress = []
    if client:
        sources: list[dict[str, Any]] = [{"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": PART_OF}}}]
        if settings.operator_namespace:
            sources.append({"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: settings.operator_namespace}}})
        ingress.append({"from": sources, "ports": client})
    if scraped:
        prometheus = [{"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: ns}}}
                      for ns in settings.prometheus_namespaces] or [{"namespaceSelector": {}}]
        ingress.append({"from": prometheus, "ports": scraped})
    spec: dict[str, Any] = {"podSelector": {"matchLabels": owner_labels}, "policyTypes": ["Ingress"]}
    if ingress:  # none: deny all. Not ``ingress: []``, which the API server drops (a drift on every resync)
        spec["ingress"] = ingress
    if settings.worker_egress and owner.kind == WORKER_KIND:
        spec["policyTypes"] = ["Ingress", "Egress"]
        spec["egress"] = worker_egress(_environment(children, templates), settings)
    return [manifest(*NETWORK_POLICY, metadata(owner, policy_name(owner), "network-policy"), spec=spec)]
