"""Searching the audit log: one filter shape for ``audit search``, ``audit export`` and ``interventions show``.

The query reads ``audit_log`` by its indexes (``at``, ``(actor, at)``, ``(action, at)``, ``(object_ref, at)``) and
returns the newest rows first (``order="desc"``) or in chain order (``order="asc"``, for exports).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from game_analytics.audit import _COLUMNS, AuditEntry

__all__ = ["AuditQuery", "search", "to_csv", "to_json"]

#: Column order of exports.
EXPORT_FIELDS = ("seq", "at", "actor", "action", "object_ref", "source", "approver", "justification", "before",
                 "after", "context", "prev_hash", "hash")  # fmt: skip


@dataclass(frozen=True)
class AuditQuery:
    """Filters of an audit search; every given one must match.

    ``action`` and ``target`` (``object_ref``) match exactly, or by prefix when they end in ``*``
    (``intervention.*``, ``intervention/42``).  ``since`` is inclusive, ``until`` exclusive.  ``limit`` None =
    every matching row.
    """

    actor: str | None = None
    action: str | None = None
    target: str | None = None
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = 100
    order: str = "desc"

    def sql(self) -> tuple[str, dict[str, Any]]:
        """The SELECT and its bind parameters."""
        where, params = ["true"], {}
        for column, value in (("actor", self.actor), ("action", self.action), ("object_ref", self.target),
                              ("source", self.source)):  # fmt: skip
            if value is None:
                continue
            if value.endswith("*"):
                prefix = value[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                where.append(f"{column} LIKE :{column} ESCAPE '\\'")
                params[column] = prefix + "%"
            else:
                where.append(f"{column} = :{column}")
                params[column] = value
        if self.since is not None:
            where.append("at >= :since")
            params["since"] = self.since
        if self.until is not None:
            where.append("at < :until")
            params["until"] = self.until
        order = "DESC" if self.order == "desc" else "ASC"
        sql = f"SELECT {_COLUMNS} FROM audit_log WHERE {' AND '.join(where)} ORDER BY seq {order}"
        if self.limit is not None:
            sql += " LIMIT :limit"
            params["limit"] = self.limit
        return sql, params


def search(conn: Connection, query: AuditQuery) -> Iterator[AuditEntry]:
    """The rows matching ``query``: with a ``limit`` fetched at once (at most that many), without one (exports)
    streamed with a server-side cursor planned for reading every row.

    Why not always a cursor: PostgreSQL plans a cursor for its first 10 % of rows (``cursor_tuple_fraction``),
    which for a time window alone chose walking the primary key back to the window over the ``at`` index: 265 ms
    instead of 13 ms at 1 million rows (benchmarks/bench_audit.py).
    """
    sql, params = query.sql()
    if query.limit is not None:
        result = conn.execute(text(sql), params)
    else:
        conn.execute(text("SET LOCAL cursor_tuple_fraction = 1.0"))  # this transaction: the export reads them all
        # per statement: Connection.execution_options() would set them on the caller's connection for good
        result = conn.execute(text(sql), params, execution_options={"stream_results": True, "yield_per": 1000})
    for row in result:
        yield AuditEntry(*row)


def _export_row(entry: AuditEntry) -> dict[str, Any]:
    data = entry.as_dict()
    return {name: data[name] for name in EXPORT_FIELDS}


def to_json(entries: Iterable[AuditEntry]) -> Iterator[str]:
    """A JSON array of the entries, one entry per line (streamable), ending with a newline."""
    yield "["
    for i, entry in enumerate(entries):
        yield ("\n" if i == 0 else ",\n") + json.dumps(_export_row(entry), sort_keys=True, ensure_ascii=False)
    yield "\n]\n"


def to_csv(entries: Iterable[AuditEntry]) -> Iterator[str]:
    """CSV with a header of :data:`EXPORT_FIELDS`; JSON columns as compact JSON text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(EXPORT_FIELDS)
    yield buffer.getvalue()
    for entry in entries:
        buffer.seek(0)
        buffer.truncate()
        row = _export_row(entry)
        writer.writerow([json.dumps(row[f], sort_keys=True, ensure_ascii=False)
                         if f in ("before", "after", "context") and row[f] is not None
                         else ("" if row[f] is None else row[f]) for f in EXPORT_FIELDS])  # fmt: skip
        yield buffer.getvalue()
