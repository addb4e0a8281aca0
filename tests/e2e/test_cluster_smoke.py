"""Smoke tests of the local control plane: each checks one real behaviour the operator relies on."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import pytest
from kubernetes import client

from devtools.cluster import ADMIN_USER, LocalControlPlane

pytestmark = pytest.mark.e2e

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], *, timeout: float = 60.0, interval: float = 0.25) -> T:
    """Call ``probe`` until it returns a truthy value (returned) or ``timeout`` seconds pass (AssertionError)."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


def wait_default_service_account(api_client: client.ApiClient, namespace: str) -> None:
    """Pods need the ``default`` ServiceAccount, which the serviceaccount controller creates."""
    core = client.CoreV1Api(api_client)
    eventually(
        lambda: any(
            sa.metadata.name == "default" for sa in core.list_namespaced_service_account(namespace).items
        )
    )


def test_readyz_ok(control_plane: LocalControlPlane) -> None:
    status, body = control_plane.get("/readyz?verbose")
    assert status == 200, body
    assert "[+]etcd ok" in body
    assert body.rstrip().endswith("readyz check passed")
    assert control_plane.readyz() == "ok"


CRD_GROUP = "smoke.gameanalytics.io"


def _scaler_crd() -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"scalers.{CRD_GROUP}"},
        "spec": {
            "group": CRD_GROUP,
            "scope": "Namespaced",
            "names": {"plural": "scalers", "singular": "scaler", "kind": "Scaler"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {
                                        "minReplicas": {"type": "integer", "minimum": 0},
                                        "maxReplicas": {"type": "integer", "minimum": 0},
                                    },
                                    "x-kubernetes-validations": [
                                        {
                                            "rule": "self.minReplicas <= self.maxReplicas",
                                            "message": "minReplicas must not exceed maxReplicas",
                                            "fieldPath": ".minReplicas",
                                        }
                                    ],
                                }
                            },
                        }
                    },
                }
            ],
        },
    }


def test_crd_cel_validation(api_client: client.ApiClient, namespace: str) -> None:
    ext = client.ApiextensionsV1Api(api_client)
    ext.create_custom_resource_definition(_scaler_crd())
    try:
        eventually(
            lambda: any(
                c.type == "Established" and c.status == "True"
                for c in (ext.read_custom_resource_definition(f"scalers.{CRD_GROUP}").status.conditions or [])
            )
        )
        custom = client.CustomObjectsApi(api_client)

        def create(name: str, lo: int, hi: int) -> dict:
            body = {
                "apiVersion": f"{CRD_GROUP}/v1",
                "kind": "Scaler",
                "metadata": {"name": name},
                "spec": {"minReplicas": lo, "maxReplicas": hi},
            }
            return custom.create_namespaced_custom_object(CRD_GROUP, "v1", namespace, "scalers", body)

        # Discovery of a just-established CRD can lag a moment: retry the valid create on 404.
        def create_valid() -> dict | None:
            try:
                return create("good", 1, 3)
            except client.ApiException as exc:
                if exc.status == 404:
                    return None
                raise

        assert eventually(create_valid)["spec"] == {"minReplicas": 1, "maxReplicas": 3}
        with pytest.raises(client.ApiException) as err:
            create("bad", 5, 2)
        assert err.value.status == 422
        assert "spec.minReplicas" in err.value.body
        assert "minReplicas must not exceed maxReplicas" in err.value.body
    finally:
        ext.delete_custom_resource_definition(f"scalers.{CRD_GROUP}")


def test_deployment_creates_replicaset(api_client: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(api_client)
    labels = {"app": "smoke"}
    deploy = apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "smoke"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "c", "image": "registry.invalid/none:1"}]},
                },
            },
        },
    )
    rs = eventually(lambda: apps.list_namespaced_replica_set(namespace).items)
    assert len(rs) == 1
    owner = rs[0].metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid) == ("Deployment", "smoke", deploy.metadata.uid)
    assert rs[0].spec.replicas == 2
    # The replicaset controller goes on to create the Pods (they stay Pending: there is no kubelet).
    core = client.CoreV1Api(api_client)

    def two_pods() -> list | None:
        items = core.list_namespaced_pod(namespace).items
        return items if len(items) == 2 else None

    pods = eventually(two_pods)
    assert all(p.metadata.owner_references[0].name == rs[0].metadata.name for p in pods)


