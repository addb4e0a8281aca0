"""Draw :class:`~game_analytics.reports.model.ChartSpec` objects as PNG images with matplotlib.

Uses the object-oriented API (:class:`matplotlib.figure.Figure` with the Agg canvas) and never ``pyplot``: no
display, no global figure registry, safe in worker threads.  Every chart has a title and axis labels (with units,
as given by the spec); an empty table gives a chart saying "no data" rather than an error.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

from .model import ChartSpec, Report

__all__ = ["draw_chart", "render_chart", "render_charts"]

_WIDTH_IN, _HEIGHT_IN, _DPI = 9.0, 4.2, 100
_COLOR = "#2f6db5"
#: Most bars drawn in one bar chart (the first rows of the table).
MAX_BARS = 40


def _thousands(value: float, _pos: object) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 or value == int(value) else f"{value:,.2f}"


def _no_data(ax, spec: ChartSpec) -> None:  # type: ignore[no-untyped-def]
    ax.text(0.5, 0.5, "no data in this period", ha="center", va="center", fontsize=14, color="#777",
            transform=ax.transAxes)  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])


def _line(ax, spec: ChartSpec, frame: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    x = frame[spec.x]
    many = len(spec.y) > 1
    for col in spec.y:
        y = pd.to_numeric(frame[col], errors="coerce")
        style = {"linewidth": 2.5, "color": "black"} if col == "average" else {"linewidth": 1.6}
        if not many:
            style.setdefault("color", _COLOR)
        ax.plot(x, y, marker="o" if len(frame) <= 40 else None, markersize=3, label=col.replace("_", " "), **style)
    if spec.diagonal:
        ax.plot([0, 1], [0, 1], linestyle="--", color="#999", linewidth=1, label="equality")
    if many or spec.diagonal:
        ax.legend(fontsize=8, ncols=2 if len(spec.y) > 6 else 1, frameon=False)
    if spec.percent:
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        if spec.diagonal:
            ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    else:
        ax.yaxis.set_major_formatter(FuncFormatter(_thousands))
    if pd.api.types.is_datetime64_any_dtype(x):
        ax.figure.autofmt_xdate()
    elif pd.api.types.is_integer_dtype(x):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    ax.set_ylim(bottom=0)


def _bar(ax, spec: ChartSpec, frame: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    labels = frame[spec.x].astype(str).tolist()
    values = pd.to_numeric(frame[spec.y[0]], errors="coerce").fillna(0).to_numpy()
    colors = [_COLOR if v >= 0 else "#c0392b" for v in values]
    if spec.horizontal:
        pos = np.arange(len(labels))[::-1]  # first row on top
        ax.barh(pos, values, color=colors)
        ax.set_yticks(pos, labels, fontsize=8 if len(labels) > 15 else 9)
        ax.xaxis.set_major_formatter(FuncFormatter(_thousands))
        ax.grid(True, axis="x", alpha=0.3)
        if spec.zero_based:
            ax.axvline(0, color="#555", linewidth=0.8)
        else:
            ax.set_xlim(*_zoom(values))
    else:
        pos = np.arange(len(labels))
        ax.bar(pos, values, color=colors)
        rotate = len(labels) > 12 or max((len(s) for s in labels), default=0) > 8
        ax.set_xticks(pos, labels, rotation=45 if rotate else 0, ha="right" if rotate else "center", fontsize=8)
        ax.yaxis.set_major_formatter(FuncFormatter(_thousands))
        ax.grid(True, axis="y", alpha=0.3)
        if not spec.zero_based:
            ax.set_ylim(*_zoom(values))


def _zoom(values: np.ndarray) -> tuple[float, float]:
    """Axis limits around the data with a margin of 10 % of the range (at least 1)."""
    lo, hi = float(np.min(values)), float(np.max(values))
    pad = max((hi - lo) * 0.1, 1.0)
    return lo - pad, hi + pad


def _heatmap(ax, spec: ChartSpec, frame: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    values = frame[list(spec.y)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    masked = np.ma.masked_invalid(values)
    # Age 0 is 100 % by definition; scale the colours to the later ages so that their differences stay visible.
    later = values[:, 1:] if values.shape[1] > 1 else values
    vmax = float(np.nanmax(later)) * 1.15 if np.isfinite(later).any() and np.nanmax(later) > 0 else 1.0
    vmax = min(vmax, 1.0)
    image = ax.imshow(masked, aspect="auto", cmap="Blues", vmin=0, vmax=vmax, interpolation="nearest")
    rows, cols = values.shape
    ax.set_yticks(range(rows), frame[spec.x].astype(str).tolist(), fontsize=8)
    step = max(1, cols // 24)
    ax.set_xticks(range(0, cols, step), [str(i) for i in range(0, cols, step)], fontsize=8)
    if rows * cols <= 400:
        for r in range(rows):
            for c in range(cols):
                if not np.isnan(values[r, c]):
                    v = values[r, c]
                    ax.text(c, r, f"{100 * v:.0f}" if v < 0.995 else "100", ha="center", va="center", fontsize=7,
                            color="white" if v > 0.55 * vmax else "black")  # fmt: skip
    bar = ax.figure.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    bar.ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    bar.set_label("Share of cohort active (cell labels in %)", fontsize=8)


def draw_chart(spec: ChartSpec, frame: pd.DataFrame) -> Figure:
    """Draw ``spec`` from ``frame`` on a new :class:`~matplotlib.figure.Figure` (Agg canvas, 9 in wide, 100 dpi).

    The figure is what :func:`render_chart` saves as PNG and :mod:`game_analytics.reports.pdf` saves as a vector
    PDF page.

    Raises:
        KeyError: a column named by the spec is missing from ``frame``.
        ValueError: unknown chart kind.
    """
    missing = [c for c in (spec.x, *spec.y) if c not in frame.columns]
    if missing and not frame.empty:
        raise KeyError(f"chart {spec.name}: table {spec.table} has no column(s) {', '.join(missing)}")
    if spec.kind == "bar" and len(frame) > MAX_BARS:
        frame = frame.head(MAX_BARS)  # the table keeps every row; a chart of hundreds of bars is unreadable
    height = _HEIGHT_IN
    if spec.horizontal or spec.kind == "heatmap":
        height = min(max(2.4, 1.3 + 0.3 * len(frame)), 16.0)
    fig = Figure(figsize=(_WIDTH_IN, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(spec.title, fontsize=12, fontweight="bold")
    if frame.empty or missing or (spec.kind != "heatmap" and not len(spec.y)):
        _no_data(ax, spec)
    elif spec.kind == "line":
        _line(ax, spec, frame)
    elif spec.kind == "bar":
        _bar(ax, spec, frame)
    elif spec.kind == "heatmap":
        _heatmap(ax, spec, frame)
    else:
        raise ValueError(f"unknown chart kind {spec.kind!r}")
    if spec.horizontal:
        ax.set_xlabel(spec.ylabel)
        ax.set_ylabel(spec.xlabel)
    else:
        ax.set_xlabel(spec.xlabel)
        ax.set_ylabel(spec.ylabel)
    return fig


def render_chart(spec: ChartSpec, frame: pd.DataFrame) -> bytes:
    """Draw ``spec`` from ``frame`` (see :func:`draw_chart`) and return the PNG bytes.

    Raises:
        KeyError: a column named by the spec is missing from ``frame``.
        ValueError: unknown chart kind.
    """
    buf = io.BytesIO()
    draw_chart(spec, frame).savefig(buf, format="png")
    return buf.getvalue()


def render_charts(report: Report) -> dict[str, bytes]:
    """All charts of ``report``: chart name -> PNG bytes, in the report's chart order."""
    tables = {t.name: t.frame for t in report.tables}
    return {spec.name: render_chart(spec, tables[spec.table]) for spec in report.charts}
