"""Issue 15 leftovers: checks the operator made alone that are now CEL rules in the CRDs too (docs/hardening.md).

Each rule is evaluated by the offline admission (:func:`crd_fuzz.admit`: the checked-in CRD's schema and CEL, with
the Kubernetes ``find`` function); the operator keeps its check for objects stored under an older CRD, so every
refused case is also shown refused by the operator's own check:

- GameDataSource ``spec.retention``: more than 0 and at most 1000y (:func:`~game_analytics.api.common.parse_duration`,
  which the workers' settings run; the operator reports ``spec.retention``);
- MongoShardedCluster zones: every ``shards`` index below ``shards.count``, every ``min``/``max`` key a field of
  the collection's shard key (:func:`~game_analytics.controller.mongoshardedcluster.sharding.desired_collections`);
- and two older rules that had only e2e or indirect tests: a critical AlertRule needs a channel; a RankingJob without
  ``leagues`` is admitted with the default leagues.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from game_analytics.api import KINDS_BY_NAME
from game_analytics.api.common import DURATION_PATTERN, parse_duration
from game_analytics.controller.mongoshardedcluster.sharding import desired_collections

from . import crd_fuzz
from .test_reconcile import body


def _data_source(retention: str) -> dict:
    obj = body("gamedatasource.yaml")
    obj["spec"]["retention"] = retention
    return obj


def _operator_accepts(retention: str) -> bool:
    try:
        parse_duration(retention)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(("retention", "message"), [
    ("0", "must be positive"), ("0s", "must be positive"), ("0y0d0ms", "must be positive"),
    ("000000000000000000000000000000ms", "must be positive"),
    ("1000y1ms", "at most 1000y"), ("365001d", "at most 1000y"), ("52143w", "at most 1000y"),
    ("52142w6d1ms", "at most 1000y"), ("999y52w1d1ms", "at most 1000y"), ("8760000h1s", "at most 1000y"), ("525600001m", "at most 1000y"),
    ("31536000001s", "at most 1000y"), ("31536000000001ms", "at most 1000y"), ("10000y", "at most 1000y"),
    ("99999999999999999999999999999y", "at most 1000y"), ("1y99999999999999999999999999ms", "at most 1000y"),
])
def test_a_retention_the_operator_refuses_is_refused_at_apply_naming_it(retention, message):
    admitted, refusals = crd_fuzz.admit(_data_source(retention))
    assert admitted is None
    assert [r for r in refusals if r.startswith(".spec.retention: ") and message in r], refusals
    assert not _operator_accepts(retention)  # the operator's check stays (objects stored under an older CRD)


@pytest.mark.parametrize("retention", ["90d", "1ms", "1000y", "365000d", "52142w6d", "8760000h", "525600000m",
                                       "31536000000s", "31536000000000ms", "0000000000000000000000001000y",
                                       "999y51w6d23h59m59s999ms", "999y52w1d", "0y1d", "5m", "5ms", "1h30m"])
def test_a_retention_the_operator_takes_is_admitted(retention):
    admitted, refusals = crd_fuzz.admit(_data_source(retention))
    assert admitted is not None, refusals
    assert _operator_accepts(retention)


@settings(max_examples=400, deadline=None, database=None)
@given(st.from_regex(DURATION_PATTERN, fullmatch=True).filter(lambda d: len(d) <= 32))
@example("999y52w1d")  # exactly 1000y (admitted), and 1ms more (refused): each unit alone is within its
@example("999y52w1d1ms")  # digit bound, only the sum decides
def test_the_retention_rules_and_the_operator_agree_on_every_duration(retention):
    admitted, refusals = crd_fuzz.admit(_data_source(retention))
    assert not [r for r in refusals if "error" in r], refusals  # no input makes a rule fail to evaluate
    assert (admitted is not None) == _operator_accepts(retention), refusals


def _cluster(edit) -> dict:
    obj = body("mongoshardedcluster.yaml")
    edit(obj["spec"])
    return obj


def _zones(spec: dict) -> list[dict]:
    return next(c for c in spec["collections"] if c.get("zones"))["zones"]


def _operator_refusal(obj: dict) -> str | None:
    spec = KINDS_BY_NAME["MongoShardedCluster"].spec.model_validate(obj["spec"])
    try:
        desired_collections(spec.collections, [f"shard{i}" for i in range(spec.shards.count)])
    except ValueError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize(("edit", "operator_says"), [
    (lambda s: _zones(s)[1].update(shards=[2]), "zones[1].shards: no shard 2"),
    (lambda s: _zones(s)[0].update(shards=[0, 1, 63]), "zones[0].shards: no shard 63"),
    (lambda s: (s.update(shards={"count": 4}), _zones(s)[0].update(shards=[4])), "zones[0].shards: no shard 4"),
    (lambda s: (s.pop("shards"), _zones(s)[1].update(shards=[2])), "zones[1].shards: no shard 2"),  # default 2
])
def test_a_zone_shard_beyond_shards_count_is_refused_at_apply(edit, operator_says):
    obj = _cluster(edit)
    admitted, refusals = crd_fuzz.admit(obj)
    assert admitted is None
    assert [r for r in refusals if r.startswith(".spec.collections: zone shards must be below shards.count")], \
        refusals
    assert operator_says in (_operator_refusal(obj) or "")


@pytest.mark.parametrize(("edit", "operator_says"), [
    (lambda s: _zones(s)[1]["min"].update(country="us"), "zones[1].min: 'country' is not a shard key field"),
    (lambda s: _zones(s)[0].update(max={"Region": "eu"}), "zones[0].max: 'Region' is not a shard key field"),
    (lambda s: _zones(s)[0].update(max={"region": "eu", "player_id.x": "1"}), "zones[0].max: 'player_id.x'"),
])
def test_a_zone_bound_on_a_field_outside_the_shard_key_is_refused_at_apply(edit, operator_says):
    obj = _cluster(edit)
    admitted, refusals = crd_fuzz.admit(obj)
    assert admitted is None
    assert [r for r in refusals if r.startswith(".spec.collections[1].zones: zone min and max keys must be fields "
                                                "of the shard key")], refusals
    assert operator_says in (_operator_refusal(obj) or "")


@pytest.mark.parametrize("edit", [
    lambda s: None,  # the example: zones on shards 0 and 1 of 2, bounds on region
    lambda s: _zones(s)[0].update(shards=[0, 1], min={}, max={"region": "eu", "player_id": "$maxKey"}),
    lambda s: (s.update(shards={"count": 64}), _zones(s)[1].update(shards=list(range(64)))),
    lambda s: s.update(collections=[]),
])
def test_zones_within_the_shards_and_the_shard_key_are_admitted(edit):
    obj = _cluster(edit)
    admitted, refusals = crd_fuzz.admit(obj)
    assert admitted is not None, refusals
    assert _operator_refusal(admitted) is None


def test_a_zone_bound_has_at_most_as_many_keys_as_a_shard_key_has_fields():
    """The key count and length bounds keep the rule's CEL cost within the API server's budget."""
    obj = _cluster(lambda s: _zones(s)[0].update(min={f"f{i}": "x" for i in range(9)}))
    admitted, refusals = crd_fuzz.admit(obj)
    assert admitted is None and any(r.startswith(".spec.collections[1].zones[0].min") for r in refusals), refusals


def _critical_rule(channels: list | None) -> dict:
    obj = body("alertrule-wealth-jump.yaml")
    assert obj["spec"]["severity"] == "critical"
    if channels is None:
        del obj["spec"]["channels"]
    else:
        obj["spec"]["channels"] = channels
    return obj


@pytest.mark.parametrize("channels", [[], None])
def test_a_critical_alert_rule_without_channels_is_refused_at_apply(channels):
    admitted, refusals = crd_fuzz.admit(_critical_rule(channels))
    assert admitted is None
    assert ".spec.channels: a critical rule pages on-call: it needs at least one channel" in " ".join(refusals), \
        refusals


def test_a_critical_alert_rule_with_a_channel_and_a_warning_without_are_admitted():
    critical = _critical_rule(None)
    critical["spec"]["channels"] = body("alertrule-wealth-jump.yaml")["spec"]["channels"][:1]
    warning = _critical_rule([])
    warning["spec"]["severity"] = "warning"
    for obj in (critical, warning):
        admitted, refusals = crd_fuzz.admit(obj)
        assert admitted is not None, refusals


def test_a_ranking_job_without_leagues_is_admitted_with_the_default_leagues():
    """Issue 15: a RankingJob without ``leagues`` was refused (its CEL rules read the absent field)."""
    obj = body("rankingjob.yaml")
    obj["spec"].pop("leagues", None)
    admitted, refusals = crd_fuzz.admit(obj)
    assert admitted is not None, refusals
    model_default = KINDS_BY_NAME["RankingJob"].spec.model_fields["leagues"].default_factory()
    assert admitted["spec"]["leagues"] == [league.to_api() for league in model_default]
