"""The backtest as one self-contained HTML page: the summary, a timeline chart and the incident table.

The chart (matplotlib's object-oriented API on the Agg canvas, never ``pyplot``, as :mod:`game_analytics.reports.
charts`) has two panels over the backtested span: on top one bar per incident from ``firing_at`` to its resolution
(or the end of the span) with a tick at every page; below, pages per ISO week.  The PNG is embedded as a
``data:`` URI, so the page needs no other file.  Every string from the rule or the store is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
from collections import Counter
from datetime import datetime, timedelta

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import date2num
from matplotlib.figure import Figure

from game_analytics.alerting.backtest import Backtest

__all__ = ["render_html", "timeline_png"]

_COLOR, _PAGE = "#2f6db5", "#c0392b"


def timeline_png(result: Backtest) -> bytes:
    """The timeline chart of ``result`` as PNG bytes (see the module docstring); a span without incidents says so."""
    fig = Figure(figsize=(10, 4.8), dpi=100)
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    start, end = date2num(result.start), date2num(result.end)
    for incident in result.incidents:
        left = date2num(incident.firing_at)
        right = date2num(incident.resolved_at or result.end)
        color = _COLOR if incident.pages else "#aaaaaa"
        top.barh(0, max(right - left, (end - start) / 800), left=left, height=0.6, color=color)
    page_times = result.page_times
    if page_times:
        top.plot([date2num(t) for t in page_times], [0.55] * len(page_times), "v", color=_PAGE, markersize=6,
                 label=f"page ({len(page_times)})")  # fmt: skip
        top.legend(loc="upper right", fontsize=8, frameon=False)
    else:
        top.text(0.5, 0.5, "no pages in this span", ha="center", va="center", color="#777", transform=top.transAxes)
    top.set_yticks([])
    top.set_ylim(-0.6, 0.9)
    top.set_title(f"AlertRule {result.rule} ({result.detector}): firing (bars) and pages (triangles)")
    weeks: Counter[datetime] = Counter()
    for t in page_times:
        day = t.replace(hour=0, minute=0, second=0, microsecond=0)
        weeks[day - timedelta(days=day.weekday())] += 1
    if weeks:
        bottom.bar([date2num(w) for w in weeks], list(weeks.values()), width=7, align="edge", color=_PAGE)
    bottom.set_ylabel("pages / week")
    bottom.set_xlim(start, end if end > start else start + 1)
    bottom.xaxis_date()
    fig.autofmt_xdate()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _t(value: str | None) -> str:
    return html.escape(value.replace("T", " ")[:19]) if value else "-"


def _shown(subjects: list[str], n: int = 5) -> str:
    return ", ".join(subjects[:n]) + (f" (+{len(subjects) - n})" if len(subjects) > n else "")


def render_html(result: Backtest) -> str:
    """The whole page for ``result``: summary figures, the chart, the incident table and the top subjects."""
    d = result.to_dict()
    e = html.escape
    busiest = d["busiest_hour_of_week"]
    busy = "-" if busiest is None else f"{busiest['weekday']} {busiest['hour_utc']:02d}:00 UTC ({busiest['pages']} pages)"
    png = base64.b64encode(timeline_png(result)).decode()
    rows = "\n".join(
        f"<tr><td>{_t(i['first_page'])}</td><td>{_t(i['resolved_at'])}</td><td class=n>{i['pages']}</td>"
        f"<td>{e(_shown(i['subjects']))}</td></tr>"
        for i in d["timeline"] if i["pages"]
    )  # fmt: skip
    subjects = "\n".join(f"<tr><td>{e(s['subject'])}</td><td class=n>{s['incidents']}</td>"
                         f"<td class=n>{s['steps']}</td></tr>" for s in d["top_subjects"])  # fmt: skip
    route = d["route"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Backtest {e(result.rule)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:left}}td.n{{text-align:right}}
dl{{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}}dt{{font-weight:bold}}</style></head>
<body><h1>Backtest of AlertRule {e(result.rule)}</h1>
<dl><dt>detector</dt><dd>{e(result.detector)}</dd>
<dt>span</dt><dd>{_t(d['from'])} to {_t(d['to'])} UTC, step {d['step_seconds']:g} s, {d['evaluated_steps']} steps</dd>
<dt>for</dt><dd>{d['for_seconds']:g} s</dd>
<dt>route</dt><dd>group_by {e(', '.join(route['group_by']))}; group_wait {e(route['group_wait'])}, group_interval
{e(route['group_interval'])}, repeat_interval {e(route['repeat_interval'])}</dd>
<dt>pages</dt><dd id="pages">{d['pages']}</dd>
<dt>incidents</dt><dd>{d['incidents']} paged, {d['unpaged_incidents']} resolved before group_wait</dd>
<dt>pages per week</dt><dd id="pages-per-week">{d['pages_per_week']:.2f}</dd>
<dt>busiest hour of week</dt><dd>{e(busy)}</dd></dl>
<img alt="timeline of firing incidents and pages" src="data:image/png;base64,{png}">
<h2>Incidents</h2>
<table><thead><tr><th>first page (UTC)</th><th>resolved (UTC)</th><th>pages</th><th>subjects</th></tr></thead>
<tbody>
{rows or '<tr><td colspan=4>no pages</td></tr>'}
</tbody></table>
<h2>Top subjects</h2>
<table><thead><tr><th>subject</th><th>paged incidents</th><th>firing steps flagged</th></tr></thead>
<tbody>
{subjects or '<tr><td colspan=3>-</td></tr>'}
</tbody></table>
</body></html>
"""
