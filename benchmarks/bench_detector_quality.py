"""Detector quality: precision, recall, detection delay and false pages per week of every detector type, with
labelled anomalies planted into the real CDNOW log (game_analytics.alerting.plants / plants_series), and the
backtest of every shipped example AlertRule over the demo data.

A throwaway PostgreSQL holds the untouched store (CDNOW up to the end of the span plus the logins and gifts derived
from it) and one copy per worker-evaluated detector with its plants; a real Prometheus holds the PromQL detectors'
series, backfilled with promtool in two namespaces (planted, untouched).  Figures only, no assertions; the goals
(recall >= 0.95 at precision >= 0.9) are marked in the table.

The example AlertRules (examples/alertrule-*.yaml) are backtested over the span with the machinery of
``game-analytics alerts backtest`` (``alerting.cli.backtest_rule``): worker-evaluated ones over a store holding the demo's
data (``game-analytics load --dataset all``, Bundesliga and CDNOW, nothing planted; ``--via copy`` straight into
PostgreSQL where ``make demo`` publishes to the stream for its ingest worker),
PromQL-evaluated ones over the untouched series in Prometheus (derived from the same CDNOW log: the demo's
Prometheus holds only minutes of scrapes).  Every page there is a false page.

    .venv/bin/python benchmarks/bench_detector_quality.py [--from 1997-02-01] [--days 28] [--plants 20] [--json]
        [--record]

``--record`` writes the figures to ``src/game_analytics/alerting/detector_quality.yaml``, the measured quality
shipped with the package (AlertRule ``status.quality``, the security report; docs/backtest.md).  ``--quick``: 3
days, 3 plants per type (every type still gets at least one plant), ``--jobs 2``: the worker-evaluated
detectors measured in two processes while this one loads the demo data (the figures do not depend on it; the full
run keeps ``--jobs 1``, all in one process).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import benchargs

from devtools.monitoring_stack import Prometheus, _binary
from devtools.postgres import start_postgres
from game_analytics.alerting import measured, plants_series
from game_analytics.alerting import plants as event_plants
from game_analytics.alerting.backtest import Backtest
from game_analytics.alerting.cli import backtest_rule, load_alertrule
from game_analytics.alerting.harness import MEASURED, measure_promql, measure_worker
from game_analytics.alerting.quality import Quality
from game_analytics.api.alertrule import WORKER_EVALUATED
from game_analytics.data.datasets import load_cdnow_master
from game_analytics.data.events import purchase_events
from game_analytics.monitoring.promql import rule_id
from game_analytics.storage.engine import make_engine
from game_analytics.storage.migrate import upgrade
from game_analytics.workers import load as loader
from game_analytics.workers.load import copy_events

ROOT = Path(__file__).resolve().parents[1]
#: the throwaway PostgreSQL and Prometheus live in memory where there is a tmpfs: on a shared disk, creating the
#: stores and deleting their files afterwards took longer than the measurement (28 s of rmtree in a quick run)
SCRATCH = Path("/dev/shm")
#: the example backtest's step of a type the harness does not measure
EXAMPLE_STEP = timedelta(minutes=10)


def _fmt_delay(q: Quality) -> str:
    d = q.delay_summary()
    return "-" if d is None else f"{d[0] / 60:.1f} / {d[1] / 60:.1f}"


def table(rows: list[Quality]) -> str:
    """The printed table: one row per detector type."""
    head = (f"{'detector':<20} {'plants':>6} {'found':>5} {'precision':>9} {'recall':>6} {'delay min med/max':>17} "
            f"{'false pages/wk':>14}  goal")  # fmt: skip
    lines = [head, "-" * len(head)]
    for q in rows:
        goal = "met" if q.recall >= 0.95 and q.precision >= 0.9 else "MISSED"
        lines.append(f"{q.detector:<20} {q.plants:>6} {q.detected:>5} {q.precision:>9.3f} {q.recall:>6.3f} "
                     f"{_fmt_delay(q):>17} {q.false_pages_per_week:>14.2f}  {goal}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--from", dest="start", default="1997-02-01", help="start of the span (UTC date)")
    parser.add_argument("--days", type=int, default=28, help="length of the span in days")
    parser.add_argument("--plants", type=int, default=20, help="plants per detector (fewer if the span is short)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--record", action="store_true",
                        help="write the figures to the shipped measured quality (alerting/detector_quality.yaml)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="processes measuring the worker-evaluated detectors while this one loads the demo data "
                             "(1: all in this process, one after the other; the figures are the same with any --jobs)")
    args = benchargs.parse(parser, argv, {"days": 3, "plants": 3, "jobs": 2})
    start = datetime.fromisoformat(args.start).replace(tzinfo=UTC)
    end = start + timedelta(days=args.days)
    started = time.perf_counter()
    mark = [started]

    def phase(name: str) -> None:
        now = time.perf_counter()
        print(f"  [{name}: {now - mark[0]:.1f} s]")
        mark[0] = now

    base = [e for e in purchase_events(load_cdnow_master()) if e["occurred_at"] <= end]
    derived = event_plants.background(base)
    phase("load CDNOW")
    print(f"span {start:%Y-%m-%d} .. {end:%Y-%m-%d} ({args.days} days); {len(base)} CDNOW purchases up to its end, "
          f"{len(derived)} derived logins and gifts")  # fmt: skip
    where = SCRATCH if SCRATCH.is_dir() else None
    scratch = Path(tempfile.mkdtemp(prefix="ga-quality-", dir=where))
    pg_dir = Path(tempfile.mkdtemp(prefix="ga-quality-pg-", dir=where))  # its own: chowned to the postgres user
    server = start_postgres(pg_dir)
    rows: list[Quality] = []
    engines = []
    stores = []  # with --jobs > 1: measure_in_process arguments of each worker-evaluated detector
    try:
        untouched_dsn = server.create_database("quality_untouched")
        upgrade(untouched_dsn)
        copy_events(base + derived, untouched_dsn)
        untouched = make_engine(untouched_dsn)
        engines.append(untouched)
        phase("PostgreSQL up, untouched store loaded")
        for k, detector in enumerate(d for d in MEASURED if d in WORKER_EVALUATED):
            how = MEASURED[detector]
            times = event_plants.plant_times(start - how.lead, end - how.lead, args.plants, how.spacing, args.seed + k)
            if not times:
                print(f"  {detector}: skipped, no plant fits the span (plants {how.spacing.total_seconds() / 86400:g} days apart)")
                continue
            planted = event_plants.EVENT_PLANTERS[detector](base, times, args.seed + k)
            untouched.dispose()  # a template must have no connections
            dsn = server.create_database(f"quality_{k}", template="quality_untouched")
            copy_events(planted.events, dsn)
            if args.jobs > 1:  # measured in the pool below, once every planted store is copied from the template
                stores.append((detector, dsn, untouched_dsn, planted.plants, start, end, how))
                continue
            engine = make_engine(dsn)
            engines.append(engine)
            t0 = time.perf_counter()
            rows.append(measure_worker(detector, engine, untouched, planted.plants, start, end, how))
            print(f"  {detector}: {time.perf_counter() - t0:.1f} s")
        pool = None
        if stores:  # the longest (churnRisk's daily model fits, the last) first; the demo load runs beside them
            pool = ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn"))
            measuring = [pool.submit(_measure_in_process, *store) for store in stores[::-1]][::-1]
        work = scratch
        parts, labelled = [], {}
        for k, detector in enumerate(d for d in MEASURED if d not in WORKER_EVALUATED):
            how = MEASURED[detector]
            times = event_plants.plant_times(start, end, args.plants, how.spacing, args.seed + 100 + k)
            family, lines, plants = plants_series.series(detector, base, start, end, times, "planted", k)
            parts.append((family, lines))
            family, lines, _ = plants_series.series(detector, base, start, end, [], "untouched", k)
            parts.append((family, lines))
            labelled[detector] = plants
        (work / "history.om").write_text(plants_series.openmetrics(parts))
        phase("series planted")
        untouched.dispose()
        demo_dsn = server.create_database("quality_demo")
        upgrade(demo_dsn)
        if loader.main(["--dataset", "all", "--via", "copy", "--dsn", demo_dsn, "--quiet"]) != 0:
            raise SystemExit("game-analytics load --dataset all --via copy failed (is the data there? `make data`)")
        phase("demo data loaded (game-analytics load --dataset all --via copy)")
        if pool is not None:
            for store, future in zip(stores, measuring, strict=True):
                quality, seconds = future.result()
                rows.append(quality)
                print(f"  {store[0]}: {seconds:.1f} s (in a pool process)")
            pool.shutdown()
            phase(f"worker-evaluated detectors measured ({args.jobs} processes, beside the above)")
        # one block per 30 days, not promtool's default 2 h (a 3-day history took 40 s as 37 blocks, 3.5 s as one)
        subprocess.run([_binary("promtool"), "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=720h",
                        str(work / "history.om"), str(work / "prom" / "data")], check=True, capture_output=True,
                       timeout=600)  # fmt: skip
        phase("promtool backfill")
        prometheus = Prometheus(work / "prom", {}, [], retention="40y")
        phase("Prometheus up")
        try:
            for detector, plants in labelled.items():
                rows.append(measure_promql(detector, prometheus.url, plants, start, end))
            phase("PromQL detectors measured")
            if args.record:  # as soon as every type is measured (the examples' backtests may take long)
                source = (f"bench_detector_quality{' --quick' if args.quick else ''} (CDNOW {start:%Y-%m-%d}.."
                          f"{end:%Y-%m-%d}, {args.plants} plants per type, seed {args.seed})")
                print(f"  recorded in {measured.write(rows, source)}")
            examples = backtest_examples(demo_dsn, prometheus.url, start, end)
            phase("example AlertRules backtested")
        finally:
            prometheus.stop()
    finally:
        for engine in engines:
            engine.dispose()
        server.stop()
        for path in (scratch, pg_dir):
            shutil.rmtree(path, ignore_errors=True)
    print()
    print(table(rows))
    print("\ndelay: from the planted time to the page (first flagged step + group_wait 10 s), in minutes")
    print(f"\nexample AlertRules over the demo data {start:%Y-%m-%d}..{end:%Y-%m-%d} (nothing planted: every page "
          f"is a false page; default route):")  # fmt: skip
    print(examples_table(examples))
    if args.json:
        print(json.dumps({"quality": [q.to_dict() for q in rows],
                          "examples": [{"file": n, **r.to_dict()} for n, r in examples]}, indent=2, default=str))
    print(f"\ntotal {time.perf_counter() - started:.1f} s")
    return 0


def _measure_in_process(detector: str, dsn: str, untouched_dsn: str, plants, start: datetime, end: datetime,
                        how) -> tuple[Quality, float]:
    """``measure_worker`` in a pool process (``--jobs``) with engines of its own on the planted store ``dsn`` and the
    untouched one; returns the figures and the seconds they took."""
    planted, untouched = make_engine(dsn), make_engine(untouched_dsn)
    try:
        t0 = time.perf_counter()
        return measure_worker(detector, planted, untouched, plants, start, end, how), time.perf_counter() - t0
    finally:
        planted.dispose()
        untouched.dispose()


def backtest_examples(dsn: str, url: str, start: datetime, end: datetime) -> list[tuple[str, Backtest]]:
    """``[(file name, Backtest)]`` of every examples/alertrule-*.yaml from ``start`` to ``end`` through
    :func:`game_analytics.alerting.cli.backtest_rule` (what ``game-analytics alerts backtest`` runs): worker-evaluated
    rules over the store at ``dsn``, PromQL-evaluated ones as namespace ``untouched`` of the Prometheus at ``url``.
    The step is the harness's step for the rule's detector type (:data:`MEASURED`), else :data:`EXAMPLE_STEP`.

    Raises:
        sqlalchemy.exc.SQLAlchemyError, PrometheusError: a source cannot be read.
    """
    out = []
    for path in sorted((ROOT / "examples").glob("alertrule-*.yaml")):
        rule, spec = load_alertrule(path)
        kind = spec.detector.kind()
        t0 = time.perf_counter()
        step = MEASURED[kind].step if kind in MEASURED else EXAMPLE_STEP
        if kind not in WORKER_EVALUATED:
            rule = rule_id("untouched", rule.split("/", 1)[1])
        result = backtest_rule(rule, spec, start, end, step, dsn=dsn, prometheus=url, timeout=600.0)
        out.append((path.name, result))
        print(f"  {path.name}: {time.perf_counter() - t0:.1f} s")
    return out


def examples_table(examples: list[tuple[str, Backtest]]) -> str:
    """One row per example AlertRule: file, detector, step, for, pages, pages per week, busiest hour of the week
    (UTC, its pages) and the top subject (its paged incidents)."""
    head = (f"{'rule':<34} {'detector':<18} {'step':>5} {'for':>5} {'pages':>5} {'pages/wk':>8}  "
            f"{'busiest hour (UTC)':<18}  top subject")  # fmt: skip
    lines = [head, "-" * len(head)]
    for name, r in examples:
        busiest = r.busiest_hour()
        hour = "-" if busiest is None else f"{busiest[0]} {busiest[1]:02d}:00 ({busiest[2]})"
        top = r.top_subjects(1)
        subject = "-" if not top else f"{top[0][0]} ({top[0][1]})"
        lines.append(f"{name:<34} {r.detector:<18} {_dur(r.step):>5} {_dur(r.for_):>5} {len(r.page_times):>5} "
                     f"{r.pages_per_week:>8.2f}  {hour:<18}  {subject}")  # fmt: skip
    return "\n".join(lines)


def _dur(d: timedelta) -> str:
    seconds = int(d.total_seconds())
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % n == 0:
            return f"{seconds // n}{unit}"
    return f"{seconds}s"


if __name__ == "__main__":
    raise SystemExit(main())
