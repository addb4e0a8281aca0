"""The operator's watch-fed read cache (controller/cache.py): the store's rules, and a cached Cluster over HTTP.

The store tests drive :class:`Store` with a scripted list and watch; the HTTP tests run a cached
:class:`~game_analytics.controller.k8s.Cluster` against the kmock emulator (which serves list + watch as the API
server does) and count the requests it sends.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import yaml
from lightkube import Client, KubeConfig

from devtools.waiting import wait_for
from game_analytics.controller.cache import SecretMemo, Store, matches, slim
from game_analytics.controller.common.render import LABEL_OWNER_KIND, LABEL_OWNER_NAME
from game_analytics.controller.k8s import FIELD_MANAGER, Cluster

from .kmock_support import EmulatorThread, kubeconfig

NAMESPACE = "games"
pytestmark = pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning")  # kmock 0.8 itself


def obj(name: str, rv: int, labels: dict | None = None, **extra) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": NAMESPACE, "resourceVersion": str(rv),
                         "labels": labels if labels is not None else {LABEL_OWNER_KIND: "AlertRule"}}, **extra}


class Script:
    """A list answer and a watch fed from a queue: ``None`` ends the watch as a silent connection does (the read
    timeout), an exception fails it as a lost connection or ``410 Gone`` does."""

    def __init__(self, listed: list[dict], version: str = "10"):
        self.listed, self.version, self.lists, self.watched_from = listed, version, 0, []
        self.events: queue.Queue = queue.Queue()

    def lister(self) -> tuple[list[dict], str]:
        self.lists += 1
        return list(self.listed), self.version

    def watcher(self, version: str | None) -> Iterator[tuple[str, dict]]:
        self.watched_from.append(version)
        while (event := self.events.get()) is not None:
            if isinstance(event, Exception):
                raise event
            yield event


def test_store_lists_then_follows_the_watch_from_the_list_version() -> None:
    script = Script([obj("a", 5), obj("b", 6)])
    store = Store("ConfigMap in games", script.lister, script.watcher, LABEL_OWNER_KIND)
    try:
        assert store.ready()
        assert [o["metadata"]["name"] for o in store.list(None)] == ["a", "b"]
        wait_for("watch started", lambda: script.watched_from == ["10"], timeout=5)
        script.events.put(("MODIFIED", obj("a", 11, data={"k": "v"})))
        script.events.put(("DELETED", obj("b", 12)))
        script.events.put(("ADDED", obj("c", 13)))
        wait_for("events applied", lambda: store.get("c") is not None, timeout=5)
        assert store.get("a")["data"] == {"k": "v"} and store.get("b") is None
    finally:
        store.stop()
        script.events.put(None)


def test_an_older_event_never_replaces_what_the_operator_wrote() -> None:
    script = Script([obj("a", 5)])
    store = Store("ConfigMap in games", script.lister, script.watcher, LABEL_OWNER_KIND)
    try:
        assert store.ready()
        store.put(obj("a", 20, data={"new": "1"}))  # the apply's answer
        script.events.put(("MODIFIED", obj("a", 15, data={"old": "1"})))  # a late event of an earlier write
        script.events.put(("ADDED", obj("z", 21)))
        wait_for("events applied", lambda: store.get("z") is not None, timeout=5)
        assert store.get("a")["data"] == {"new": "1"}
    finally:
        store.stop()
        script.events.put(None)


def test_a_lost_watch_lists_again_and_drops_what_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("game_analytics.controller.cache.RETRY_SECONDS", 0.05)
    script = Script([obj("a", 5), obj("b", 6)])
    store = Store("ConfigMap in games", script.lister, script.watcher, LABEL_OWNER_KIND)
    try:
        assert store.ready()
        script.listed = [obj("b", 30)]  # "a" was deleted while the watch was down
        script.events.put(ConnectionResetError("lost"))
        wait_for("listed again", lambda: script.lists == 2 and store.get("a") is None, timeout=5)
        assert store.get("b")["metadata"]["resourceVersion"] == "30"
    finally:
        store.stop()
        script.events.put(None)


def test_a_silent_watch_resumes_from_the_last_version_without_listing() -> None:
    script = Script([obj("a", 5)])
    store = Store("ConfigMap in games", script.lister, script.watcher, LABEL_OWNER_KIND)
    try:
        assert store.ready()
        script.events.put(("MODIFIED", obj("a", 17)))
        script.events.put(None)  # the read timeout
        wait_for("watch resumed", lambda: len(script.watched_from) == 2, timeout=5)
        assert script.watched_from == ["10", "17"] and script.lists == 1
    finally:
        store.stop()
        script.events.put(None)


def test_only_labelled_objects_are_held_and_a_list_without_the_label_is_not_answered() -> None:
    script = Script([])
    store = Store("ConfigMap in games", script.lister, script.watcher, LABEL_OWNER_KIND)
    try:
        assert store.ready()
        store.put(obj("foreign", 3, labels={"app": "x"}))
        assert store.get("foreign") is None
        assert store.covers({LABEL_OWNER_KIND: "AlertRule", LABEL_OWNER_NAME: "r"})
        assert not store.covers({"app": "x"}) and not store.covers(None)
    finally:
        store.stop()
        script.events.put(None)


def test_a_failed_list_leaves_the_reads_to_the_api_server() -> None:
    def lister() -> tuple[list[dict], str]:
        raise RuntimeError("403 Forbidden")

    store = Store("ConfigMap in games", lister, lambda v: iter(()), LABEL_OWNER_KIND)
    assert not store.ready()


def test_slim_drops_managed_fields_only_and_matches_selects_by_equality() -> None:
    full = obj("a", 1)
    full["metadata"]["managedFields"] = [{"manager": "x"}]
    assert "managedFields" not in slim(full)["metadata"] and "managedFields" in full["metadata"]
    assert slim(full)["metadata"]["labels"] == full["metadata"]["labels"]
    assert matches({"a": "1", "b": "2"}, {"a": "1"}) and not matches({"a": "1"}, {"a": "2"}) and matches(None, None)


def test_secret_memo_forgets_after_the_ttl_and_never_remembers_a_missing_secret(
        monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr("game_analytics.controller.cache.time.monotonic", lambda: now[0])
    memo = SecretMemo(ttl=10)
    memo.put("ns", "s", {"data": {}})
    assert memo.get("ns", "s") == {"data": {}}
    now[0] = 111.0
    assert memo.get("ns", "s") is None
    memo.put("ns", "s", None)
    assert memo.get("ns", "s") is None


# -- a cached Cluster over HTTP (kmock) ---------------------------------------------------------------------------


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[EmulatorThread, Path]]:
    # a closed client does not wake a thread blocked reading its watch: the read timeout ends it within 1 s
    monkeypatch.setattr("game_analytics.controller.cache.WATCH_READ_SECONDS", 1.0)
    with EmulatorThread() as emulator:
        path = tmp_path / "kubeconfig.yaml"
        path.write_text(yaml.safe_dump(kubeconfig(emulator.url, NAMESPACE)))
        yield emulator, path


def child(name: str, value: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": NAMESPACE,
                         "labels": {LABEL_OWNER_KIND: "AlertRule", LABEL_OWNER_NAME: "r"}},
            "data": {"k": value}}


class Counting(httpx2.HTTPTransport):
    """An HTTP transport that records the method and path of every request (watches included)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        self.sent.append(f"{request.method} {request.url.path}")
        return super().handle_request(request)


