"""Issue 15: emoji, right-to-left scripts and combining marks in EVERY free-text field reach the API server as
UTF-8 (an emoji once failed every apply: ``invalid Unicode character escape code``).

"Every free-text field" is found, not listed: each string of each example is set in turn to :data:`UNICODE`; the
ones the CRD admits (offline admission with the checked-in CRDs) are reconciled, and every child that then holds
the text is sent through the operator's own :meth:`Cluster.apply <game_analytics.controller.k8s.Cluster.apply>`
on a recording transport. The e2e tier (``tests/e2e/test_hostile_input.py``) applies such text on kube-apiserver.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from lightkube import Client, KubeConfig

from game_analytics.api import KINDS_BY_NAME
from game_analytics.config import Images
from game_analytics.controller.k8s import Cluster
from game_analytics.controller.reconcile import reconcile

from . import crd_fuzz
from .fake_cluster import FakeCluster
from .test_fuzz_crs import no_sentinel_network  # noqa: F401 - a fixture
from .test_reconcile import EXAMPLES, body

#: emoji (astral plane: a surrogate pair once escaped), Hebrew and Arabic (right to left), combining marks
UNICODE = "🎮🏆 לוח המובילים ليدربورد e\u0301 n\u0303 Z\u0335\u0321a"
#: the examples whose free text must reach a child (the kinds that carry user text into what they render)
CARRIERS = {"AlertRule", "GameDataSource", "RankingJob", "ScheduledReport"}
#: optional free-text maps the examples leave out and the CRD has no default for (the defaults are searched too)
SUPPLEMENTS = {"AlertRule": {"labels": {"squad": "economy"}, "annotations": {"summary": "s", "description": "d"}}}


def string_paths(value: Any, path: tuple = ()) -> Iterator[tuple]:
    """The path of every string in ``value`` (dict keys and list indexes)."""
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from string_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from string_paths(item, (*path, index))


def holds(child: dict) -> bool:
    """Whether a string of ``child`` holds :data:`UNICODE`, as it is or in a JSON document (``report.json``)."""
    for path in string_paths(child):
        text = child
        for part in path:
            text = text[part]
        if UNICODE in text:
            return True
        try:
            if UNICODE in json.dumps(json.loads(text), ensure_ascii=False):
                return True
        except ValueError:
            pass
    return False


def with_text(obj: dict, path: tuple, text: str) -> dict:
    """A copy of ``obj`` with the string at ``path`` replaced by ``text``."""
    obj = json.loads(json.dumps(obj))
    target = obj
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = text
    return obj


def sent_bodies(manifests: list[dict]) -> list[bytes]:
    """The request bodies :meth:`Cluster.apply` sends for ``manifests`` (each answered with itself)."""
    sent: list[httpx2.Request] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        return httpx2.Response(200, json=json.loads(request.content))

    config = KubeConfig.from_dict({
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}], "current-context": "c"})
    cluster = Cluster(Client(config, transport=httpx2.MockTransport(answer)))
    for manifest in manifests:
        assert cluster.apply(manifest)["metadata"]["name"] == manifest["metadata"]["name"]
    assert all(r.headers["Content-Type"] == "application/apply-patch+yaml" for r in sent)
    return [r.content for r in sent]


def _fields_reaching_children(example: str) -> tuple[dict[str, list[dict]], list[str]]:
    """``({field: children holding the text}, fields the CRD refuses the text in)`` for ``example``."""
    base = body(example)
    kind = base["kind"]
    base["spec"].update(SUPPLEMENTS.get(kind, {}))
    base, refusals = crd_fuzz.admit(base)  # with the CRD's defaults: their strings are fields too
    assert base is not None, refusals
    reached, refused = {}, []
    for path in string_paths(base["spec"], ("spec",)):
        obj = with_text(base, path, UNICODE)
        field = ".".join(map(str, path))
        admitted, _ = crd_fuzz.admit(obj)
        if admitted is None:
            refused.append(field)
            continue
        cluster = FakeCluster()
        cluster.add(body("redisfailover.yaml"))
        cluster.preexisting = set(cluster.objects)
        reconcile(KINDS_BY_NAME[kind], admitted, cluster, Images())  # never raises (the fuzzer's property)
        holding = [c for c in cluster.created().values() if holds(c)]
        if holding:
            reached[field] = holding
    return reached, refused


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_unicode_in_every_free_text_field_is_applied_as_utf8(example, no_sentinel_network):  # noqa: F811
    reached, refused = _fields_reaching_children(example)
    kind = body(example)["kind"]
    if kind in CARRIERS:
        assert reached, f"no field of {example} carried the text into a child (refused: {refused})"
    for field, children in reached.items():
        for content, child in zip(sent_bodies(children), children, strict=True):
            if UNICODE in json.dumps(child, ensure_ascii=False):
                assert UNICODE.encode() in content, (field, child["kind"])  # UTF-8, not \\uXXXX escapes
            assert json.loads(content.decode("utf-8")) == json.loads(json.dumps(child)), (field, child["kind"])


def test_the_fields_found_include_the_issues_free_text(no_sentinel_network):  # noqa: F811
    """The search finds what the issue names (game names, annotations, labels) and more than the e2e test applies
    (stream names, Slack channels, SMTP settings, the ranking source)."""
    found = {f for example in ("gamedatasource.yaml", "alertrule-wealth-jump.yaml", "scheduledreport.yaml",
                               "rankingjob.yaml") for f in _fields_reaching_children(example)[0]}
    assert {"spec.games.0", "spec.stream.name", "spec.annotations.summary", "spec.labels.squad",
            "spec.channels.1.slack.channel", "spec.filters.games.0", "spec.delivery.email.smtp.host",
            "spec.source.game", "spec.source.eventType"} <= found, sorted(found)
