"""Time a full player-activity report over the whole CDNOW log (69,659 purchases, 1997-01-01..1998-07-01).

Prints the time of each stage: building the report (SQL + pandas), drawing the charts, and writing HTML, CSV (zip)
and JSON; goal: the whole report in < 10 s.  Figures only, no assertions.  Starts its own throwaway PostgreSQL and
loads the log (``make data`` first) unless ``--dsn`` names a database that already holds it.

    .venv/bin/python benchmarks/bench_report.py [--repeat 3] [--dsn postgresql://...] [--type economicHealth]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import benchargs

from devtools.postgres import start_postgres
from game_analytics.api.scheduledreport import ReportFilters, ReportFormat, ReportType
from game_analytics.data import load_cdnow_master, purchase_events
from game_analytics.reports import ReportPeriod, build_report
from game_analytics.reports.charts import render_charts
from game_analytics.reports.render import render_csv_zip, render_html, render_json, write_report
from game_analytics.storage.engine import make_engine
from game_analytics.storage.migrate import upgrade
from game_analytics.workers.load import copy_events

PERIOD = ReportPeriod(datetime(1997, 1, 1, tzinfo=UTC), datetime(1998, 7, 1, tzinfo=UTC))


@contextlib.contextmanager
def _database(dsn: str | None) -> Iterator[str]:
    if dsn:
        yield dsn
        return
    server = start_postgres()
    try:
        url = server.create_database("bench_report")
        upgrade(url)
        t = time.perf_counter()
        result = copy_events(purchase_events(load_cdnow_master()), url)
        print(f"loaded {result.inserted:,} CDNOW purchase events in {time.perf_counter() - t:.1f} s")
        yield url
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--type", default=ReportType.PLAYER_ACTIVITY.value, choices=[t.value for t in ReportType])
    args = benchargs.parse(parser, None, {"repeat": 1})
    with _database(args.dsn) as dsn:
        engine = make_engine(dsn)
        stages: dict[str, list[float]] = {"build (SQL)": [], "charts": [], "html+csv+json": [], "total": []}
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            report = build_report(engine, args.type, PERIOD, ReportFilters())
            t1 = time.perf_counter()
            charts = render_charts(report)
            t2 = time.perf_counter()
            html, archive, doc = render_html(report, charts), render_csv_zip(report), render_json(report)
            t3 = time.perf_counter()
            for key, value in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t3 - t0), strict=True):
                stages[key].append(value)
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            paths = write_report(report, list(ReportFormat), Path(tmp))
            end_to_end = time.perf_counter() - t
            sizes = {p.suffix: p.stat().st_size for p in paths}
        engine.dispose()
    print(f"{args.type} report over {PERIOD.label()} (whole CDNOW log), {args.repeat} runs:")
    for key, values in stages.items():
        print(f"  {key:<14} median {statistics.median(values):6.2f} s   min {min(values):6.2f} s   (n={len(values)})")
    print(f"  write_report (html with charts + csv zip + json files): {end_to_end:.2f} s")
    print(f"  sizes: html {sizes['.html']:,} B, zip {sizes['.zip']:,} B, json {sizes['.json']:,} B;"
          f" html {len(html):,} B in memory, {len(charts)} charts, json {len(doc):,} B, zip {len(archive):,} B")
    print(f"  goal: total < 10 s -> {'met' if statistics.median(stages['total']) < 10 else 'NOT met'}")


if __name__ == "__main__":
    main()
