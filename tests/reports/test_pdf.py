"""PDF output: opened with a PDF reader library (pypdf), pages and section titles checked; one page through pdftoppm."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pypdf import PdfReader

from game_analytics.api.scheduledreport import EmailDelivery, ReportFilters, ReportType, SMTPServer
from game_analytics.reports.delivery import RunSummary, build_email
from game_analytics.reports.model import ChartSpec, Figure, Report, ReportPeriod, Table
from game_analytics.reports.pdf import COLUMNS_PER_PAGE, ROWS_PER_PAGE, render_pdf, table_pages
from game_analytics.workers import report_cli


def _report() -> Report:
    period = ReportPeriod(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 8, tzinfo=UTC))
    daily = pd.DataFrame({"bucket": pd.date_range("2024-01-01", periods=7), "players": [3, 4, 5, 4, 6, 7, 2],
                          "share": [0.1, np.nan, 0.3, 0.2, 0.5, 0.6, 0.4]})  # fmt: skip
    long = pd.DataFrame({"player_id": [f"p{i}" for i in range(ROWS_PER_PAGE + 5)],
                         "spend": np.arange(ROWS_PER_PAGE + 5, dtype=float)})  # fmt: skip
    wide = pd.DataFrame({"cohort": ["2024-01"], **{f"age_{i}": [0.5] for i in range(COLUMNS_PER_PAGE + 2)}})
    return Report(ReportType.PLAYER_ACTIVITY, "Player activity", period, ReportFilters(games=["chess"]),
                  datetime(2024, 1, 8, tzinfo=UTC), [Figure("n", "Active players", 7, "players")],
                  [Table("daily", "Daily players", daily, "One row per day.", ("share",)),
                   Table("top", "Top spenders", long), Table("wide", "Cohort matrix", wide),
                   Table("empty", "Nothing here", pd.DataFrame(columns=["x", "y"]))],
                  [ChartSpec("daily", "Players per day", "line", "daily", "bucket", ("players",), "Day (UTC)",
                             "Players")], ["timestamps have day resolution"])  # fmt: skip


def _texts(data: bytes) -> list[str]:
    reader = PdfReader(BytesIO(data))
    return [page.extract_text() for page in reader.pages]


def test_pdf_pages_and_section_titles() -> None:
    report = _report()
    data = render_pdf(report)
    assert data.startswith(b"%PDF-")
    reader = PdfReader(BytesIO(data))
    assert reader.metadata.title == "Player activity" and reader.metadata.creator == "game-analytics"
    texts = _texts(data)
    # title, daily, its chart, top spenders x2 (rows), cohort matrix x2 (columns), empty
    assert len(texts) == 8
    assert "Player activity" in texts[0] and "Active players" in texts[0] and "7 players" in texts[0]
    assert "timestamps have day resolution" in texts[0] and "games: chess" in texts[0]
    assert "Daily players" in texts[1] and "One row per day." in texts[1] and "2024-01-03" in texts[1]
    assert "30.0 %" in texts[1]  # percent column as in HTML
    assert "Players per day" in texts[2]
    assert "Top spenders" in texts[3] and "(continued)" in texts[4] and f"p{ROWS_PER_PAGE + 4}" in texts[4]
    assert f"p{ROWS_PER_PAGE}" not in texts[3]
    assert "cohort" in texts[5] and "cohort" in texts[6] and f"age_{COLUMNS_PER_PAGE + 1}" in texts[6]
    assert "Nothing here" in texts[7] and "no rows in this period" in texts[7]
    assert render_pdf(report) == data  # deterministic: creation date is generated_at


def test_table_pages_split_rows_then_columns() -> None:
    pages = list(table_pages(_report().tables[2]))
    assert [len(cols) for cols, _ in pages] == [COLUMNS_PER_PAGE, 4] and all(c[0] == "cohort" for c, _ in pages)
    assert list(table_pages(Table("e", "E", pd.DataFrame()))) == [([], [])]


def test_chart_without_its_table_fails() -> None:
    report = _report()
    report.charts.append(ChartSpec("x", "X", "line", "missing", "a", ("b",), "A", "B"))
    with pytest.raises(KeyError, match="no table missing"):
        render_pdf(report)


def test_pdf_is_attached_to_the_email(tmp_path: Path) -> None:
    path = tmp_path / "r-playerActivity-20240108T000000Z.pdf"
    path.write_bytes(render_pdf(_report()))
    config = EmailDelivery.model_validate({"to": ["leads@example.com"], "from": "reports@example.com",
                                           "smtp": SMTPServer(host="smtp.example.com")})  # fmt: skip
    msg = build_email(config, RunSummary("r", "games", [_report()], {}, [path]))
    (attachment,) = list(msg.iter_attachments())
    assert attachment.get_content_type() == "application/pdf" and attachment.get_filename() == path.name
    assert attachment.get_content() == path.read_bytes()


def test_every_report_type_as_pdf(tmp_path: Path, sample_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI writes one PDF per report type on the CDNOW sample; each has a page per table and chart."""
    out = Path(os.environ.get("GA_PDF_OUT", tmp_path))
    # dashboard: test_dashboard_report.py; funnel (needs spec.funnel): test_funnel.py
    types = [t.value for t in ReportType if t not in (ReportType.DASHBOARD, ReportType.FUNNEL)]
    code = report_cli.cli_main(["run", *[a for t in types for a in ("--type", t)], "--format", "pdf", "--format", "json",
                            "--as-of", "latest", "--lookback", "90d", "--output", str(out), "--dsn", sample_dsn])
    assert code == 0
    paths = [Path(p) for p in capsys.readouterr().out.split() if p.endswith(".pdf")]
    assert [p.name.split("-")[1] for p in paths] == types
    for path in paths:
        texts = _texts(path.read_bytes())
        doc = json.loads(path.with_suffix(".json").read_text())
        assert doc["title"] in texts[0] and "Key figures" in texts[0]
        sections = [name for name in doc["tables"] if name != "leaderboard_chart"]
        assert len(texts) >= 1 + len(sections), path.name
    assert shutil.which("pdftoppm"), "pdftoppm is not installed: make test installs poppler-utils (hack/install-debs.sh)"
    prefix = out / "page"
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "2", "-l", "2", str(paths[0]), str(prefix)], check=True)
    (png,) = out.glob("page*.png")
    image = Image.open(png)
    assert image.format == "PNG" and image.width > image.height  # A4 landscape
