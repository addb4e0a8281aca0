"""Draw one dashboard panel with matplotlib into a rectangle of a page, in the panel's type.

* ``timeseries``: one line per series, the legend under the plot, the value axis in the panel's unit;
* ``stat``: the last value of each series in large type, coloured by the panel's thresholds;
* ``bargauge``: one horizontal bar per series (or bucket), coloured by the thresholds, the value at its end;
* ``table``: the rows of the panel's table (label columns, then the values in the panel's unit);
* ``heatmap``: one row per series over time, with a colour bar in the panel's unit.

Every panel gets a frame, its title and its description (wrapped to two lines). A panel without data shows
"no data"; a failed one shows its error; a type this module does not draw shows "not rendered".
"""

from __future__ import annotations

import math
import textwrap
from typing import Any

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch
from matplotlib.ticker import FuncFormatter, MaxNLocator

from .fetch import PanelData, Series
from .grafana import format_value, threshold_color

__all__ = ["RENDERERS", "draw_panel", "unit_of"]

_PALETTE = ["#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1", "#ba43a9", "#705da0", "#508642",
            "#cca300", "#447ebc", "#c15c17", "#890f02", "#0a437c", "#6d1f62", "#584477"]
#: legend entries shown under a time series (the rest are counted)
MAX_LEGEND = 8
_MUTED = "#777777"


def unit_of(panel: dict[str, Any]) -> str:
    """The panel's unit (``fieldConfig.defaults.unit``, default ``short``)."""
    return ((panel.get("fieldConfig") or {}).get("defaults") or {}).get("unit") or "short"


def _last(series: Series) -> float:
    finite = series.values[np.isfinite(series.values)]
    return float(finite[-1]) if finite.size else math.nan


def _axis_formatter(unit: str) -> FuncFormatter:
    return FuncFormatter(lambda v, _pos: format_value(v, unit))


def _times(series: Series) -> pd.DatetimeIndex:
    return pd.to_datetime(series.times, unit="s", utc=True)


def _time_axis(ax: Any, span_seconds: float, time_range: tuple[float, float] | None = None) -> None:
    """Date ticks on whole seconds, minutes, hours or days (never two ticks with one label); with ``time_range``
    (Unix seconds) the axis spans the dashboard's time range, as Grafana's does, not only the data."""
    if time_range is not None and time_range[1] > time_range[0]:
        span_seconds = time_range[1] - time_range[0]
        ax.set_xlim(*mdates.date2num(pd.to_datetime(list(time_range), unit="s", utc=True)))
    if span_seconds <= 3600:
        fmt = "%H:%M:%S"
    elif span_seconds <= 2 * 86_400:
        fmt = "%H:%M"
    else:
        fmt = "%m-%d %H:%M" if span_seconds <= 14 * 86_400 else "%Y-%m-%d"
    locator = mdates.AutoDateLocator(tz="UTC", minticks=3, maxticks=6)
    locator.intervald[mdates.SECONDLY] = [1, 2, 5, 10, 15, 30]  # no sub-second ticks: the labels show seconds
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.DateFormatter(fmt, tz="UTC"))


def _value_limits(ax: Any, panel: dict, series: list[Series]) -> None:
    """Grafana's axis bounds: ``min``/``max`` of the field config, else the soft bounds (``custom.axisSoftMin``/
    ``axisSoftMax``) widened to the data; a flat line gets some room above it."""
    defaults = (panel.get("fieldConfig") or {}).get("defaults") or {}
    custom = defaults.get("custom") or {}
    values = np.concatenate([s.values[np.isfinite(s.values)] for s in series])
    low, high = float(values.min()), float(values.max())
    if defaults.get("min") is not None:
        low = float(defaults["min"])
    elif custom.get("axisSoftMin") is not None:
        low = min(low, float(custom["axisSoftMin"]))
    if defaults.get("max") is not None:
        high = float(defaults["max"])
    elif custom.get("axisSoftMax") is not None:
        high = max(high, float(custom["axisSoftMax"]))
    if high <= low:
        high = low + (abs(low) or 1.0)
    margin = 0.0 if defaults.get("max") is not None else 0.08 * (high - low)
    below = 0.03 * (high - low) if defaults.get("min") is None and values.min() <= low else 0.0
    ax.set_ylim(low - below, high + margin)  # a line on the lower bound stays visible above the axis


