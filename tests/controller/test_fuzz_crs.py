"""Fuzzing the reconcile core with custom resources drawn from each CRD's own schema (issue 15).

Each example is one object of the kind: a name and a spec from the CRD's openAPIV3Schema (hypothesis-jsonschema),
admitted as the API server would admit it (defaults, then the CEL rules: :mod:`.crd_fuzz`); objects admission
refuses are discarded, so every counted case is one the API server admits. With or without the Secrets,
GameDataSource and RedisFailover it references (:data:`REFERENCE_MODES`: mostly with usable ones, so that most
cases render their children; else Secret values drawn from right and wrong shapes), it is reconciled on the
in-memory cluster. Required of every admitted object:

- no exception escapes :func:`~game_analytics.controller.reconcile.reconcile`;
- every child it applied is one the API server would accept (:func:`.crd_fuzz.child_problems`; the e2e test
  ``tests/e2e/test_fuzz_dry_run.py`` sends a sample to a real API server's server-side dry-run);
- it is Ready=True, or Ready=False waiting for its servers (a MongoShardedCluster before bootstrap), or
  Ready=False with a message naming a field of the object (``spec.…`` or ``metadata.name``).

``pytest`` (``make test``) runs :data:`QUICK_COUNT` admitted objects per kind (about 30 s for the six kinds);
``make fuzz`` (``--hypothesis-profile=long``) runs 2,000 per kind. Both print, per kind, the objects drawn, those
admission refused (CEL rules on a schema-valid draw), the outcomes of those admitted and, for InvalidSpec, the
field the operator refused (docs/hardening.md has the long run's figures). Every failing example found is kept in ``test_fuzz_regressions.py``.
"""

from __future__ import annotations

import copy
import re
import time
from collections import Counter
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from game_analytics.api import KINDS, KINDS_BY_NAME
from game_analytics.api.alertrule import DETECTOR_CATEGORIES, Category
from game_analytics.api.rankingjob import ALGORITHMS
from game_analytics.config import Images
from game_analytics.controller.common import conditions
from game_analytics.controller.reconcile import reconcile
from game_analytics.controller.redisfailover import sentinel

from . import crd_fuzz
from .fake_cluster import EXAMPLES, NAMESPACE, FakeCluster, secret

#: admitted objects per kind in the default run (``make test``): bounded for CI time
QUICK_COUNT = 20
#: admitted objects per kind: :data:`QUICK_COUNT`, or the profile's count when it asks for more than hypothesis's
#: default of 100 (2,000 under ``--hypothesis-profile=long``)
EXAMPLE_COUNT = settings.default.max_examples if settings.default.max_examples > 100 else QUICK_COUNT
#: per kind, drawn objects that admission refused (counted by :func:`cases`, reported by the test)
REFUSED: Counter = Counter()
#: Ready=False reasons meaning "children applied, waiting for a live server" (nothing for the user to fix)
WAITING = {"Bootstrapping"}
#: a message names a field of the object
NAMES_A_FIELD = re.compile(r"\b(spec|metadata)\.[A-Za-z]")
#: the field a Ready=False message starts with, up to a map key or list index (``spec.channels``, ``spec.schedule``)
FIELD = re.compile(r"(spec|metadata)(\.[A-Za-z][A-Za-z0-9]*)*")
#: values a referenced Secret key may hold: right and wrong shapes for every use
SECRET_VALUES = ("https://hooks.example.com/services/x", "postgresql+psycopg://u:p@db:5432/analytics",
                 "redis://:pw@redis:6379/0", "s3cret", "a" * 64, "not a url", "")
IMAGES = Images()


