"""Assertions shared by the render tests: PodSecurity ``restricted``, probes, resources, owner references."""

from __future__ import annotations

from typing import Any


def pod_specs(children: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """``(name, pod spec)`` of every workload's pod template."""
    out = []
    for c in children:
        if c["kind"] in ("StatefulSet", "Deployment", "Job", "DaemonSet"):
            out.append((c["metadata"]["name"], c["spec"]["template"]["spec"]))
    return out


def assert_restricted(name: str, pod: dict[str, Any]) -> None:
    """The PodSecurity ``restricted`` profile, plus resources and probes on every long-running container."""
    sc = pod["securityContext"]
    assert sc["runAsNonRoot"] is True, name
    assert sc["seccompProfile"]["type"] == "RuntimeDefault", name
    assert pod.get("hostNetwork") is not True and pod.get("hostPID") is not True, name
    for v in pod.get("volumes", []):
        assert "hostPath" not in v, (name, v)
    for c in [*pod.get("initContainers", []), *pod["containers"]]:
        csc = c["securityContext"]
        assert csc["allowPrivilegeEscalation"] is False, (name, c["name"])
        assert csc["capabilities"]["drop"] == ["ALL"], (name, c["name"])
        assert csc["runAsNonRoot"] is True and csc["seccompProfile"]["type"] == "RuntimeDefault", (name, c["name"])
        assert "add" not in csc["capabilities"], (name, c["name"])
        assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"], (name, c["name"])
        assert c["resources"]["limits"]["memory"], (name, c["name"])
        for port in c.get("ports", []):
            assert "hostPort" not in port, (name, c["name"])
    for c in pod["containers"]:
        assert c["livenessProbe"] and c["readinessProbe"], (name, c["name"])
    for c in pod.get("initContainers", []):
        assert "livenessProbe" not in c and "readinessProbe" not in c, "init containers may not have probes"


def assert_owned(children: list[dict[str, Any]], uid: str) -> None:
    for c in children:
        refs = c["metadata"]["ownerReferences"]
        assert len(refs) == 1 and refs[0]["uid"] == uid and refs[0]["controller"] is True, c["metadata"]["name"]
