"""Run history in the ``report_runs`` table (:class:`game_analytics.storage.models.ReportRun`).

One row per report type per run: inserted as ``running`` before the report is built (so a crash leaves a visible
``running`` row rather than nothing), and finished as ``succeeded`` or ``failed`` with the duration, the total size
of its artefacts and the error.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select, update

from ..storage.engine import session_scope
from ..storage.models import ReportRun

__all__ = ["SUCCEEDED", "FAILED", "RUNNING", "SENT", "delivered_channels", "finish_run", "recent_runs",
           "record_parameters", "start_run"]

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
#: A channel's recorded outcome when it delivered (``parameters.delivery.channels.<channel>``); else ``failed``.
SENT = "sent"
_MAX_ERROR = 4000


def start_run(engine: Engine, *, name: str, namespace: str, report_type: str, parameters: dict[str, Any],
              started_at: datetime | None = None) -> int:  # fmt: skip
    """Insert a ``running`` row and return its id. ``parameters`` must be JSON-serialisable."""
    with session_scope(engine) as session:
        run = ReportRun(report_name=name, namespace=namespace, report_type=report_type, parameters=parameters,
                        started_at=started_at or datetime.now(UTC), outcome=RUNNING)  # fmt: skip
        session.add(run)
        session.flush()
        return int(run.id)


def finish_run(engine: Engine, run_id: int, *, outcome: str, artifact_bytes: int | None = None,
               error: str | None = None, parameters: dict[str, Any] | None = None,
               finished_at: datetime | None = None) -> None:  # fmt: skip
    """Mark run ``run_id`` finished: ``outcome`` is ``succeeded`` or ``failed``; the duration is computed from the
    stored start. ``parameters``, when given, replace the stored ones (e.g. to add the artefact paths).

    Raises:
        ValueError: unknown outcome.
        LookupError: no run with that id.
    """
    if outcome not in (SUCCEEDED, FAILED):
        raise ValueError(f"outcome must be {SUCCEEDED!r} or {FAILED!r}, not {outcome!r}")
    finished = finished_at or datetime.now(UTC)
    with session_scope(engine) as session:
        run = session.get(ReportRun, run_id)
        if run is None:
            raise LookupError(f"report run {run_id} does not exist")
        values: dict[str, Any] = {
            "finished_at": finished, "duration_seconds": max((finished - run.started_at).total_seconds(), 0.0),
            "outcome": outcome, "artifact_bytes": artifact_bytes,
            "error": None if error is None else error[:_MAX_ERROR],
        }  # fmt: skip
        if parameters is not None:
            values["parameters"] = parameters
        session.execute(update(ReportRun).where(ReportRun.id == run_id).values(**values))


def record_parameters(engine: Engine, run_id: int, parameters: dict[str, Any]) -> None:
    """Replace the ``parameters`` of run ``run_id`` (e.g. to record its per-channel delivery)."""
    with session_scope(engine) as session:
        session.execute(update(ReportRun).where(ReportRun.id == run_id).values(parameters=parameters))


def recent_runs(engine: Engine, *, name: str | None = None, namespace: str | None = None,
                limit: int = 50) -> list[ReportRun]:  # fmt: skip
    """Newest runs first, optionally only those of ``namespace``/``name``."""
    query = select(ReportRun).order_by(ReportRun.started_at.desc(), ReportRun.id.desc()).limit(limit)
    if name is not None:
        query = query.where(ReportRun.report_name == name)
    if namespace is not None:
        query = query.where(ReportRun.namespace == namespace)
    with session_scope(engine) as session:
        return list(session.scalars(query))


def delivered_channels(engine: Engine, *, name: str, namespace: str, run_key: str) -> set[str]:
    """The channels that already delivered run ``run_key`` of ``namespace``/``name``: those recorded as
    :data:`SENT` in ``parameters.delivery.channels`` of any of its ``report_runs`` rows (earlier attempts)."""
    query = select(ReportRun.parameters).where(
        ReportRun.report_name == name, ReportRun.namespace == namespace,
        ReportRun.parameters["runKey"].astext == run_key,
    )  # fmt: skip
    with session_scope(engine) as session:
        sent: set[str] = set()
        for params in session.scalars(query):
            channels = ((params or {}).get("delivery") or {}).get("channels") or {}
            sent.update(ch for ch, outcome in channels.items() if outcome == SENT)
        return sent
