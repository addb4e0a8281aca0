"""A checker for the PodSecurity ``restricted`` profile, for tests of rendered workloads.

It covers the rules of https://kubernetes.io/docs/concepts/security/pod-security-standards/ (restricted, v1.32)
that can be decided from a pod template alone. The real admission plugin is exercised by the e2e tier.
"""

from __future__ import annotations

from typing import Any

_ALLOWED_VOLUME_TYPES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                         "projected", "secret"}


def pod_template(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec inside a workload manifest (Deployment, StatefulSet, Job, CronJob, Pod), or None."""
    kind = manifest.get("kind")
    spec = manifest.get("spec", {})
    if kind == "Pod":
        return spec
    if kind == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        return spec["template"]["spec"]
    return None


def violations(pod: dict[str, Any]) -> list[str]:
    """Human-readable violations of the restricted profile (empty when compliant), plus missing resources/probes."""
    out = []
    psc = pod.get("securityContext", {})
    for vol in pod.get("volumes", []):
        types = set(vol) - {"name"}
        if not types <= _ALLOWED_VOLUME_TYPES:
            out.append(f"volume {vol['name']}: type {types} not allowed")
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            out.append(f"{field} must not be set")
    all_containers = [(c, False) for c in pod.get("containers", [])]
    all_containers += [(c, True) for c in pod.get("initContainers", [])]
    for c, is_init in all_containers:
        name = c["name"]
        sc = c.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{name}: allowPrivilegeEscalation must be false")
        if sc.get("privileged"):
            out.append(f"{name}: privileged")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            out.append(f"{name}: capabilities must drop ALL")
        added = set(sc.get("capabilities", {}).get("add", [])) - {"NET_BIND_SERVICE"}
        if added:
            out.append(f"{name}: capabilities added {sorted(added)}")
        if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            out.append(f"{name}: runAsNonRoot must be true")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            out.append(f"{name}: runAsUser 0")
        seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost")
        for port in c.get("ports", []):
            if port.get("hostPort"):
                out.append(f"{name}: hostPort")
        res = c.get("resources", {})
        if not res.get("requests") or not res.get("limits", {}).get("memory"):
            out.append(f"{name}: resources.requests and limits.memory must be set")
        if not is_init and "livenessProbe" not in c:
            out.append(f"{name}: no livenessProbe")
    return out
