"""The operator's per-object reconcile state (controller/handlers.py): kept while the object lives, dropped on delete."""

from __future__ import annotations

from game_analytics.controller import handlers


def test_a_deleted_objects_reconcile_state_is_dropped() -> None:
    body = {"metadata": {"uid": "u-1", "generation": 3}}
    lock, newest = handlers._serialized(body)
    newest[0] = 3
    assert handlers._serialized(body) == (lock, [3])  # the same state while the object lives
    handlers._forget(type="MODIFIED", body=body)
    assert "u-1" in handlers._objects
    handlers._forget(type="DELETED", body=body)
    assert "u-1" not in handlers._objects
