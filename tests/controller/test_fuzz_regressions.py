"""The failing examples the CR fuzzer (``test_fuzz_crs.py``) found, kept as regression tests (issue 15).

- A RedisFailover named ``0`` (a valid custom resource name, a DNS-1123 subdomain) rendered Services
  ``0-redis-master``... that the API server refuses (a Service name is a DNS-1035 label: a letter first, no dots).
  The CRDs of the kinds that name Services after themselves now refuse such names at apply (CEL on
  ``metadata.name``).
- A MongoShardedCluster whose ``spec.adminSecretRef.name`` held a dot (``0.0``: the field admits a Secret name, a
  DNS subdomain) raised a pydantic ValidationError out of ``reconcile()`` on every retry.
- A worker memory request of ``88206158.60102863274813257135Ei`` (32 characters: the CRD admits it, so does the
  API server) raised ``ValueError: Invalid numerical value`` out of ``reconcile()``: lightkube's quantity parser
  overflows Python's default 28-digit decimal context when it compares the request with the default limit.
- A mongos memory limit of ``3098.741483590`` (bytes) was admitted and kept the default request of 256Mi above it,
  so the API server refused the Deployment (found by the e2e dry-run fuzz): a spec limit below a default request
  now lowers the request to it.
- A MongoShardedCluster ``spec.adminSecretRef.name`` of ``kx.9qsxu.-l4y2qx`` was admitted (its pattern let a
  dot-separated label start with ``-``) and every mongos Deployment and bootstrap Job was then refused (found by the
  e2e dry-run fuzz); the field now has the DNS-subdomain pattern.
- A ``storageClassName`` such as ``fast ssd`` or ``SSD`` (any string up to 253 characters) was admitted and
  rendered into the volume claim templates: kube-apiserver admits such a StatefulSet (it does not validate the
  templates), then refuses every PersistentVolumeClaim its controller creates, so the pods stay Pending and the
  object waits without naming the field (found by reading the schema's free-text strings for issue 15; neither
  fuzzer could see it: the harness did not check the claim templates, and the e2e dry-run admits the StatefulSet).
  Every ``storageClassName`` now has the DNS-subdomain pattern, and the harness checks the templates.
- The harness itself checked every child's name as a DNS label, so it refused a valid ``a.b-ranking`` ConfigMap.
"""

from __future__ import annotations

import pytest

from game_analytics.api import KINDS_BY_NAME
from game_analytics.api.crdgen import DNS_1035_NAME_KINDS
from game_analytics.config import Images
from game_analytics.controller.reconcile import reconcile

from . import crd_fuzz
from .fake_cluster import FakeCluster, secret
from .test_fuzz_crs import check_case, no_sentinel_network  # noqa: F401 - a fixture
from .test_reconcile import body


@pytest.mark.parametrize("kind", sorted(DNS_1035_NAME_KINDS))
@pytest.mark.parametrize("name", ["0", "0-cache", "cache.eu"])
def test_a_name_that_cannot_name_a_service_is_refused_at_apply(kind, name):
    spec = body({"GameDataSource": "gamedatasource.yaml", "RedisFailover": "redisfailover.yaml",
                 "MongoShardedCluster": "mongoshardedcluster.yaml"}[kind])["spec"]
    admitted, refusals = crd_fuzz.admit(crd_fuzz.custom_resource(kind, name, spec))
    assert admitted is None
    assert any("metadata.name must start with a letter" in r for r in refusals), refusals
    admitted, refusals = crd_fuzz.admit(crd_fuzz.custom_resource(kind, "cache-0", spec))
    assert admitted is not None, refusals


@pytest.mark.parametrize("kind", ["AlertRule", "RankingJob", "ScheduledReport"])
def test_kinds_without_services_keep_subdomain_names(kind):
    spec = body({"AlertRule": "alertrule-wealth-jump.yaml", "RankingJob": "rankingjob.yaml",
                 "ScheduledReport": "scheduledreport.yaml"}[kind])["spec"]
    admitted, refusals = crd_fuzz.admit(crd_fuzz.custom_resource(kind, "2026.q1", spec))
    assert admitted is not None, refusals


