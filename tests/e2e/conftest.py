"""Fixtures for the e2e tier: one real control plane (etcd + kube-apiserver + kube-controller-manager) per session.

Binaries are located with :func:`devtools.cluster.find_binaries`.  When they are missing
the session fails with instructions, unless ``ENVTEST_AUTO_BUILD=1`` asks to run ``hack/envtest/build.sh``
first (a cold build takes 10-25 minutes on 2 cores, so ``make e2e`` builds before pytest starts).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client

from devtools.cluster import (
    BinariesNotFound,
    LocalControlPlane,
    build_binaries,
    find_binaries,
)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalControlPlane]:
    """A started :class:`LocalControlPlane`, shared by the whole session and stopped at its end."""
    try:
        binaries = find_binaries()
    except BinariesNotFound as exc:
        if os.environ.get("ENVTEST_AUTO_BUILD") != "1":
            pytest.fail(
                f"{exc}\n(or set ENVTEST_AUTO_BUILD=1 to build them from this fixture)", pytrace=False
            )
        binaries = build_binaries()
    cp = LocalControlPlane(tmp_path_factory.mktemp("control-plane"), binaries)
    cp.start()
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def api_client(control_plane: LocalControlPlane) -> Iterator[client.ApiClient]:
    """A ``kubernetes.client.ApiClient`` authenticated as cluster admin."""
    with control_plane.api_client() as api:
        yield api


@pytest.fixture
def namespace(api_client: client.ApiClient) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (deletion is not awaited)."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


# The installed chart and the running operator, shared by the operator tests (see support.py).
from .support import installed, kubectl, operator  # noqa: E402, F401