def _timeseries(fig: Figure, box: tuple[float, float, float, float], panel: dict, data: PanelData,
                time_range: tuple[float, float] | None = None) -> None:
    x, y, w, h = box
    unit = unit_of(panel)
    series = [s for s in data.series if np.isfinite(s.values).any()]
    shown = [textwrap.shorten(s.name, 40, placeholder="…") for s in series[:MAX_LEGEND]]
    entry_inches = 0.35 + 0.055 * max(len(n) for n in shown)  # line sample + text at 5.8 pt
    columns = max(1, min(len(shown), int(w * 11.69 / entry_inches)))
    legend_lines = math.ceil(len(shown) / columns)
    legend_h = min(0.4 * h, 0.0165 * legend_lines + 0.004)
    left = 0.07  # room for the value axis' tick labels (about 0.8 inch)
    ax = fig.add_axes((x + left, y + legend_h + 0.03, w - left - 0.026, h - legend_h - 0.04))  # room for the last time label
    spans = []
    for i, s in enumerate(series):
        spans.append(s.times.max() - s.times.min() if s.times.size else 0)
        style = {"marker": "o", "markersize": 2.5} if len(s.times) < 10 else {}  # a few points stay visible
        ax.plot(_times(s), s.values, color=_PALETTE[i % len(_PALETTE)], linewidth=1.1, label=s.name, **style)
    _value_limits(ax, panel, series)
    ax.yaxis.set_major_formatter(_axis_formatter(unit))
    ax.yaxis.set_major_locator(MaxNLocator(4))
    _time_axis(ax, max(spans or [0]), time_range)
    ax.tick_params(labelsize=6, length=2)
    ax.grid(True, color="#e5e5e5", linewidth=0.5)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    handles = ax.get_legend_handles_labels()[0][:MAX_LEGEND]
    if handles:
        extra = len(series) - MAX_LEGEND
        if extra > 0:
            shown[-1] += f"   (+{extra} more)"
        fig.legend(handles, shown, loc="lower left", bbox_to_anchor=(x + 0.005, y + 0.003), ncol=columns,
                   fontsize=5.8, frameon=False, handlelength=1.2, columnspacing=1.2, borderaxespad=0.0)


def _stat(fig: Figure, box: tuple[float, float, float, float], panel: dict, data: PanelData,
          time_range: tuple[float, float] | None = None) -> None:
    x, y, w, h = box
    unit = unit_of(panel)
    series = [s for s in data.series if np.isfinite(s.values).any()][:6]
    cell = w / len(series)
    size = max(9.0, min(26.0, h * 8.27 * 72 * 0.45, cell * 11.69 * 72 / 6))
    for i, s in enumerate(series):
        value = _last(s)
        cx = x + cell * (i + 0.5)
        fig.text(cx, y + h * 0.45, format_value(value, unit), fontsize=size, fontweight="bold", ha="center",
                 va="center", color=threshold_color(value, panel.get("fieldConfig") or {}))  # fmt: skip
        if len(series) > 1:
            fig.text(cx, y + h * 0.08, textwrap.shorten(s.name, 30, placeholder="…"), fontsize=6, ha="center",
                     color=_MUTED)  # fmt: skip


def _bargauge(fig: Figure, box: tuple[float, float, float, float], panel: dict, data: PanelData,
              time_range: tuple[float, float] | None = None) -> None:
    x, y, w, h = box
    unit = unit_of(panel)
    series = [s for s in data.series if np.isfinite(s.values).any()]
    values = np.array([_last(s) for s in series])
    ax = fig.add_axes((x + 0.12 * w, y + 0.02, 0.78 * w, h - 0.03))
    labels = [textwrap.shorten(s.name, 24, placeholder="…") for s in series]
    positions = np.arange(len(series))[::-1]
    colors = [threshold_color(v, panel.get("fieldConfig") or {}) for v in values]
    ax.barh(positions, values, color=colors, height=0.7)
    ax.set_yticks(positions, labels, fontsize=6)
    top = float(np.nanmax(values)) if values.size and np.nanmax(values) > 0 else 1.0
    ax.set_xlim(0, top * 1.25)
    for pos, value in zip(positions, values, strict=True):
        ax.text(value, pos, " " + format_value(value, unit), va="center", fontsize=6)
    ax.xaxis.set_visible(False)
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    ax.tick_params(length=0)


def _cell(value: Any, column: str, unit: str) -> str:
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return format_value(float(value), unit if column.startswith("Value") else "none")
    if isinstance(value, pd.Timestamp):
        return f"{value:%Y-%m-%d %H:%M}"
    return textwrap.shorten(str(value), 28, placeholder="…") if value is not None else ""


