"""The real Kopf handlers audit what they do (create, spec change, deletion): Events on the kmock API server,
entries in the real PostgreSQL."""

from __future__ import annotations

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


@pytest.fixture
def audited_operator(api: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                     db_dsn: str):
    """The operator as in test_handlers_kmock, its audit writer pointed at ``db_dsn``."""
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


def test_create_change_and_delete_are_audited_as_events_and_entries(api: EmulatorThread,  # noqa: F811
                                                                  audited_operator, db_dsn: str) -> None:
    create_data_source(api)
    rule = api.create(example("alertrule-wealth-jump.yaml"))
    name = rule["metadata"]["name"]
    ref = f"AlertRule/{NAMESPACE}/{name}"
    engine = create_engine(db_dsn, poolclass=pool.NullPool)

    def actions() -> list[str]:
        with engine.connect() as conn:
            return list(conn.execute(text("SELECT action FROM audit_log WHERE object_ref = :r ORDER BY seq"),
                                     {"r": ref}).scalars())  # fmt: skip

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

        async def delete() -> int:
            url = f"/apis/{ALERTRULES.rpartition('/')[0]}/namespaces/{NAMESPACE}/alertrules/{name}"
            async with api.emulator.delete(url) as response:
                return response.status

        assert api.call(delete) == 200
        wait_for("the deletion audited", lambda: "operator.spec.delete" in actions(), WAIT_SECONDS, interval=0.1)
        with engine.connect() as conn:
            gone = conn.execute(text("SELECT before, after FROM audit_log WHERE object_ref = :r "
                                     "AND action = 'operator.spec.delete'"), {"r": ref}).one()  # fmt: skip
        assert gone.before["severity"] == "warning" and gone.after is None
        assert AuditLog(engine).verify().ok
    finally:
        engine.dispose()
