"""The last measured detector quality, shipped with the package: ``detector_quality.yaml`` next to this module.

``benchmarks/bench_detector_quality.py --record`` writes it (:func:`write`) from the harness run it has just made;
the operator (each AlertRule's ``status.quality``) and the security report read it (:func:`load`).  Shipping the
figures with the code means a user sees the quality measured for the detector implementation they run, with the
run that measured it (``source``: the benchmark, its span, plants per type and seed) and when (``measuredAt``);
docs/backtest.md "Where the measured quality is shown".

File shape::

    measuredAt: '2026-12-02T14:40:00Z'
    source: bench_detector_quality --quick (CDNOW 1997-02-01..1997-02-08, 5 plants per type, seed 1)
    detectors:
      suddenWealthChange: {precision: 0.833, recall: 1.0, falsePagesPerWeek: 1.0, plants: 5, detected: 5,
                           medianDelaySeconds: 190.0}
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

__all__ = ["QUALITY_FILE", "MeasuredQuality", "load", "write"]

QUALITY_FILE = Path(__file__).with_name("detector_quality.yaml")


@dataclass(frozen=True)
class MeasuredQuality:
    """One detector type's figures from the file (precision and recall 0..1, false pages per week, the number of
    plants and of those detected, the median delay from plant to page in seconds or None)."""

    detector: str
    precision: float
    recall: float
    false_pages_per_week: float
    plants: int
    detected: int
    median_delay_seconds: float | None
    measured_at: str
    source: str


def load(path: Path | None = None) -> dict[str, MeasuredQuality]:
    """``{detector type: MeasuredQuality}`` of ``path`` (default :data:`QUALITY_FILE`); empty when the file is
    missing (each file read once per process; :func:`write` clears the cache).

    Raises:
        yaml.YAMLError, KeyError, TypeError, ValueError: the file is malformed.
    """
    return _load(path or QUALITY_FILE)


@functools.cache
def _load(path: Path) -> dict[str, MeasuredQuality]:
    if not path.is_file():
        return {}
    doc = yaml.safe_load(path.read_text()) or {}
    at, source = str(doc["measuredAt"]), str(doc["source"])
    return {name: MeasuredQuality(name, float(d["precision"]), float(d["recall"]), float(d["falsePagesPerWeek"]),
                                  int(d["plants"]), int(d["detected"]),
                                  None if d.get("medianDelaySeconds") is None else float(d["medianDelaySeconds"]),
                                  at, source)
            for name, d in (doc.get("detectors") or {}).items()}  # fmt: skip


def write(rows: Iterable[Any], source: str, path: Path | None = None, now: datetime | None = None) -> Path:
    """Write the :class:`~game_analytics.alerting.quality.Quality` ``rows`` of a harness run to ``path`` (default
    :data:`QUALITY_FILE`)."""
    path = path or QUALITY_FILE
    detectors: dict[str, Any] = {}
    for q in rows:
        d = q.to_dict()
        detectors[q.detector] = {"precision": d["precision"], "recall": d["recall"],
                                 "falsePagesPerWeek": d["false_pages_per_week"], "plants": d["plants"],
                                 "detected": d["detected"], "medianDelaySeconds": d["median_delay_seconds"]}
    at = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    header = ("# The last measured detector quality: written by benchmarks/bench_detector_quality.py --record,\n"
              "# read by the operator (AlertRule status.quality) and the security report. Do not edit by hand.\n")
    path.write_text(header + yaml.safe_dump({"measuredAt": at, "source": source, "detectors": detectors},
                                            sort_keys=False, width=120))
    _load.cache_clear()
    return path