def test_a_dotted_admin_secret_name_reconciles(no_sentinel_network):  # noqa: F811 - the fixture
    obj = body("mongoshardedcluster.yaml", name="telemetry")
    obj["spec"]["adminSecretRef"] = {"name": "mongo.admin"}
    obj["status"] = {}
    admitted, refusals = crd_fuzz.admit(obj)
    assert admitted is not None, refusals
    cluster = FakeCluster()
    cluster.add(secret("mongo.admin", {"username": "admin", "password": "pw"}))
    cluster.preexisting = set(cluster.objects)
    check_case("MongoShardedCluster", admitted, cluster)
    refs = [env["valueFrom"]["secretKeyRef"] for child in cluster.created().values()
            for c in crd_fuzz._containers(child) for env in c.get("env") or [] if "valueFrom" in env
            and env["name"] in ("MONGODB_USER", "MONGODB_PASSWORD")]
    assert refs and all(r["name"] == "mongo.admin" for r in refs)
    assert {r["key"] for r in refs} == {"username", "password"}


@pytest.mark.parametrize(("kind", "name", "refused"), [
    ("ConfigMap", "a.b-ranking", False), ("Deployment", "a.b-ingest", False), ("CronJob", "a.b-ranking", False),
    ("Service", "a.b-metrics", True), ("Service", "0-metrics", True), ("StatefulSet", "a.b-redis", True),
    ("CronJob", "a" * 53, True), ("ConfigMap", "a" * 253, False), ("ConfigMap", "A", True),
])
def test_child_names_are_checked_as_the_api_server_checks_them(kind, name, refused):
    child = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": "games"}}
    assert bool(crd_fuzz.child_problems(child)) is refused


