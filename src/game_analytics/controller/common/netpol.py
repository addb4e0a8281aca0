"""The NetworkPolicy of an object's pods, derived from the children it renders (issue 15; docs/hardening.md).

One policy per custom resource that makes pods (``<name>-<kind>``, e.g. ``leaderboards-redisfailover``), selecting
every pod it owns (the owner labels every pod template carries), ingress only:

- the pods' client ports (every container port not named ``metrics``: Redis 6379, Sentinel 26379, MongoDB 27017)
  from the product's pods in the namespace (``app.kubernetes.io/part-of: game-analytics``: the workers, ranking
  and bootstrap Jobs, the replicas and Sentinels themselves) and from the operator's namespace (Sentinel probes);
- the ``metrics`` ports from Prometheus's namespaces only;
- nothing else: pods without ports (report and ranking Jobs) get no ingress rule at all, a default deny.

Kubelet probes come from the node, which NetworkPolicies do not restrict. Egress is left open: a worker's
PostgreSQL host is in a Secret's DSN, often outside the cluster (docs/hardening.md says why).
"""

from __future__ import annotations

from typing import Any

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
    return [manifest(*NETWORK_POLICY, metadata(owner, policy_name(owner), "network-policy"), spec=spec)]
