"""Detector quality: precision, recall, detection delay and false pages per week of every detector type, with
labelled anomalies planted into the real CDNOW log (game_analytics.alerting.plants / plants_series), and the
backtest of every shipped example AlertRule over the untouched data.

A throwaway PostgreSQL holds the untouched store (CDNOW up to the end of the span plus the logins and gifts derived
from it) and one copy per worker-evaluated detector with its plants; a real Prometheus holds the PromQL detectors'
series, backfilled with promtool in two namespaces (planted, untouched).  Figures only, no assertions; the goals
(recall >= 0.95 at precision >= 0.9) are marked in the table.

    .venv/bin/python benchmarks/bench_detector_quality.py [--from 1997-02-01] [--days 28] [--plants 20] [--json]
        [--record]

``--record`` writes the figures to ``src/game_analytics/alerting/detector_quality.yaml``, the measured quality
shipped with the package (AlertRule ``status.quality``, the security report; docs/backtest.md).  ``--quick``: 3
days, 3 plants per type (every type still gets at least one plant).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import benchargs

from devtools.monitoring_stack import Prometheus, _binary
from devtools.postgres import start_postgres
from game_analytics.alerting import measured, plants_series
from game_analytics.alerting import plants as event_plants
from game_analytics.alerting.backtest import backtest, backtest_alerts
from game_analytics.alerting.cli import load_alertrule
from game_analytics.alerting.harness import MEASURED, measure_promql, measure_worker, replay_key
from game_analytics.alerting.prometheus import alert_samples
from game_analytics.alerting.quality import Quality
from game_analytics.alerting.replay import replay, steps
from game_analytics.api.alertrule import WORKER_EVALUATED
from game_analytics.api.common import parse_duration
from game_analytics.data.datasets import load_cdnow_master
from game_analytics.data.events import purchase_events
from game_analytics.monitoring.promql import rule_id
from game_analytics.storage.engine import make_engine
from game_analytics.storage.migrate import upgrade
from game_analytics.workers.load import copy_events

ROOT = Path(__file__).resolve().parents[1]
#: the throwaway PostgreSQL and Prometheus live in memory where there is a tmpfs: on a shared disk, creating the
#: stores and deleting their files afterwards took longer than the measurement (28 s of rmtree in a quick run)
SCRATCH = Path("/dev/shm")
#: the example backtest's step of a type the harness does not measure (default 10 minutes): the daily models'
#: flags change only when a UTC day completes (workers/model_detectors.py), so a daily step gives the same pages
#: (a 10-minute one took 188 s of a 257 s quick run for alertrule-churn-risk.yaml)
EXAMPLE_STEPS = {"churnRisk": timedelta(days=1), "forecastDeviation": timedelta(days=1)}


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
    args = benchargs.parse(parser, argv, {"days": 3, "plants": 3})
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
    untouched_samples: dict = {}
    try:
        untouched_dsn = server.create_database("quality_untouched")
        upgrade(untouched_dsn)
        copy_events(base + derived, untouched_dsn)
        untouched = make_engine(untouched_dsn)
        engines.append(untouched)
        phase("PostgreSQL up, untouched store loaded")
        for k, detector in enumerate(d for d in MEASURED if d in WORKER_EVALUATED):
            how = MEASURED[detector]
            times = event_plants.plant_times(start, end, args.plants, how.spacing, args.seed + k)
            if not times:
                print(f"  {detector}: skipped, no plant fits the span (plants {how.spacing.total_seconds() / 86400:g} days apart)")
                continue
            planted = event_plants.EVENT_PLANTERS[detector](base, times, args.seed + k)
            untouched.dispose()  # a template must have no connections
            dsn = server.create_database(f"quality_{k}", template="quality_untouched")
            copy_events(planted.events, dsn)
            engine = make_engine(dsn)
            engines.append(engine)
            t0 = time.perf_counter()
            rows.append(measure_worker(detector, engine, untouched, planted.plants, start, end, how,
                                       untouched_samples))
            print(f"  {detector}: {time.perf_counter() - t0:.1f} s")
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
            examples = backtest_examples(untouched, prometheus.url, start, end, untouched_samples,
                                         measured_only=args.quick)
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
    print("\nexample AlertRules over the untouched data (every page is a false page):")
    for name, result in examples:
        print(f"  {name:<32} {result.detector:<20} for {result.for_.total_seconds():>5g}s  pages {len(result.page_times):>4}"
              f"  pages/week {result.pages_per_week:.2f}")  # fmt: skip
    if args.json:
        print(json.dumps({"quality": [q.to_dict() for q in rows],
                          "examples": [{"file": n, **r.to_dict()} for n, r in examples]}, indent=2, default=str))
    print(f"\ntotal {time.perf_counter() - started:.1f} s")
    return 0


def backtest_examples(untouched, url: str, start: datetime, end: datetime,  # type: ignore[no-untyped-def]
                      untouched_samples: dict | None = None, measured_only: bool = False) -> list:
    """``[(file name, Backtest)]`` of every examples/alertrule-*.yaml over the untouched data (at the step of its
    detector type in ``MEASURED``; anomalyScore scores whole histories, one step a day); a rule the harness has
    already replayed over the same steps (``untouched_samples``, :func:`replay_key`) is not replayed again.  With
    ``measured_only`` (``--quick``) only the examples of types in ``MEASURED`` (the daily models' fits per replayed
    day took minutes of a quick run on 2 loaded cores)."""
    out = []
    for path in sorted((ROOT / "examples").glob("alertrule-*.yaml")):
        rule, spec = load_alertrule(path)
        kind = spec.detector.kind()
        t0 = time.perf_counter()
        if measured_only and kind not in MEASURED:
            print(f"  {path.name}: not backtested with --quick ({kind} is not in the harness)")
            continue
        step = MEASURED[kind].step if kind in MEASURED else EXAMPLE_STEPS.get(kind, timedelta(minutes=10))
        times = steps(start, end, step)
        for_ = parse_duration(spec.for_, allow_zero=True)
        if kind in WORKER_EVALUATED:
            samples = (untouched_samples or {}).get(replay_key(spec, times))
            if samples is None:
                samples = replay(untouched, rule, spec, times)
            result = backtest(samples, rule=rule, detector=kind, start=start, end=end, step=step, for_=for_)
        else:
            moved = rule_id("untouched", rule.split("/", 1)[1])
            result = backtest_alerts(alert_samples(url, moved, spec, times), rule=moved, detector=kind, start=start,
                                     end=end, step=step, for_=for_)  # fmt: skip
        out.append((path.name, result))
        print(f"  {path.name}: {time.perf_counter() - t0:.1f} s")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
