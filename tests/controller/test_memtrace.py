"""The operator's tracemalloc report (controller/memtrace.py, ``GAME_ANALYTICS_TRACEMALLOC``): off by default,
and a report names the resident set, the traced heap, the top lines and the growth since the first report."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from game_analytics.controller import memtrace


def test_off_unless_the_variable_names_a_file() -> None:
    assert memtrace.start({}) is False and not tracemalloc.is_tracing()


def test_a_report_shows_the_heap_and_what_grew(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(memtrace, "_state", {})
    path = tmp_path / "trace.txt"
    tracemalloc.start(1)
    try:
        memtrace.dump(path)  # the baseline
        held = [bytearray(1 << 20) for _ in range(8)]  # 8 MiB allocated on the next line
        memtrace.dump(path)
    finally:
        tracemalloc.stop()
    text = path.read_text()
    assert "VmRSS" in text and "traced Python heap" in text and " by line:" in text and " by file:" in text
    growth = text.split("growth by line since the first report")[1]
    first = growth.splitlines()[1]
    assert "test_memtrace.py" in first and float(first.split()[0]) >= 7.9, first
    assert len(held) == 8
