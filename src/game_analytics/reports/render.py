"""Write a :class:`~game_analytics.reports.model.Report` as HTML, CSV (zip), JSON or PDF.

* **HTML**: one self-contained file: styles inline, charts as base64 ``data:image/png`` URIs, tables as HTML
  (all values escaped by Jinja2 autoescaping). Template ``templates/report.html.j2`` (package data).
* **CSV**: a zip archive with ``summary.csv`` (columns ``key,label,value,unit``; the period, filters and notes are
  rows of it too) and one ``<table>.csv`` per table (header row, UTF-8, ISO 8601 UTC timestamps). One file per
  table keeps every CSV rectangular and loadable by any tool; the zip keeps a run's output a single artefact.
* **JSON**: ``{"report", "title", "period": {"start", "end"}, "filters", "generated_at", "figures": [...],
  "tables": {name: [row objects]}, "notes": [...]}``; NaN becomes ``null``.

* **PDF**: the same content on A4 pages (title page, then each table with its charts): see
  :mod:`game_analytics.reports.pdf`.

File names: ``<prefix><report type>-<period end as YYYYMMDDTHHMMSSZ>.<html|zip|json|pdf>``.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from ..api.scheduledreport import ReportFormat
from .charts import render_charts
from .model import Report

__all__ = ["FILE_SUFFIX", "artifact_name", "render_csv_zip", "render_html", "render_json", "write_report"]

FILE_SUFFIX = {ReportFormat.HTML: "html", ReportFormat.CSV: "zip", ReportFormat.JSON: "json", ReportFormat.PDF: "pdf"}

_env = Environment(loader=PackageLoader("game_analytics.reports", "templates"), autoescape=select_autoescape(
    enabled_extensions=("html", "j2"), default_for_string=True), trim_blocks=True, lstrip_blocks=True)  # fmt: skip


def _plain(value: Any) -> Any:
    """A JSON/CSV-friendly scalar: numpy -> Python, NaN/NaT -> None, timestamps -> ISO 8601 UTC."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, pd.Timestamp):
        if pd.isna(value):
            return None
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if value is pd.NaT:
        return None
    return value


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    columns = [str(c) for c in frame.columns]
    return [{c: _plain(v) for c, v in zip(columns, row, strict=True)} for row in frame.itertuples(index=False)]


def _cell(value: Any, column: str, percent: bool = False) -> str:
    v = _plain(value)
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}" if column not in ("period", "season", "from_period", "to_period", "hour", "id") else str(v)
    if isinstance(v, float):
        return f"{100 * v:.1f} %" if percent else f"{v:,.2f}"
    if isinstance(v, str) and v.endswith("T00:00:00Z"):
        return v[:10]
    if isinstance(v, str) and len(v) > 20 and v[10:11] == "T":
        return v[:19].replace("T", " ")
    return str(v)


def artifact_name(report: Report, fmt: ReportFormat, prefix: str = "") -> str:
    """File name of ``report`` in format ``fmt`` (see the module docstring)."""
    return f"{prefix}{report.report_type.value}-{report.period.end:%Y%m%dT%H%M%SZ}.{FILE_SUFFIX[fmt]}"


def _filters_text(report: Report) -> str:
    f = report.filters
    parts = [f"{name}: {', '.join(values)}" for name, values in
             (("games", f.games), ("regions", f.regions), ("event types", f.event_types)) if values]  # fmt: skip
    return "; ".join(parts + [f"top N: {f.top_n}"])


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def render_html(report: Report, charts: dict[str, bytes] | None = None) -> bytes:
    """The self-contained HTML document (UTF-8). ``charts`` defaults to :func:`render_charts` of the report."""
    charts = render_charts(report) if charts is None else charts
    titles = {c.name: c.title for c in report.charts}
    html = _env.get_template("report.html.j2").render(
        report=report,
        period=report.period.label(),
        filters=_filters_text(report),
        generated=f"{report.generated_at:%Y-%m-%d %H:%M:%S} UTC",
        figures=[(f.label, f.formatted()) for f in report.figures],
        charts=[(titles[name], base64.b64encode(png).decode("ascii")) for name, png in charts.items()],
        pages=[(page.title, base64.b64encode(_png(page.draw())).decode("ascii")) for page in report.pages],
        tables=[
            {"title": t.title, "description": t.description, "columns": [str(c) for c in t.frame.columns],
             "rows": [[_cell(v, str(c), str(c) in t.percent_columns) for c, v in zip(t.frame.columns, row, strict=True)]
                      for row in t.frame.itertuples(index=False)]}
            for t in report.tables if t.name != "leaderboard_chart"
        ],
    )  # fmt: skip
    return html.encode("utf-8")


def _json_document(report: Report) -> dict[str, Any]:
    return {
        "report": report.report_type.value,
        "title": report.title,
        "period": {"start": _plain(report.period.start), "end": _plain(report.period.end)},
        "filters": report.filters.to_api(),
        "generated_at": _plain(report.generated_at),
        "figures": [{"key": f.key, "label": f.label, "value": _plain(f.value), "unit": f.unit}
                    for f in report.figures],  # fmt: skip
        "tables": {t.name: _rows(t.frame) for t in report.tables},
        "notes": list(report.notes),
    }


def render_json(report: Report) -> bytes:
    """The JSON document (UTF-8, indented, no NaN)."""
    return json.dumps(_json_document(report), indent=2, ensure_ascii=False, allow_nan=False).encode("utf-8")


def _csv_bytes(header: list[str], rows: list[list[Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def render_csv_zip(report: Report) -> bytes:
    """The zip archive of CSV files (see the module docstring)."""
    summary = [
        ["report", "Report", report.report_type.value, ""],
        ["period_start", "Period start (inclusive)", _plain(report.period.start), ""],
        ["period_end", "Period end (exclusive)", _plain(report.period.end), ""],
        ["filters", "Filters", json.dumps(report.filters.to_api(), sort_keys=True), ""],
        ["generated_at", "Generated", _plain(report.generated_at), ""],
        *[[f.key, f.label, "" if _plain(f.value) is None else _plain(f.value), f.unit] for f in report.figures],
        *[[f"note_{i + 1}", "Note", note, ""] for i, note in enumerate(report.notes)],
    ]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("summary.csv", _csv_bytes(["key", "label", "value", "unit"], summary))
        for t in report.tables:
            columns = [str(c) for c in t.frame.columns]
            rows = [["" if v is None else v for v in r.values()] for r in _rows(t.frame)]
            zf.writestr(f"{t.name}.csv", _csv_bytes(columns, rows))
    return buf.getvalue()


def write_report(report: Report, formats: list[ReportFormat], output_dir: Path, prefix: str = "") -> list[Path]:
    """Write ``report`` in each format into ``output_dir`` (created if missing) and return the paths.

    Files are written to a temporary name first and renamed, so a reader never sees a partial file.
    """
    from .pdf import render_pdf  # pdf.py formats its cells with this module's helpers

    output_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in dict.fromkeys(ReportFormat(f) for f in formats):
        data = {ReportFormat.HTML: render_html, ReportFormat.CSV: render_csv_zip,
                ReportFormat.JSON: render_json, ReportFormat.PDF: render_pdf}[fmt](report)  # fmt: skip
        path = output_dir / artifact_name(report, fmt, prefix)
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(data)
        partial.replace(path)
        paths.append(path)
    return paths
