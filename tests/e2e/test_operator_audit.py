"""The operator's audit trail in the audit table, on the real kube-apiserver and the real PostgreSQL (issue 16).

The chart value ``audit.dsnSecret`` is rendered with helm, the Secret it names is created in the operator's
namespace and resolved as the kubelet would (``secretKeyRef``), and the operator process (the chart
ServiceAccount's token, as in tests/e2e/test_operator.py) gets the resulting ``GAME_ANALYTICS_AUDIT_DSN``: a login
role holding only ``game_analytics_writer``, as docs/interventions.md recommends. Creating, changing and deleting an
AlertRule must leave the expected rows in ``audit_log``, and ``game-analytics audit verify`` must pass on them.
"""

from __future__ import annotations

import base64
import copy
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, pool, text

from devtools.operator_process import OperatorProcess
from devtools.waiting import wait_for
from game_analytics.controller.audit import OPERATOR_ACTOR

from .support import EXAMPLES, RELEASE, ROOT, SYSTEM_NS, Kubectl, create_example_secrets, is_ready, tool

pytestmark = pytest.mark.e2e

AUDIT_SECRET = "ga-audit-db"
RULE = "whale-wealth-jump"


def chart_audit_env(secret: str) -> dict[str, Any]:
    """The operator container's ``GAME_ANALYTICS_AUDIT_DSN`` env entry as the chart renders it with
    ``audit.dsnSecret=<secret>``."""
    rendered = subprocess.run([tool("helm"), "template", RELEASE, str(ROOT / "charts" / "game-analytics"),
                               "--namespace", SYSTEM_NS, "--show-only", "templates/deployment.yaml",
                               "--set", f"audit.dsnSecret={secret}"],
                              capture_output=True, text=True, timeout=60, check=True).stdout  # fmt: skip
    deployment = yaml.safe_load(rendered)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (entry,) = [e for e in container["env"] if e["name"] == "GAME_ANALYTICS_AUDIT_DSN"]
    return entry


def resolve_secret_env(kubectl: Kubectl, namespace: str, entry: dict[str, Any]) -> str:
    """The value of an env entry ``valueFrom.secretKeyRef``, read from the API server as the kubelet does."""
    ref = entry["valueFrom"]["secretKeyRef"]
    secret = kubectl.json("get", "secret", ref["name"], "-n", namespace)
    return base64.b64decode(secret["data"][ref["key"]]).decode()


@pytest.fixture
def writer_dsn(postgres_server, db_dsn: str) -> Iterator[str]:
    """A libpq URL of the migrated test database as a fresh login role that holds only game_analytics_writer."""
    role = f"ga_operator_{uuid.uuid4().hex[:8]}"
    admin = create_engine(db_dsn, poolclass=pool.NullPool)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN IN ROLE game_analytics_writer"))
    database = db_dsn.rsplit("/", 1)[1]
    yield f"postgresql://{role}@{postgres_server.host}:{postgres_server.port}/{database}"
    with admin.begin() as conn:
        conn.execute(text(f"REASSIGN OWNED BY {role} TO CURRENT_USER"))
        conn.execute(text(f"DROP OWNED BY {role}"))
        conn.execute(text(f"DROP ROLE {role}"))
    admin.dispose()


def audit_rows(db_dsn: str, target: str) -> list[Any]:
    engine = create_engine(db_dsn, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT seq, actor, action, object_ref, source, before, after, context "
                                     "FROM audit_log WHERE object_ref = :t ORDER BY seq"), {"t": target}).all()
    finally:
        engine.dispose()


def actions(rows: list[Any]) -> list[str]:
    return [r.action for r in rows]