def references(value: Any, key: str = "") -> list[tuple[str, str, str | None, str]]:
    """``(kind, name, secret key or None, field)`` of every reference in a spec: ``*SecretRef`` / ``secretRef``
    (Secrets), ``dataSourceRef`` (GameDataSources), ``redisFailoverRef`` (RedisFailovers); ``field`` is the key
    holding the reference (``urlSecretRef``)."""
    out = []
    if isinstance(value, dict):
        if key.lower().endswith("secretref") and isinstance(value.get("name"), str):
            out.append(("Secret", value["name"], value.get("key"), key))
        elif key in ("dataSourceRef", "redisFailoverRef") and isinstance(value.get("name"), str):
            out.append(("GameDataSource" if key == "dataSourceRef" else "RedisFailover", value["name"], None, key))
        for k, v in value.items():
            out += references(v, k)
    elif isinstance(value, list):
        for v in value:
            out += references(v, key)
    return out


def usable_value(field: str) -> str:
    """A Secret value of the shape the field referencing it needs: an https URL for webhook URLs
    (``urlSecretRef``, ``apiURLSecretRef``), a PostgreSQL DSN for ``dsnSecretRef``s, a keyfile-sized token else."""
    if "url" in field.lower():
        return SECRET_VALUES[0]
    return SECRET_VALUES[1] if "dsn" in field.lower() else "a" * 64


def _example(file: str, name: str) -> dict:
    doc = yaml.safe_load((EXAMPLES / file).read_text())
    doc["metadata"].update(name=name, namespace=NAMESPACE, uid=f"uid-dep-{name}")
    if doc["kind"] == "RedisFailover":  # as its operator leaves it: Ready, the master known
        doc["status"] = {"conditions": [{"type": "Ready", "status": "True", "reason": "Reconciled", "message": ""}]}
    return doc


#: how a case's references are met: not at all (only the examples' Secrets and GameDataSource ``default``), or
#: they exist (with what a referenced GameDataSource references) holding Secret values drawn from right and wrong
#: shapes, or usable ones (:func:`usable_value`); usable comes first (hypothesis favours the first of a
#: sampled_from) and twice, so that most cases get past their references and render their children
REFERENCE_MODES = ("usable", "usable", "drawn", "none")


def build_references(spec: dict, cluster: FakeCluster, mode: str, draw: st.DrawFn) -> None:
    """Add to ``cluster`` what ``spec`` references, as :data:`REFERENCE_MODES` ``mode`` says."""
    if mode == "none":
        return
    secrets: dict[str, dict[str, str]] = {}
    for ref_kind, name, key, field in references(spec):
        if ref_kind == "Secret" and key is not None and crd_fuzz.CONFIG_KEY.fullmatch(key):  # a Secret can hold it
            value = usable_value(field) if mode == "usable" else draw(st.sampled_from(SECRET_VALUES))
            secrets.setdefault(name, {})[key] = value
        elif ref_kind == "GameDataSource":
            cluster.add(_example("gamedatasource.yaml", name))
        elif ref_kind == "RedisFailover":
            cluster.add(_example("redisfailover.yaml", name))
    # the examples' GameDataSource (``default`` and every referenced one) names RedisFailover leaderboards
    cluster.add(_example("redisfailover.yaml", "leaderboards"))
    for name, values in secrets.items():
        cluster.add(secret(name, values))


def steer(kind: str, spec: dict, draw: st.DrawFn) -> dict:
    """``spec`` with the field that a cross-field CEL rule ties to another set to agree with it, so that fewer
    drawn objects are refused (the rules are still evaluated): an AlertRule's category to one its detector
    belongs to; a RankingJob's algorithm to the one whose parameters are set."""
    spec = dict(spec)
    if kind == "AlertRule" and isinstance(spec.get("detector"), dict) and len(spec["detector"]) == 1:
        category = DETECTOR_CATEGORIES.get(next(iter(spec["detector"])))
        spec["category"] = category.value if category else draw(st.sampled_from([c.value for c in Category]))
    if kind == "RankingJob":
        params = [a.value for a in ALGORITHMS if a.value in spec]
        if len(params) == 1:
            spec["algorithm"] = params[0]
    return spec