def _table(fig: Figure, box: tuple[float, float, float, float], panel: dict, data: PanelData,
           time_range: tuple[float, float] | None = None) -> None:
    x, y, w, h = box
    unit = unit_of(panel)
    frame = pd.concat(data.tables, ignore_index=True) if len(data.tables) > 1 else data.tables[0]
    fit = max(1, int(h * 8.27 / 0.16) - 1)  # rows of about 0.16 inch
    shown = frame.head(fit)
    ax = fig.add_axes((x + 0.005, y + 0.012, w - 0.01, h - 0.015))
    ax.axis("off")
    cells = [[_cell(v, str(c), unit) for c, v in zip(frame.columns, row, strict=True)]
             for row in shown.itertuples(index=False)]  # fmt: skip
    grid = ax.table(cellText=cells, colLabels=[str(c) for c in frame.columns], loc="upper left", cellLoc="left")
    grid.auto_set_font_size(False)
    grid.set_fontsize(6)
    grid.auto_set_column_width(list(range(len(frame.columns))))
    row_h = 0.16 / (h * 8.27)
    for (r, _c), cell in grid.get_celld().items():
        cell.set_height(min(row_h, 1 / (len(cells) + 1)))
        cell.set_edgecolor("#d8dde3")
        cell.set_linewidth(0.4)
        if r == 0:
            cell.set_facecolor("#eef2f7")
            cell.get_text().set_fontweight("bold")
    if len(frame) > fit:
        fig.text(x + w - 0.006, y + 0.003, f"{len(frame) - fit} more rows", fontsize=5.5, color=_MUTED, ha="right")


def _heatmap(fig: Figure, box: tuple[float, float, float, float], panel: dict, data: PanelData,
             time_range: tuple[float, float] | None = None) -> None:
    x, y, w, h = box
    unit = unit_of(panel)
    series = [s for s in data.series if np.isfinite(s.values).any()]
    times = np.unique(np.concatenate([s.times for s in series]))
    matrix = np.full((len(series), len(times)), np.nan)
    for i, s in enumerate(series):
        matrix[i, np.searchsorted(times, s.times)] = s.values
    ax = fig.add_axes((x + 0.1 * w, y + 0.035, 0.8 * w, h - 0.045))
    start, end = mdates.date2num(pd.to_datetime([times[0], times[-1]], unit="s", utc=True))
    image = ax.imshow(matrix, aspect="auto", cmap="YlOrRd", interpolation="nearest",
                      extent=(start, end if end > start else start + 1e-3, len(series) - 0.5, -0.5))  # fmt: skip
    ax.set_yticks(range(len(series)), [textwrap.shorten(s.name, 20, placeholder="…") for s in series], fontsize=6)
    ax.xaxis_date(tz="UTC")
    _time_axis(ax, float(times[-1] - times[0]), time_range)
    ax.tick_params(labelsize=6, length=2)
    bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.01, format=_axis_formatter(unit))
    bar.ax.tick_params(labelsize=5.5)


#: panel type -> its drawing function (the types this module renders)
RENDERERS = {"timeseries": _timeseries, "stat": _stat, "bargauge": _bargauge, "table": _table, "heatmap": _heatmap}


def _message(fig: Figure, box: tuple[float, float, float, float], text: str, color: str) -> None:
    x, y, w, h = box
    width = max(20, int(w * 11.69 * 11))
    fig.text(x + w / 2, y + h / 2, textwrap.fill(textwrap.shorten(text, 3 * width, placeholder="…"), width),
             ha="center", va="center", fontsize=8, color=color)  # fmt: skip


def draw_panel(fig: Figure, rect: tuple[float, float, float, float], panel: dict[str, Any], status: str,
               data: PanelData | None, detail: str = "", time_range: tuple[float, float] | None = None) -> None:
    """Draw ``panel`` into ``rect`` = ``(x, y, width, height)`` in figure fractions.

    ``status`` is ``ok`` (draw ``data`` in the panel's type), ``no data``, ``error`` (``detail`` is shown) or
    ``unsupported``. ``time_range`` (Unix seconds) is the dashboard's: the time axes of time series and heat maps
    span it, whatever part of it has data.
    """
    x, y, w, h = rect
    fig.add_artist(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0,rounding_size=0.004", linewidth=0.6,
                                  edgecolor="#c9d1db", facecolor="white", transform=fig.transFigure,
                                  zorder=-1))  # fmt: skip
    title_size = 8.5
    fig.text(x + 0.006, y + h - 0.008, panel.get("title", ""), fontsize=title_size, fontweight="bold", va="top")
    top = 0.028
    description = panel.get("description") or ""
    if description:
        chars = max(20, int(w * 11.69 * 72 / 3.3))
        lines = textwrap.wrap(description, chars)
        if len(lines) > 2:
            lines = [lines[0], textwrap.shorten(" ".join(lines[1:]), chars, placeholder="…")]
        fig.text(x + 0.006, y + h - 0.030, "\n".join(lines), fontsize=5.8, color=_MUTED, va="top", linespacing=1.2)
        top += 0.0125 * len(lines) + 0.006
    body = (x, y, w, max(h - top, 0.02))
    if status == "ok" and data is not None:
        RENDERERS[panel["type"]](fig, body, panel, data, time_range)
    elif status == "no data":
        _message(fig, body, "no data", _MUTED)
    elif status == "unsupported":
        _message(fig, body, f"panel type {panel.get('type')!r} is not rendered in reports", "#b26b00")
    else:
        _message(fig, body, f"error: {detail}", "#c4162a")