def test_alert_rule_create_change_delete_write_the_audit_table(installed, kubectl, operator, namespace, db_dsn,
                                                               writer_dsn, tmp_path):  # fmt: skip
    ns = namespace
    kubectl.run("create", "secret", "generic", AUDIT_SECRET, "-n", SYSTEM_NS, f"--from-literal=dsn={writer_dsn}")
    env = {"GAME_ANALYTICS_AUDIT_DSN": resolve_secret_env(kubectl, SYSTEM_NS, chart_audit_env(AUDIT_SECRET))}
    assert env["GAME_ANALYTICS_AUDIT_DSN"] == writer_dsn
    operator.stop()  # the session's operator (no audit DSN, every namespace) must not handle this namespace's objects
    audited = OperatorProcess(installed, tmp_path / "operator.log", resync_seconds=3, namespaces=[ns], env=env)
    try:
        audited.start()
        create_example_secrets(kubectl, ns)
        kubectl.run("apply", "-n", ns, "-f", str(EXAMPLES / "gamedatasource.yaml"))  # the rule's GameDataSource
        doc = yaml.safe_load((EXAMPLES / "alertrule-wealth-jump.yaml").read_text())
        doc["metadata"]["namespace"] = ns
        target = f"AlertRule/{ns}/{RULE}"

        # create: the spec (after) and the children the reconcile applied
        kubectl.run("apply", "-f", "-", input=yaml.safe_dump(doc))
        rule = wait_for("rule ready", lambda: (r := kubectl.get("alertrule", RULE, ns)) and is_ready(r) and r,
                        timeout=90)
        created = wait_for("create audited", lambda: len(rows := audit_rows(db_dsn, target)) >= 2 and rows,
                           timeout=30)
        assert actions(created) == ["operator.spec.create", "operator.children.apply"]
        assert created[0].before is None and created[0].after == rule["spec"]
        assert created[1].after == {"applied": [f"AlertmanagerConfig/{RULE}", f"ConfigMap/{RULE}-detector",
                                                f"PrometheusRule/{RULE}"]}  # fmt: skip
        uid = rule["metadata"]["uid"]
        assert created[0].context == {"kind": "AlertRule", "namespace": ns, "uid": uid, "generation": 1,
                                      "cause": "create"}  # fmt: skip

        # idle resyncs (every 3 s) write nothing
        resynced = f"[{ns}/{RULE}] Timer 'alertrule-resync' succeeded"
        seen = audited.log_path.read_text(errors="replace").count(resynced)
        wait_for("two idle resyncs of the rule",
                 lambda: audited.log_path.read_text(errors="replace").count(resynced) >= seen + 2, timeout=30)
        assert actions(audit_rows(db_dsn, target)) == actions(created)

        # change: severity and no channels (the AlertmanagerConfig is pruned)
        old_spec = copy.deepcopy(rule["spec"])
        changed_doc = copy.deepcopy(doc)
        changed_doc["spec"]["severity"], changed_doc["spec"]["channels"] = "warning", []
        kubectl.run("apply", "-f", "-", input=yaml.safe_dump(changed_doc))
        changed = wait_for("update audited", lambda: len(rows := audit_rows(db_dsn, target)) >= 5 and rows,
                           timeout=60)[2:]
        assert actions(changed) == ["operator.spec.update", "operator.children.apply", "operator.children.prune"]
        assert changed[0].before == old_spec and changed[0].after["severity"] == "warning"
        assert changed[0].context["generation"] == 2 and changed[0].context["cause"] == "update"
        assert changed[2].after == {"pruned": [f"AlertmanagerConfig/{RULE}"]}
        assert kubectl.get("alertmanagerconfig", RULE, ns) is None

        # delete: the last spec (before), from the deletion handler the finalizer waits for
        last_spec = kubectl.get("alertrule", RULE, ns)["spec"]
        kubectl.run("delete", "alertrule", RULE, "-n", ns)
        deleted = wait_for("delete audited", lambda: len(rows := audit_rows(db_dsn, target)) >= 6 and rows,
                           timeout=60)[5:]
        assert actions(deleted) == ["operator.spec.delete"]
        assert deleted[0].before == last_spec and deleted[0].after is None

        every = audit_rows(db_dsn, target)
        assert {(r.actor, r.source) for r in every} == {(OPERATOR_ACTOR, "operator")}
        assert len(every) == 6

        # the same trail as Events on the API server (reason Audit)
        events = kubectl.json("get", "events", "-n", ns, "--field-selector",
                              f"reason=Audit,involvedObject.name={RULE}")["items"]  # fmt: skip
        assert sorted(e["action"] for e in events) == sorted(actions(every))

        # the hash chain verifies, with the CLI as an admin runs it
        verify = subprocess.run([sys.executable, "-m", "game_analytics.cli", "audit", "verify", "--dsn", writer_dsn],
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        assert verify.returncode == 0, verify.stdout + verify.stderr
        found = subprocess.run([sys.executable, "-m", "game_analytics.cli", "audit", "search", "--dsn", writer_dsn,
                                "--target", f"AlertRule/{ns}/*", "--source", "operator", "--output", "json"],
                               capture_output=True, text=True, timeout=60)  # fmt: skip
        assert found.returncode == 0, found.stderr
        assert sorted(e["action"] for e in json.loads(found.stdout)) == sorted(actions(every))
    finally:
        audited.stop()
        kubectl.run("delete", "secret", AUDIT_SECRET, "-n", SYSTEM_NS, check=False)
        operator.start()
    log = (tmp_path / "operator.log").read_text(errors="replace")
    assert "Traceback" not in log and "could not append" not in log, audited.log_tail(80)
