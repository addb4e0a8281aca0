"""k8s.Cluster over lightkube on the wire (httpx2 mock transport, a closed port): what each API server answer or
connection failure becomes (error_reason, ApiUnavailable, Retry-After), and the requests it sends."""

from __future__ import annotations

import socket

import httpx2
import pytest
from lightkube import ApiError, Client, KubeConfig

from game_analytics.controller.k8s import ApiUnavailable, Cluster, error_reason, retry_after, status_code
from game_analytics.controller.reconcile import TransientError

from .fake_cluster import FakeCluster
from .test_reconcile import body, run


def config(server: str) -> KubeConfig:
    return KubeConfig.from_dict({
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}], "current-context": "c"})


def mocked(answer) -> tuple[Cluster, list[httpx2.Request]]:
    """A Cluster whose every request goes to ``answer(request) -> httpx2.Response`` (or raises)."""
    sent: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        return answer(request)

    return Cluster(Client(config("http://127.0.0.1:1"), transport=httpx2.MockTransport(handler))), sent


def status(code: int, reason: str, message: str = "m", headers: dict | None = None) -> httpx2.Response:
    return httpx2.Response(code, headers=headers, json={"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                                        "code": code, "reason": reason, "message": message})


@pytest.mark.parametrize("code,reason", [(429, "TooManyRequests"), (503, "ServerError"), (409, "Conflict"),
                                         (403, "Forbidden"), (422, "Rejected"), (418, "HTTPError")])
def test_http_errors_are_api_errors_with_a_bounded_reason(code, reason):
    cluster, _ = mocked(lambda r: status(code, "X", "refused"))
    with pytest.raises(ApiError) as err:
        cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "g"}})
    assert (status_code(err.value), error_reason(err.value), err.value.status.message) == (code, reason, "refused")


def test_get_of_a_missing_object_is_none_and_a_plain_text_404_probe_is_not_served():
    def answer(request):
        if "monitoring.coreos.com" in request.url.path:
            return httpx2.Response(404, text="404 page not found", headers={"Content-Type": "text/plain"})
        return status(404, "NotFound")

    cluster, sent = mocked(answer)
    assert cluster.get("apps/v1", "Deployment", "g", "d") is None
    assert cluster.serves("monitoring.coreos.com/v1", "g") is False
    assert cluster.serves("monitoring.coreos.com/v1", "g") is False  # cached: one probe
    assert [r.url.path for r in sent] == ["/apis/apps/v1/namespaces/g/deployments/d",
                                          "/apis/monitoring.coreos.com/v1/namespaces/g/prometheusrules"]
    assert sent[1].url.params["limit"] == "1"


def test_list_sends_the_label_selector_and_delete_propagates_in_the_background():
    def answer(request):
        if request.method == "DELETE":
            return status(404, "NotFound")  # already gone: no error
        return httpx2.Response(200, json={"kind": "JobList", "apiVersion": "batch/v1", "metadata": {},
                                          "items": [{"metadata": {"name": "j", "labels": {"a": "b"}}}]})

    cluster, sent = mocked(answer)
    assert [j["metadata"]["name"] for j in cluster.list("batch/v1", "Job", "g", "a=b,c=d")] == ["j"]
    cluster.delete("batch/v1", "Job", "g", "j")
    assert sent[0].url.params["labelSelector"] == "a=b,c=d"
    assert (sent[1].method, sent[1].url.params["propagationPolicy"]) == ("DELETE", "Background")


@pytest.mark.parametrize("error,reason", [
    (httpx2.ReadTimeout("timed out"), "Timeout"),
    (httpx2.RemoteProtocolError("Server disconnected without sending a response."), "ConnectionReset"),
    (httpx2.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"), "TLS"),
    (httpx2.ConnectError("[Errno -2] Name or service not known"), "DNS"),
])
def test_transport_failures_are_api_unavailable_with_their_reason(error, reason):
    def answer(request):
        raise error

    cluster, _ = mocked(answer)
    with pytest.raises(ApiUnavailable) as err:
        cluster.get("v1", "ConfigMap", "g", "c")
    assert (status_code(err.value), error_reason(err.value)) == (0, reason)


def test_a_closed_port_is_connection_refused_and_retried():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends
    cluster = Cluster(Client(config(f"http://127.0.0.1:{port}")))
    with pytest.raises(ApiUnavailable) as err:
        cluster.get("v1", "ConfigMap", "g", "c")
    assert error_reason(err.value) == "ConnectionRefused"


@pytest.mark.parametrize("header,delay", [({"Retry-After": "7"}, 7.0), ({}, 10.0), ({"Retry-After": "3600"}, 300.0)])
def test_throttling_is_retried_after_the_servers_retry_after(header, delay):
    cluster, _ = mocked(lambda r: status(429, "TooManyRequests", "slow down", header))
    with pytest.raises(ApiError) as err:
        cluster.get("v1", "ConfigMap", "g", "c")
    assert retry_after(err.value) == (float(header["Retry-After"]) if header else None)
    fake, rule = FakeCluster(), body("alertrule-inflation.yaml")
    fake.fail_next = err.value
    with pytest.raises(TransientError) as transient:
        run("AlertRule", rule, fake)
    assert transient.value.delay == delay
