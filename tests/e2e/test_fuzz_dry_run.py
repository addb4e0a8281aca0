"""CR fuzzing against the real API server (issue 15): what the fast tier checks offline, checked by kube-apiserver.

:mod:`controller.test_fuzz_crs` draws objects from each CRD's schema, admits them as the API server would
(:func:`controller.crd_fuzz.admit`: defaults and CEL evaluated offline) and reconciles them on the in-memory
cluster. Here a sample of those cases goes to the real API server with the real CRDs (the chart's, and
prometheus-operator's) as a server-side dry-run with ``--validate=strict``:

- every object the API server admits has children it accepts as they are (names, labels, ports, unknown fields: a field the
  API server would drop counts as a failure, since the operator would then see a drift on every resync).

The ownerReferences are left out (the owners are not created: dry-run), and objects go to a fresh namespace.
Objects the offline admission lets through but the API server refuses are counted, not failed: the schema patterns
are drawn with Python's regular expressions, where ``\\s`` also matches Unicode spaces such as U+0085, which the
API server's RE2 patterns refuse (a clear error at apply, naming the field: nothing reaches the operator).
"""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings

from controller.test_fuzz_crs import cases, check_case, no_sentinel_network  # noqa: F401 - tests/ on sys.path
from game_analytics.api import KINDS

pytestmark = pytest.mark.e2e

#: cases per kind (one or two kubectl calls each), drawn the same way every run; the fast tier and `make fuzz` draw
#: the many, at random
PER_KIND = 12


def _as_sent(doc: dict, namespace: str) -> dict:
    """``doc`` as a client would send it to ``namespace``: no server-set metadata, no status, no owner."""
    meta = {k: v for k, v in doc["metadata"].items()
            if k not in ("uid", "generation", "resourceVersion", "creationTimestamp", "ownerReferences")}
    meta["namespace"] = namespace
    return {**{k: v for k, v in doc.items() if k != "status"}, "metadata": meta}


@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
def test_fuzzed_objects_and_their_children_pass_a_server_side_dry_run(kind, installed, kubectl, namespace,
                                                                      no_sentinel_network, capsys):  # noqa: F811
    sent = {"objects": 0, "children": 0, "refused": 0}
    started = time.monotonic()

    @settings(max_examples=PER_KIND, deadline=None, database=None, derandomize=True,  # the same cases every run
              phases=(Phase.explicit, Phase.generate),
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large,
                                     HealthCheck.function_scoped_fixture])
    @given(case=cases(kind))
    def run(case) -> None:
        obj, cluster = case
        alone = kubectl.run("apply", "--dry-run=server", "--validate=strict", "-o", "name", "-f", "-",
                            input=json.dumps(_as_sent(obj, namespace)), check=False)
        if alone.returncode != 0:
            assert "is invalid" in alone.stderr and "spec." in alone.stderr, alone.stderr  # refused naming a field
            sent["refused"] += 1
        assume(alone.returncode == 0)
        check_case(kind, obj, cluster)
        children = [c for c in cluster.created().values() if c["kind"] != "Event"]
        docs = [_as_sent(obj, namespace), *(_as_sent(c, namespace) for c in children)]
        result = kubectl.run("apply", "--dry-run=server", "--validate=strict", "-o", "name", "-f", "-",
                             input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}), check=False)
        assert result.returncode == 0, (f"{kind} {obj['metadata']['name']!r}: the API server refused it or a child:\n"
                                        f"{result.stderr}\n{json.dumps(obj['spec'])[:2000]}")
        sent["objects"] += 1
        sent["children"] += len(children)

    run()
    with capsys.disabled():
        print(f"\ndry-run {kind}: {sent['objects']} admitted objects and {sent['children']} children accepted by "
              f"kube-apiserver, {sent['refused']} refused by it at admission, in {time.monotonic() - started:.0f} s")
    assert sent["objects"] >= PER_KIND