def test_a_second_ensure_of_unchanged_children_sends_nothing(api: tuple[EmulatorThread, Path]) -> None:
    _, path = api
    transport = Counting()
    cluster = Cluster(Client(KubeConfig.from_file(path), transport=transport, field_manager=FIELD_MANAGER),
                      cache=True)
    sent = transport.sent
    types = [("v1", "ConfigMap")]
    try:
        first = cluster.ensure("AlertRule", "r", NAMESPACE, [child("r-a", "1")], types)
        assert first.applied == ["ConfigMap/r-a"]
        del sent[:]
        again = cluster.ensure("AlertRule", "r", NAMESPACE, [child("r-a", "1")], types)
    finally:
        cluster.close()
    assert again.applied == [] and again.pruned == []
    assert sent == []  # the live child and the prune's list came from the store the first ensure filled


def test_a_child_changed_or_deleted_behind_the_operators_back_is_seen(api: tuple[EmulatorThread, Path]) -> None:
    emulator, path = api
    cluster = Cluster.from_kubeconfig(path, cache=True)
    types = [("v1", "ConfigMap")]
    try:
        drift_repaired(emulator, path, cluster, types)
    finally:
        cluster.close()


def drift_repaired(emulator: EmulatorThread, path: Path, cluster: Cluster, types: list) -> None:
    cluster.ensure("AlertRule", "r", NAMESPACE, [child("r-a", "1"), child("r-b", "1")], types)
    direct = Cluster.from_kubeconfig(path)  # someone else, not through the cache
    emulator.patch("v1/configmaps", NAMESPACE, "r-a", {"data": {"k": "edited"}})
    direct.delete("v1", "ConfigMap", NAMESPACE, "r-b")
    direct.close()
    store = cluster.store("v1", "ConfigMap", NAMESPACE)
    wait_for("the edit and the deletion reached the store",
             lambda: (store.get("r-a") or {}).get("data") == {"k": "edited"} and store.get("r-b") is None,
             timeout=10)
    repaired = cluster.ensure("AlertRule", "r", NAMESPACE, [child("r-a", "1"), child("r-b", "1")], types)
    assert sorted(repaired.applied) == ["ConfigMap/r-a", "ConfigMap/r-b"]
    assert emulator.get("v1/configmaps", NAMESPACE, "r-a")["data"] == {"k": "1"}
    assert emulator.get("v1/configmaps", NAMESPACE, "r-b") is not None