def test_service_account_rbac(
    control_plane: LocalControlPlane, api_client: client.ApiClient, namespace: str
) -> None:
    kubeconfig = control_plane.service_account_kubeconfig(namespace, "reader")
    with control_plane.api_client(kubeconfig) as sa_api:
        sa_core = client.CoreV1Api(sa_api)
        with pytest.raises(client.ApiException) as err:
            sa_core.list_namespaced_pod(namespace)
        assert err.value.status == 403
        assert f"system:serviceaccount:{namespace}:reader" in err.value.body

        rbac = client.RbacAuthorizationV1Api(api_client)
        rbac.create_namespaced_role(
            namespace,
            {
                "metadata": {"name": "pod-reader"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
            },
        )
        rbac.create_namespaced_role_binding(
            namespace,
            {
                "metadata": {"name": "reader-pods"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
            },
        )

        def allowed() -> bool:
            try:
                sa_core.list_namespaced_pod(namespace)
                return True
            except client.ApiException as exc:
                if exc.status != 403:
                    raise
                return False

        eventually(allowed, timeout=30)
        # The grant is exactly the Role: other resources stay forbidden.
        with pytest.raises(client.ApiException) as err:
            sa_core.list_namespaced_secret(namespace)
        assert err.value.status == 403


def test_pod_security_restricted_rejects_privileged(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    ns = f"e2e-restricted-{uuid.uuid4().hex[:6]}"
    core.create_namespace(
        {"metadata": {"name": ns, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    try:
        wait_default_service_account(api_client, ns)
        pod = {
            "metadata": {"name": "privileged"},
            "spec": {
                "containers": [
                    {"name": "c", "image": "registry.invalid/none:1", "securityContext": {"privileged": True}}
                ]
            },
        }
        with pytest.raises(client.ApiException) as err:
            core.create_namespaced_pod(ns, pod)
        assert err.value.status == 403
        message = json.loads(err.value.body)["message"]
        assert 'violates PodSecurity "restricted:latest"' in message
        assert 'privileged (container "c" must not set securityContext.privileged=true)' in message
        # Same pod in an unlabelled namespace is admitted: the rejection is PodSecurity's doing.
        other = f"e2e-privileged-{uuid.uuid4().hex[:6]}"
        core.create_namespace({"metadata": {"name": other}})
        try:
            wait_default_service_account(api_client, other)
            assert core.create_namespaced_pod(other, pod).metadata.name == "privileged"
        finally:
            core.delete_namespace(other)
    finally:
        core.delete_namespace(ns)


def test_garbage_collector_deletes_owned(api_client: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api_client)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}, "data": {"k": "v"}})
    core.create_namespaced_config_map(
        namespace,
        {
            "metadata": {
                "name": "owned",
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
                ],
            }
        },
    )
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "bystander"}})
    core.delete_namespaced_config_map("owner", namespace, propagation_policy="Background")

    def names() -> set[str]:
        return {cm.metadata.name for cm in core.list_namespaced_config_map(namespace).items}

    eventually(lambda: "owned" not in names(), timeout=60)
    assert "bystander" in names()


def test_audit_log_records_writes(
    control_plane: LocalControlPlane, api_client: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api_client)
    before = len(control_plane.audit_events(user=ADMIN_USER))
    name = f"audited-{uuid.uuid4().hex[:6]}"
    core.create_namespaced_config_map(namespace, {"metadata": {"name": name}})
    core.patch_namespaced_config_map(name, namespace, {"data": {"a": "1"}})
    core.delete_namespaced_config_map(name, namespace)
    core.list_namespaced_config_map(namespace)  # a read: not audited by the policy

    mine = [
        e
        for e in control_plane.audit_events(user=ADMIN_USER)
        if e.get("objectRef", {}).get("name") == name and e["objectRef"].get("resource") == "configmaps"
    ]
    assert [e["verb"] for e in mine] == ["create", "patch", "delete"]
    assert all(e["objectRef"]["namespace"] == namespace for e in mine)
    assert [e["responseStatus"]["code"] for e in mine] == [201, 200, 200]
    assert len(control_plane.audit_events(user=ADMIN_USER)) >= before + 3
    assert not control_plane.audit_events(verbs={"list", "get", "watch"})