@pytest.mark.parametrize("retention", ["0", "99999999999y", "5610563w", "1001y"])
def test_a_zero_or_overflowing_retention_is_invalid_spec_naming_the_field_not_an_exception(retention):
    """Found by the fuzzer: ``retention: "0"`` passes the CRD's duration pattern, and WorkerSettings' ValidationError
    ("duration '0' must be positive") escaped reconcile() on every retry; a duration beyond a timedelta's range
    raised OverflowError out of reconcile()."""
    obj = body("gamedatasource.yaml")
    obj["spec"]["retention"] = retention
    cluster = FakeCluster()
    cluster.add(body("redisfailover.yaml"))
    outcome = reconcile(KINDS_BY_NAME["GameDataSource"], obj, cluster, Images())
    ready = next(c for c in outcome.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert ready["message"].startswith("spec.retention: ")


@pytest.mark.parametrize("key", ["Õ¸ô^Ï", "a key", "url/secret", ""])
def test_a_secret_key_no_secret_can_hold_is_refused_at_apply(key):
    """Found by tests/e2e/test_fuzz_dry_run.py: a ScheduledReport whose ``delivery.webhook.urlSecretRef.key`` was
    not a valid Secret key was admitted, and its CronJob's env ``secretKeyRef.key`` refused by the API server on
    every reconcile. Every SecretKeyRef key now has the Secret key pattern in the CRDs."""
    import yaml
    from pydantic import ValidationError

    from game_analytics.api.common import SecretKeyRef
    from game_analytics.api.crdgen import render_all

    with pytest.raises(ValidationError, match="key"):
        SecretKeyRef(name="reporting-secrets", key=key)
    crd = yaml.safe_load(render_all()["scheduledreports.gameanalytics.io.yaml"])
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    ref = spec["properties"]["delivery"]["properties"]["webhook"]["properties"]["urlSecretRef"]
    assert ref["properties"]["key"]["pattern"] == "^[-._a-zA-Z0-9]+$"
    child = {"kind": "CronJob", "metadata": {"name": "r-report"}, "spec": {"jobTemplate": {"spec": {"template": {
        "spec": {"containers": [{"name": "report", "env": [{"name": "URL", "valueFrom": {"secretKeyRef": {
            "name": "s", "key": key or "a b"}}}]}]}}}}}}
    assert any("invalid Secret key" in p for p in crd_fuzz.child_problems(child))


def test_a_request_above_the_default_limit_raises_the_limit():
    """Found by tests/e2e/test_fuzz_dry_run.py: a MongoShardedCluster asking ``mongos.resources.requests.memory``
    90266G got the default 1Gi limit, and the API server refused its Deployment on every reconcile."""
    from game_analytics.api.common import Resources
    from game_analytics.controller.common.render import resources

    asked = Resources.model_validate({"requests": {"memory": "90266G", "cpu": "4"}})
    out = resources(asked, cpu_limit="1", memory_limit="1Gi")
    assert out == {"requests": {"cpu": "4", "memory": "90266G"}, "limits": {"memory": "90266G", "cpu": "4"}}
    small = resources(Resources.model_validate({"requests": {"memory": "64Mi"}}), memory_limit="1Gi")
    assert small["limits"] == {"memory": "1Gi"}  # a default limit above the request stays
    explicit = Resources.model_validate({"requests": {"memory": "2Gi"}, "limits": {"memory": "4Gi"}})
    assert resources(explicit, memory_limit="1Gi")["limits"] == {"memory": "4Gi"}


@pytest.mark.parametrize(("toleration", "field"), [
    ({"key": "\x12", "operator": "Exists", "effect": "NoSchedule"}, "key"),
    ({"key": "dedicated", "operator": "Exists", "value": "games"}, "value"),
    ({"operator": "Equal", "value": "x"}, "operator"),
    ({"key": "dedicated", "value": "]\r"}, "value"),
    ({"key": "dedicated", "value": "games", "tolerationSeconds": 30, "effect": "NoSchedule"}, "tolerationSeconds"),
])
def test_a_toleration_the_pod_validation_refuses_is_refused_at_apply(toleration, field):
    """Found by the e2e dry-run fuzz (CI): GameDataSource ``spec.workers.tolerations`` took any string as key and
    value, so the CRD admitted what the generated Deployments' Pod validation then refused."""
    obj = body("gamedatasource.yaml")
    obj["spec"]["workers"] = {"tolerations": [toleration]}
    admitted, refusals = crd_fuzz.admit(obj)
    assert admitted is None
    assert any(f"spec.workers.tolerations[0].{field}" in r for r in refusals), refusals
    obj["spec"]["workers"] = {"tolerations": [{"key": "dedicated", "value": "games", "effect": "NoExecute",
                                               "tolerationSeconds": 30}, {"operator": "Exists"}]}
    assert crd_fuzz.admit(obj)[0] is not None


@pytest.mark.parametrize("workers", [{"nodeSelector": {"bad key!": "x"}}, {"nodeSelector": {"pool": "a b"}},
                                     {"priorityClassName": "High"}, {"image": " ghcr.io/x "}])
def test_bad_scheduling_fields_never_reach_a_deployment(workers, no_sentinel_network):  # noqa: F811 - the fixture
    """A GameDataSource's worker scheduling fields are refused at apply or end Ready=False naming the field; no
    Deployment the API server would refuse is written."""
    obj = body("gamedatasource.yaml")
    obj["spec"]["workers"] = workers
    admitted, refusals = crd_fuzz.admit(obj)
    if admitted is None:
        assert any("spec.workers." in r for r in refusals), refusals
        return
    cluster = FakeCluster()
    cluster.add(body("redisfailover.yaml"))
    cluster.preexisting = set(cluster.objects)
    check_case("GameDataSource", admitted, cluster)
    assert not [c for c in cluster.created().values() if c["kind"] == "Deployment"]


@pytest.mark.parametrize(("example", "field"), [
    ("mongoshardedcluster.yaml", "image"), ("redisfailover.yaml", "redis"), ("redisfailover.yaml", "sentinel")])
@pytest.mark.parametrize("image", [" ", "redis 7", "\u2005redis"])
def test_an_image_the_pod_validation_refuses_is_refused_at_apply(example, field, image):
    """Found by the CR fuzzer: MongoShardedCluster ``spec.image: " "`` was admitted and rendered the image
    ``" :7.0"`` into every mongod, mongos and keyfile container, which the Pod validation refuses."""
    obj = body(example)
    target = obj["spec"] if field == "image" else obj["spec"].setdefault(field, {})
    target["image"] = image
    admitted, refusals = crd_fuzz.admit(obj)
    assert admitted is None
    assert any(".image" in r for r in refusals), refusals
    target["image"] = "registry.example.com/mongo:7.0@sha256:" + "0" * 64
    assert crd_fuzz.admit(obj)[0] is not None


def test_a_huge_memory_request_reconciles_and_becomes_the_limit():
    obj = body("gamedatasource.yaml", name="huge")
    obj["spec"].setdefault("workers", {})["ingest"] = {"resources": {"requests": {
        "memory": "88206158.60102863274813257135Ei"}}}
    obj["spec"]["redis"] = {"urlSecretRef": {"name": "analytics-redis", "key": "url"}}
    obj["status"] = {}
    admitted, refusals = crd_fuzz.admit(obj)
    assert admitted is not None, refusals
    cluster = FakeCluster()
    for name in ("analytics-postgres", "analytics-postgres-owner", "analytics-redis"):
        cluster.add(secret(name, {"dsn": "postgresql://u:p@db/analytics", "url": "redis://cache:6379/0"}))
    cluster.preexisting = set(cluster.objects)
    check_case("GameDataSource", admitted, cluster)
    huge = [c["resources"] for child in cluster.created().values() if child["kind"] == "Deployment"
            for c in crd_fuzz._containers(child) if c["resources"]["requests"]["memory"].endswith("Ei")]
    assert huge and all(r["limits"]["memory"] == r["requests"]["memory"] for r in huge), huge


@pytest.mark.parametrize(("name", "admitted"), [("kx.9qsxu.-l4y2qx", False), ("a-.b", False), ("mongo.admin", True)])
def test_an_admin_secret_name_must_be_a_dns_subdomain(name, admitted):
    obj = body("mongoshardedcluster.yaml", name="telemetry")
    obj["spec"]["adminSecretRef"] = {"name": name}
    result, refusals = crd_fuzz.admit(obj)
    assert (result is not None) is admitted, refusals


def test_a_spec_limit_below_the_default_request_lowers_the_request():
    from game_analytics.api.common import Resources
    from game_analytics.controller.common.render import parse_quantity, resources

    out = resources(Resources.model_validate({"limits": {"memory": "3098.741483590", "cpu": "10m"}}))
    assert out["requests"] == {"cpu": "10m", "memory": "3098.741483590"} and out["limits"]["memory"] == "3098.741483590"
    kept = resources(Resources.model_validate({"limits": {"memory": "1Gi"}, "requests": {"memory": "64Mi"}}))
    assert kept["requests"]["memory"] == "64Mi", "a spec request is never changed"
    assert parse_quantity(resources(None)["requests"]["memory"]) <= parse_quantity(resources(None)["limits"]["memory"])


#: (kind, path of a Storage in the example's spec)
STORAGE_FIELDS = [("RedisFailover", ("redis", "storage")), ("MongoShardedCluster", ("configServer", "storage")),
                  ("MongoShardedCluster", ("shards", "storage"))]
EXAMPLE_FILE = {"RedisFailover": "redisfailover.yaml", "MongoShardedCluster": "mongoshardedcluster.yaml"}


def _with_storage_class(kind: str, where: tuple[str, str], storage_class: str) -> dict:
    obj = body(EXAMPLE_FILE[kind])
    obj["spec"].setdefault(where[0], {}).setdefault(where[1], {})["storageClassName"] = storage_class
    return obj


@pytest.mark.parametrize(("kind", "where"), STORAGE_FIELDS)
@pytest.mark.parametrize("storage_class", ["fast ssd", "SSD", "gp3_encrypted", "-fast", "\u00e9t\u00e9", "a" * 254])
def test_a_storage_class_no_claim_can_name_is_refused_at_apply(kind, where, storage_class):
    admitted, refusals = crd_fuzz.admit(_with_storage_class(kind, where, storage_class))
    assert admitted is None
    assert any("storageClassName" in r for r in refusals), refusals


@pytest.mark.parametrize(("kind", "where"), STORAGE_FIELDS)
@pytest.mark.parametrize("storage_class", ["standard", "gp3.encrypted", "fast-ssd-0"])
def test_a_storage_class_name_is_admitted_and_rendered(kind, where, storage_class, no_sentinel_network):  # noqa: F811
    admitted, refusals = crd_fuzz.admit(_with_storage_class(kind, where, storage_class))
    assert admitted is not None, refusals
    cluster = FakeCluster()
    check_case(kind, admitted, cluster)
    classes = {t["spec"].get("storageClassName") for child in cluster.created().values()
               if child["kind"] == "StatefulSet" for t in child["spec"].get("volumeClaimTemplates") or []}
    assert storage_class in classes, classes


def test_an_older_crds_storage_class_is_invalid_spec_naming_the_field(no_sentinel_network):  # noqa: F811
    """Stored under an older CRD (no pattern): the operator refuses it naming the field, renders nothing."""
    obj = _with_storage_class("RedisFailover", ("redis", "storage"), "fast ssd")
    cluster = FakeCluster()
    outcome = reconcile(KINDS_BY_NAME["RedisFailover"], obj, cluster, Images())
    ready = next(c for c in outcome.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec"), ready
    assert ready["message"].startswith("spec.redis.storage.storageClassName"), ready["message"]
    assert not [w for w in cluster.writes if "/statefulsets/" in w[1]]


def test_the_harness_refuses_a_claim_template_the_api_server_would_refuse():
    claim = {"metadata": {"name": "data"}, "spec": {"storageClassName": "fast ssd"}}
    child = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "cache-redis", "namespace": "g"},
             "spec": {"volumeClaimTemplates": [claim]}}
    assert crd_fuzz.child_problems(child) == [
        "StatefulSet/cache-redis: invalid storageClassName 'fast ssd' in volume claim template data"]
    claim["spec"]["storageClassName"] = "gp3.encrypted"
    assert crd_fuzz.child_problems(child) == []