def test_a_watch_resumed_after_a_deletion_gets_the_deletion(api: tuple[EmulatorThread, Path]) -> None:
    """As the API server replays the events after a watch's resourceVersion, the emulator replays the deletions:
    a child deleted while the store was between two watches (CI: the deleted child of test_resync_skip was never
    re-created, the store held it for good) reaches the resumed watch as DELETED."""
    _, path = api
    cluster = Cluster.from_kubeconfig(path, cache=True)
    try:
        cluster.ensure("AlertRule", "r", NAMESPACE, [child("r-a", "1"), child("r-b", "1")], [("v1", "ConfigMap")])
        store = cluster.store("v1", "ConfigMap", NAMESPACE)
        seen = str(max(store.version("r-a"), store.version("r-b")))
        direct = Cluster.from_kubeconfig(path)
        direct.delete("v1", "ConfigMap", NAMESPACE, "r-b")
        direct.close()
        resumed = [(event, o["metadata"]["name"]) for event, o in store._watcher(seen)]  # ends after 1 s silent
    finally:
        cluster.close()
    assert ("DELETED", "r-b") in resumed and ("DELETED", "r-a") not in resumed


def test_a_refused_watch_empties_the_store_and_leaves_the_reads_to_the_api_server() -> None:
    from game_analytics.controller.cache import WatchForbidden

    def watcher(version: str | None) -> Iterator[tuple[str, dict]]:
        raise WatchForbidden("403 Forbidden: cannot watch configmaps")
        yield  # a generator, as the real watcher

    store = Store("ConfigMap in games", lambda: ([obj("a", 5)], "10"), watcher, LABEL_OWNER_KIND)
    assert store.ready()
    wait_for("gave up", lambda: store.get("a") is None, timeout=5)
    assert not store.ready()  # not before FORBIDDEN_RETRY_SECONDS
