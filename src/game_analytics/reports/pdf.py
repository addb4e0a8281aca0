"""Write a :class:`~game_analytics.reports.model.Report` as PDF with matplotlib's PDF backend (no system libraries).

The same content as the HTML view (:mod:`game_analytics.reports.render`), laid out on A4 landscape pages:

* **title page**: the report title, period, filters, generation time, the key figures (label, value with unit)
  and the notes;
* **the report's own pages** (:attr:`~game_analytics.reports.model.Report.pages`, e.g. a dashboard's panels);
* **one section per table**, in the report's table order: the table title as the page heading (``<title>`` or
  ``<title> (continued)``), its description, the rows as a matplotlib table (the cells formatted as in HTML;
  at most :data:`ROWS_PER_PAGE` rows and :data:`COLUMNS_PER_PAGE` columns a page; wider tables repeat their first
  column on every page), then every chart drawn from that table as a vector figure of its own page. A table only
  used by a chart (``leaderboard_chart``) shows its chart alone, as in HTML.

Text is embedded as TrueType (``pdf.fonttype`` 42), so PDF readers can search and extract it. Document metadata:
``Title`` = report title, ``Subject`` = period, ``Creator`` = ``game-analytics``; the creation date is the
report's ``generated_at``, so the same report renders to the same bytes.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Iterator

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from .charts import draw_chart
from .model import Report, Table

__all__ = ["COLUMNS_PER_PAGE", "ROWS_PER_PAGE", "render_pdf", "table_pages"]

#: A4 landscape, inches.
PAGE_SIZE = (11.69, 8.27)
#: Most table rows on one page.
ROWS_PER_PAGE = 24
#: Most table columns on one page (the first column is repeated on each page of a wider table).
COLUMNS_PER_PAGE = 9
#: Longest cell text, in characters (longer values end in "…"; the CSV/JSON outputs keep them whole).
MAX_CELL_CHARS = 32
#: Longest key-figure label on the title page, in characters (the value column starts after it).
LABEL_CHARS = 44
#: Characters per line of the notes on the title page.
NOTE_WIDTH = 150
_LINE = 0.0235  # height of a 9 pt line at line spacing 1.4, as a fraction of the page height
_HEADER_COLOR = "#dfe8f5"
_STRIPE_COLOR = "#f5f7fa"


def _clip(text: str, limit: int = MAX_CELL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _page(title: str, subtitle: str = "") -> Figure:
    fig = Figure(figsize=PAGE_SIZE)
    FigureCanvasAgg(fig)
    fig.text(0.05, 0.94, title, fontsize=17, fontweight="bold", va="top")
    if subtitle:
        fig.text(0.05, 0.895, subtitle, fontsize=10, color="#444", va="top", wrap=True)
    return fig


def _title_pages(report: Report, filters: str) -> Iterator[Figure]:
    fig = _page(report.title, f"{report.period.label()}   ·   generated {report.generated_at:%Y-%m-%d %H:%M:%S} UTC")
    fig.text(0.05, 0.85, f"Filters: {filters}", fontsize=10, color="#444", va="top")
    y = 0.78
    if report.figures:
        fig.text(0.05, y, "Key figures", fontsize=13, fontweight="bold", va="top")
        y -= 0.045
        per_column = 16
        for i, f in enumerate(report.figures[: 2 * per_column]):
            x = 0.05 if i < per_column else 0.52
            row_y = y - 0.03 * (i % per_column)
            fig.text(x, row_y, _clip(f.label, LABEL_CHARS), fontsize=10, va="top")
            fig.text(x + 0.42, row_y, f.formatted(), fontsize=10, fontweight="bold", va="top", ha="right")
        y -= 0.03 * min(len(report.figures), per_column) + 0.03
        if len(report.figures) > 2 * per_column:
            fig.text(0.05, y, f"… and {len(report.figures) - 2 * per_column} more figures (see the JSON output)",
                     fontsize=9, color="#777", va="top")  # fmt: skip
            y -= 0.04
    if report.notes:
        lines = [line for n in report.notes for line in textwrap.wrap(n, NOTE_WIDTH, initial_indent="• ",
                                                                     subsequent_indent="   ")]  # fmt: skip
        heading = "Notes"
        while lines:
            if y < 0.2:  # no room for a heading and a few lines: continue on a page of its own
                yield fig
                fig, y, heading = _page(f"{report.title}: notes (continued)"), 0.85, ""
            if heading:
                fig.text(0.05, y, heading, fontsize=13, fontweight="bold", va="top")
                y -= 0.045
            fit = max(1, int((y - 0.05) / _LINE))
            fig.text(0.05, y, "\n".join(lines[:fit]), fontsize=9, va="top", linespacing=1.4)
            lines, y = lines[fit:], 0.0
    yield fig


def table_pages(table: Table) -> Iterator[tuple[list[str], list[list[str]]]]:
    """The pages of ``table``: ``(column names, rows of formatted cells)`` per page, rows first then columns.

    An empty table gives one page with its header and no rows.
    """
    from .render import _cell

    frame = table.frame
    columns = [str(c) for c in frame.columns]
    cells = [[_clip(_cell(v, str(c), str(c) in table.percent_columns)) for c, v in zip(frame.columns, row, strict=True)]
             for row in frame.itertuples(index=False)]  # fmt: skip
    rest = list(range(1, len(columns)))
    step = COLUMNS_PER_PAGE - 1
    groups = [[0, *rest[i : i + step]] for i in range(0, len(rest), step)] or [[0] if columns else []]
    for start in range(0, max(len(cells), 1), ROWS_PER_PAGE):
        for group in groups:
            yield [columns[i] for i in group], [[r[i] for i in group] for r in cells[start : start + ROWS_PER_PAGE]]


def _table_figure(table: Table, columns: list[str], rows: list[list[str]], continued: bool, total_rows: int) -> Figure:
    title = table.title + (" (continued)" if continued else "")
    fig = _page(title, table.description)
    ax = fig.add_axes((0.05, 0.05, 0.9, 0.78))
    ax.axis("off")
    if not rows:
        ax.text(0.5, 0.6, "no rows in this period", ha="center", va="center", fontsize=14, color="#777",
                transform=ax.transAxes)  # fmt: skip
        if not columns:
            return fig
    numeric = [bool(rows) and all(_numeric(r[i]) for r in rows if r[i]) for i in range(len(columns))]
    body = rows or [[""] * len(columns)]
    grid = ax.table(cellText=body, colLabels=columns, loc="upper left", cellLoc="left", colLoc="left")
    grid.auto_set_font_size(False)
    grid.set_fontsize(10.5)
    grid.auto_set_column_width(list(range(len(columns))))
    for (r, c), cell in grid.get_celld().items():
        cell.set_edgecolor("#c8cfd8")
        cell.set_linewidth(0.5)
        cell.set_height(0.032)
        if r == 0:
            cell.set_facecolor(_HEADER_COLOR)
            cell.get_text().set_fontweight("bold")
        elif r % 2 == 0:
            cell.set_facecolor(_STRIPE_COLOR)
        if r > 0 and numeric[c]:
            cell.get_text().set_horizontalalignment("right")
            cell.PAD = 0.05
    fig.text(0.95, 0.02, f"{total_rows:,} rows", fontsize=8, color="#777", ha="right")
    return fig


def _numeric(text: str) -> bool:
    stripped = text.replace(",", "").replace(" %", "").replace("-", "", 1)
    return stripped.replace(".", "", 1).isdigit()


def _section_figures(report: Report, table: Table) -> Iterator[Figure]:
    if table.name != "leaderboard_chart":
        for i, (columns, rows) in enumerate(table_pages(table)):
            yield _table_figure(table, columns, rows, continued=i > 0, total_rows=len(table.frame))
    for spec in report.charts:
        if spec.table == table.name:
            fig = draw_chart(spec, table.frame)
            fig.set_size_inches(*PAGE_SIZE)  # every page A4 landscape; the constrained layout fills it
            fig.get_layout_engine().set(w_pad=0.6, h_pad=0.5)  # page margins, inches
            yield fig


def _filters(report: Report) -> str:
    from .render import _filters_text

    return _filters_text(report)


def render_pdf(report: Report) -> bytes:
    """The PDF document of ``report`` (see the module docstring) as bytes.

    Raises:
        KeyError: a chart names a table the report lacks, or a column its table lacks (as
            :func:`~game_analytics.reports.charts.draw_chart`).
    """
    known = {t.name for t in report.tables}
    for spec in report.charts:
        if spec.table not in known:
            raise KeyError(f"chart {spec.name}: the report has no table {spec.table}")
    buf = io.BytesIO()
    metadata = {"Title": report.title, "Subject": report.period.label(), "Creator": "game-analytics",
                "CreationDate": report.generated_at}  # fmt: skip
    # "$" in titles and notes is text, not TeX math
    rc = {"pdf.fonttype": 42, "text.parse_math": False}
    with matplotlib.rc_context(rc), PdfPages(buf, metadata=metadata) as pdf:
        for fig in _title_pages(report, _filters(report)):
            pdf.savefig(fig)
        for page in report.pages:  # pages the report draws itself (dashboard panel grids)
            pdf.savefig(page.draw())
        for table in report.tables:
            for fig in _section_figures(report, table):
                pdf.savefig(fig)
    return buf.getvalue()