@st.composite
def cases(draw: st.DrawFn, kind: str) -> tuple[dict, FakeCluster]:
    """One admitted ``kind`` object (with uid, generation and empty status) and the cluster it meets."""
    spec = steer(kind, draw(crd_fuzz.spec_strategy(kind)), draw)
    obj = crd_fuzz.custom_resource(kind, draw(crd_fuzz.name_strategy(kind)), spec)
    admitted, _ = crd_fuzz.admit(obj)
    if admitted is None:
        REFUSED[kind] += 1
    assume(admitted is not None)
    admitted["metadata"].update(uid="uid-fuzz", generation=1)
    admitted["status"] = {}
    cluster = FakeCluster()
    build_references(admitted["spec"], cluster, draw(st.sampled_from(REFERENCE_MODES)), draw)
    cluster.preexisting = set(cluster.objects)  # what it references is not its child
    return admitted, cluster


def check_case(kind: str, obj: dict, cluster: FakeCluster, stats: Counter | None = None) -> None:
    """The property of the module docstring for one admitted object; counts the outcome in ``stats``."""
    before = copy.deepcopy(obj)
    outcome = reconcile(KINDS_BY_NAME[kind], obj, cluster, IMAGES)  # any exception fails the case
    assert obj == before, "reconcile must not change the body it is given"
    problems = [p for child in cluster.created().values() for p in crd_fuzz.child_problems(child)]
    assert not problems, "children the API server would refuse:\n" + "\n".join(problems)
    ready = conditions.get(outcome.status["conditions"], "Ready")
    if ready["status"] == "False" and ready["reason"] not in WAITING:
        assert NAMES_A_FIELD.search(ready["message"]), f"{ready['reason']}: {ready['message']!r} names no field"
    if stats is not None:
        stats["admitted"] += 1
        stats[f"Ready={ready['status']} {ready['reason']}"] += 1
        if ready["reason"] == "InvalidSpec":  # which field the operator refused (candidates for CEL in the CRD)
            field = FIELD.match(ready["message"])
            stats[f"InvalidSpec at {field.group(0) if field else ready['message'][:40]}"] += 1


@pytest.fixture
def no_sentinel_network(monkeypatch):
    """RedisFailover probes answer at once, as Sentinels that are not reachable (no network in the fast tier)."""
    monkeypatch.setattr(sentinel, "probe", lambda addrs, master_name, password=None, timeout=2.0:
                        sentinel.SentinelView(master_name, tuple(sentinel.SentinelReport(
                            sentinel.format_address(*a), error="unreachable (fuzz)") for a in addrs)))


@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
def test_admitted_custom_resources_reconcile_to_valid_children_or_a_named_field(kind, no_sentinel_network, capsys):
    stats: Counter = Counter()
    REFUSED[kind] = 0
    started = time.monotonic()

    # the quick run (CI's) draws the same cases every time, so a red CI is reproducible; `make fuzz` explores
    # afresh each run (its finds are kept in test_fuzz_regressions.py)
    @settings(max_examples=EXAMPLE_COUNT, deadline=None, database=None, derandomize=EXAMPLE_COUNT == QUICK_COUNT,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
    @given(case=cases(kind))
    def run(case: tuple[dict, FakeCluster]) -> None:
        check_case(kind, *case, stats)

    run()
    with capsys.disabled():
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(stats.items()) if k.startswith("Ready="))
        fields = ", ".join(f"{k[len('InvalidSpec at '):]} {v}" for k, v in stats.most_common()
                           if k.startswith("InvalidSpec at "))
        print(f"\nfuzz {kind}: {stats['admitted'] + REFUSED[kind]} drawn, {REFUSED[kind]} refused by admission, "
              f"{stats['admitted']} admitted and reconciled, 0 exceptions in {time.monotonic() - started:.0f} s "
              f"({outcomes}){f'; InvalidSpec by field: {fields}' if fields else ''}")
    assert stats["admitted"] >= EXAMPLE_COUNT
