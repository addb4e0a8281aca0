"""The real Kopf handlers audit what they do (create, spec change, deletion): Events on the kmock API server,
entries in the real PostgreSQL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, pool, text

from devtools.waiting import wait_for
from game_analytics.audit import AuditLog
from game_analytics.controller.audit import OPERATOR_ACTOR, AuditWriter

from .test_handlers_kmock import (  # noqa: F401 - the fixtures
    ALERTRULES,
    NAMESPACE,
    WAIT_SECONDS,
    EmulatorThread,
    KopfRunner,
    api,
    create_data_source,
    example,
    load_handlers,
)

pytestmark = pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning")


@contextlib.contextmanager
def running_operator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_dsn: str) -> Iterator[KopfRunner]:
    """The operator as in test_handlers_kmock, its audit writer pointed at ``db_dsn``, until the block ends."""
    import kopf

    from game_analytics.controller.k8s import Cluster

    module, registry = load_handlers(monkeypatch)
    module._state["cluster"] = Cluster.from_kubeconfig(tmp_path / "kubeconfig.yaml")
    module._state["audit"] = AuditWriter(dsn=db_dsn)
    settings = kopf.OperatorSettings()
    settings.queueing.idle_timeout = settings.queueing.exit_timeout = 0.5
    with KopfRunner(["run", "--standalone", "--all-namespaces"], registry=registry, settings=settings,
                    timeout=20) as runner:
        yield runner
    assert runner.exception is None and runner.exit_code == 0


@pytest.fixture
def audited_operator(api: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                     db_dsn: str):
    """The operator as in test_handlers_kmock, its audit writer pointed at ``db_dsn``."""
    with running_operator(tmp_path, monkeypatch, db_dsn) as runner:
        yield runner


def audit_actions(engine, ref: str) -> list[str]:
    """The actions of the ``audit_log`` rows on ``ref``, in chain order."""
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT action FROM audit_log WHERE object_ref = :r ORDER BY seq"),
                                 {"r": ref}).scalars())  # fmt: skip


def delete(emulator: EmulatorThread, resource: str, name: str) -> int:
    """DELETE the object as a client would; the HTTP status."""
    async def send() -> int:
        url = f"/apis/{resource.rpartition('/')[0]}/namespaces/{NAMESPACE}/{resource.rpartition('/')[2]}/{name}"
        async with emulator.emulator.delete(url) as response:
            return response.status

    return emulator.call(send)


def test_create_change_and_delete_are_audited_as_events_and_entries(api: EmulatorThread,  # noqa: F811
                                                                  audited_operator, db_dsn: str) -> None:
    create_data_source(api)
    rule = api.create(example("alertrule-wealth-jump.yaml"))
    name = rule["metadata"]["name"]
    ref = f"AlertRule/{NAMESPACE}/{name}"
    engine = create_engine(db_dsn, poolclass=pool.NullPool)

    def actions() -> list[str]:
        return audit_actions(engine, ref)

    try:
        # the create handler and the first resync may race: which of them applies the children varies
        wait_for("create audited", lambda: {"operator.spec.create", "operator.children.apply"} <= set(actions()),
                 WAIT_SECONDS, interval=0.1)
        api.patch(ALERTRULES, NAMESPACE, name, {"spec": {"severity": "warning"}})
        wait_for("the spec change audited", lambda: "operator.spec.update" in actions(), WAIT_SECONDS, interval=0.1)
        with engine.connect() as conn:
            update = conn.execute(text("SELECT actor, source, before, after FROM audit_log WHERE object_ref = :r "
                                       "AND action = 'operator.spec.update'"), {"r": ref}).one()  # fmt: skip
        assert (update.actor, update.source) == (OPERATOR_ACTOR, "operator")
        assert update.before["severity"] == "critical" and update.after["severity"] == "warning"
        events = wait_for("audit Events", lambda: [e for e in api.list("v1/events", NAMESPACE)
                                                   if e.get("reason") == "Audit"] or None, WAIT_SECONDS,
                          interval=0.1)  # fmt: skip
        assert {e["involvedObject"]["name"] for e in events} == {name}
        assert {"operator.spec.create", "operator.children.apply"} <= {e["action"] for e in events}

        assert delete(api, ALERTRULES, name) == 200
        wait_for("the deletion audited", lambda: "operator.spec.delete" in actions(), WAIT_SECONDS, interval=0.1)
        with engine.connect() as conn:
            gone = conn.execute(text("SELECT before, after FROM audit_log WHERE object_ref = :r "
                                     "AND action = 'operator.spec.delete'"), {"r": ref}).one()  # fmt: skip
        assert gone.before["severity"] == "warning" and gone.after is None
        assert AuditLog(engine).verify().ok
    finally:
        engine.dispose()


def test_a_deletion_while_the_operator_is_down_is_audited_once_it_is_back(
        api: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_dsn: str) -> None:  # noqa: F811
    """The finalizer holds a deleted AlertRule until its deletion is audited: deleted while no operator runs, it
    stays (``deletionTimestamp`` set) and the next operator writes ``operator.spec.delete`` and releases it. Seen
    only as a watch DELETED event (no finalizer), this deletion was never audited."""
    from game_analytics.controller.audit import FINALIZER

    create_data_source(api)
    name = api.create(example("alertrule-wealth-jump.yaml"))["metadata"]["name"]
    ref = f"AlertRule/{NAMESPACE}/{name}"
    engine = create_engine(db_dsn, poolclass=pool.NullPool)
    try:
        with running_operator(tmp_path, monkeypatch, db_dsn):
            wait_for("create audited and the finalizer on", lambda: "operator.spec.create" in audit_actions(
                engine, ref) and FINALIZER in (api.get(ALERTRULES, NAMESPACE, name)["metadata"].get("finalizers")
                                               or []), WAIT_SECONDS, interval=0.1)  # fmt: skip
        assert delete(api, ALERTRULES, name) == 200
        held = api.get(ALERTRULES, NAMESPACE, name)
        assert held is not None and held["metadata"].get("deletionTimestamp"), "the finalizer must hold it"
        assert "operator.spec.delete" not in audit_actions(engine, ref)
        with running_operator(tmp_path, monkeypatch, db_dsn):
            wait_for("the deletion audited and the rule gone", lambda: "operator.spec.delete" in audit_actions(
                engine, ref) and api.get(ALERTRULES, NAMESPACE, name) is None, WAIT_SECONDS, interval=0.1)
        assert audit_actions(engine, ref).count("operator.spec.delete") == 1
        with engine.connect() as conn:
            gone = conn.execute(text("SELECT before, after, context FROM audit_log WHERE object_ref = :r "
                                     "AND action = 'operator.spec.delete'"), {"r": ref}).one()  # fmt: skip
        assert gone.before["severity"] == "critical" and gone.after is None and gone.context["cause"] == "delete"
        assert AuditLog(engine).verify().ok
    finally:
        engine.dispose()


def test_only_the_spec_audited_kinds_get_the_finalizer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kopf adds a finalizer where a non-optional deletion handler matches: the three spec-audited kinds; the kinds
    with workloads (GameDataSource, RedisFailover, MongoShardedCluster) never wait on the operator to go."""
    from game_analytics.api import KINDS
    from game_analytics.controller.audit import SPEC_AUDITED_KINDS

    _, registry = load_handlers(monkeypatch)
    holding = {h.selector.any_name for h in registry._changing._handlers if h.requires_finalizer}
    assert holding == {i.plural for i in KINDS if i.kind in SPEC_AUDITED_KINDS} == {
        "alertrules", "rankingjobs", "scheduledreports"}
