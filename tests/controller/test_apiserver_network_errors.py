"""API server network failures through reconcile() and the Kopf handler, on real sockets (issue 15: "network errors
to the apiserver are neither classified nor counted").

Refused (a closed port), timed out (a listener that never answers) and unresolvable (``.invalid``) API servers
each count once in ``game_analytics_operator_reconcile_errors_total`` under their bounded reason, end in a
TransientError of 10 s that the handler hands to Kopf as a TemporaryError (a retry, not an exception escaping:
no crash loop), and the object becomes Ready on the first retry once the API server answers again.
(``test_k8s_client.py`` maps each transport error to its reason on a mock transport.)
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import kopf
import pytest
from lightkube import Client, KubeConfig

from game_analytics.api import KINDS_BY_NAME
from game_analytics.config import Images
from game_analytics.controller import handlers, metrics
from game_analytics.controller.common import conditions
from game_analytics.controller.k8s import NETWORK_REASONS, Cluster
from game_analytics.controller.reconcile import TransientError, reconcile

from .fake_cluster import FakeCluster
from .test_reconcile import body


def _config(server: str) -> KubeConfig:
    return KubeConfig.from_dict({
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}], "current-context": "c"})


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nobody listens once the block ends


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP listener that accepts connections and never answers (an API server that hangs)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def unreachable(kind_of_failure: str, silent: str) -> Cluster:
    import httpx2

    server = {"refused": f"http://127.0.0.1:{_closed_port()}", "timeout": silent,
              "dns": "http://apiserver.game-analytics.invalid:6443"}[kind_of_failure]
    return Cluster(Client(_config(server), timeout=httpx2.Timeout(0.5)))


def _count(kind: str, reason: str) -> float:
    return metrics.RECONCILE_ERRORS.labels(kind, reason)._value.get()


@pytest.mark.parametrize(("failure", "reason"), [("refused", "ConnectionRefused"), ("timeout", "Timeout"),
                                                 ("dns", "DNS")])
def test_an_unreachable_api_server_is_counted_under_a_bounded_reason_and_retried(failure, reason, silent_server):
    info = KINDS_BY_NAME["AlertRule"]
    before = {r: _count(info.kind, r) for r in NETWORK_REASONS}
    with pytest.raises(TransientError) as err:
        reconcile(info, body("alertrule-inflation.yaml"), unreachable(failure, silent_server), Images())
    assert err.value.delay == 10.0
    assert f"API server unreachable ({reason})" in str(err.value)
    after = {r: _count(info.kind, r) for r in NETWORK_REASONS}
    assert {r: after[r] - before[r] for r in NETWORK_REASONS if after[r] != before[r]} == {reason: 1.0}


def test_the_handler_retries_through_kopf_and_is_ready_once_the_api_server_answers(monkeypatch, silent_server):
    info = KINDS_BY_NAME["AlertRule"]
    handle = handlers._handler(info)
    obj = body("alertrule-inflation.yaml")
    monkeypatch.setitem(handlers._state, "images", Images())
    monkeypatch.setitem(handlers._state, "cluster", unreachable("refused", silent_server))
    for _ in range(3):  # every retry is a TemporaryError for Kopf to schedule, never an escaping exception
        patch: dict = {}
        with pytest.raises(kopf.TemporaryError) as err:
            handle(body=obj, patch=patch, logger=logging.getLogger("test"))
        assert err.value.delay == 10.0 and patch == {}
    monkeypatch.setitem(handlers._state, "cluster", FakeCluster())
    patch = {}
    handle(body=obj, patch=patch, logger=logging.getLogger("test"))
    ready = conditions.get(patch["status"]["conditions"], "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Reconciled")
