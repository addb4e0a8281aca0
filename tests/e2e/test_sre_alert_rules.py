"""Issue 14's SRE-style AlertRules on the real API server with the operator running.

Each one used to render a PrometheusRule that Prometheus (promtool) refuses, or raised outside the spec-error path,
while the AlertRule showed Ready=True or no status at all. Now:

* a Kubernetes-style label key (``cost-center``, ``app.kubernetes.io/part-of``) and a newline in
  ``currencyInflation.currency`` are refused at apply by the CRD (CEL key rule, pattern), naming the field;
* an unterminated ``{{ $value`` template, which only the operator's rule check can see, ends Ready=False
  ``InvalidSpec`` naming ``spec.annotations.<key>`` in its first status, stays so over several resyncs without a
  retry, creates no PrometheusRule and posts a Warning Event.

The session's ``operator`` fixture fails the run when the operator log holds a traceback.
"""

from __future__ import annotations

import copy
import time

import pytest
import yaml

from devtools.waiting import wait_for

from .support import EXAMPLES, GAMES_NS, RESYNC, ready_condition

pytestmark = pytest.mark.e2e


def rule(base: str, name: str, **spec) -> dict:
    doc = copy.deepcopy(yaml.safe_load((EXAMPLES / base).read_text()))
    doc["metadata"] = {"name": name, "namespace": GAMES_NS}
    doc["spec"].update(spec)
    return doc


def with_currency(currency: str) -> dict:
    doc = rule("alertrule-inflation.yaml", "newline-currency")
    doc["spec"]["detector"]["currencyInflation"]["currency"] = currency
    return doc


#: (manifest, text the API server's refusal must contain)
REFUSED_AT_APPLY = [
    (rule("alertrule-wealth-jump.yaml", "dash-label", labels={"cost-center": "fraud"}), "spec.labels"),
    (rule("alertrule-wealth-jump.yaml", "dotted-label", labels={"app.kubernetes.io/part-of": "economy"}),
     "spec.labels"),
    (with_currency("US\nD"), "spec.detector.currencyInflation.currency"),
]


def test_label_keys_and_currencies_prometheus_cannot_take_are_refused_at_apply(installed, kubectl):
    failures = []
    for manifest, field in REFUSED_AT_APPLY:
        result = kubectl.run("apply", "-f", "-", input=yaml.safe_dump(manifest), check=False)
        if result.returncode == 0 or field not in result.stderr:
            failures.append(f"{manifest['metadata']['name']}: rc={result.returncode} {result.stderr.strip()}")
    assert not failures, "\n".join(failures)


def test_a_broken_annotation_template_is_invalid_spec_in_the_first_status_without_retries(operator, kubectl):
    kubectl.run("apply", "-n", GAMES_NS, "-f", str(EXAMPLES / "gamedatasource.yaml"))
    name, field = "unterminated-template", "spec.annotations.summary"
    kubectl.run("apply", "-f", "-", input=yaml.safe_dump(
        rule("alertrule-wealth-jump.yaml", name, annotations={"summary": "wealth jumped x{{ $value"})))
    first = wait_for(f"alertrule/{name} gets a Ready condition",
                     lambda: ready_condition(kubectl.get("alertrule", name)), 60, 0.2)
    # the first status the operator writes is already the verdict: no Unknown / Running step, no error retry
    assert first["status"] == "False" and first["reason"] == "InvalidSpec", first
    assert first["message"].startswith(f"{field}: "), first
    assert "unclosed action" in first["message"], first
    time.sleep(4 * RESYNC)  # several resyncs later: the same condition, not rewritten, not flapping
    obj = kubectl.get("alertrule", name)
    later = ready_condition(obj)
    assert later == first, (first, later)
    assert later["observedGeneration"] == obj["metadata"]["generation"]
    assert kubectl.get("prometheusrule", name) is None, "a rule Prometheus would refuse must not be created"
    events = kubectl.json("get", "events", "-n", GAMES_NS, "--field-selector",
                          f"involvedObject.name={name}")["items"]
    assert any(e["type"] == "Warning" and e["reason"] == "InvalidSpec" and field in e["message"] for e in events)
    log = operator.log_path.read_text(errors="replace")
    retried = [line for line in log.splitlines() if name in line and ("retry" in line.lower() or "Traceback" in line)]
    assert not retried, "\n".join(retried)
    assert operator.proc.poll() is None
