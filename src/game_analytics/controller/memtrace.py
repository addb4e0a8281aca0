"""Where the operator's memory goes: tracemalloc snapshots on demand (``GAME_ANALYTICS_TRACEMALLOC=PATH``).

Off by default (tracing costs CPU and about a third more memory). When the variable names a file, the operator
starts :mod:`tracemalloc` at startup and writes a report to ``PATH`` (replaced each time):

* on ``SIGUSR1`` (``kill -USR1 PID``), and
* every ``GAME_ANALYTICS_TRACEMALLOC_SECONDS`` seconds (default 60; 0: only on the signal).

Each report gives the process's resident set (VmRSS, VmHWM from ``/proc``), the traced Python heap (current and
peak), the top allocations by source line and by file, and the growth by line since the first report, so that a
heap that grows after all objects are Ready can be told from a resident set that grows outside it (allocator
arenas, C extensions). Used by ``benchmarks/bench_operator_scale.py --tracemalloc`` (docs/scaling.md).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import tracemalloc
from pathlib import Path

log = logging.getLogger(__name__)

#: frames kept per allocation (1: the allocating line; more costs memory per traced block)
FRAMES = 1
#: rows per table in a report
TOP = 25

_state: dict[str, object] = {}


def _proc_status() -> dict[str, int]:
    """VmRSS, VmHWM (KiB) and the thread count of this process from ``/proc/self/status`` (empty elsewhere)."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return {}
    out: dict[str, int] = {}
    for line in lines:
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            out[key] = int(value.split()[0])
    return out


def _is_noise(trace: tracemalloc.StatisticDiff | tracemalloc.Statistic) -> bool:
    return trace.traceback[0].filename in (tracemalloc.__file__, __file__)


def report(baseline: tracemalloc.Snapshot | None = None) -> tuple[str, tracemalloc.Snapshot]:
    """The text of one report and its snapshot (``baseline``: the snapshot growth is measured against)."""
    snapshot = tracemalloc.take_snapshot().filter_traces([
        tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen importlib._bootstrap>")])
    current, peak = tracemalloc.get_traced_memory()
    proc = _proc_status()
    lines = [f"time {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}",
             f"VmRSS {proc.get('VmRSS', 0) / 1024:.1f} MiB, VmHWM {proc.get('VmHWM', 0) / 1024:.1f} MiB, "
             f"threads {proc.get('Threads', 0)}",
             f"traced Python heap {current / 2**20:.1f} MiB (peak {peak / 2**20:.1f} MiB), "
             f"tracemalloc's own {tracemalloc.get_tracemalloc_memory() / 2**20:.1f} MiB", ""]
    for title, key in (("by line", "lineno"), ("by file", "filename")):
        stats = [s for s in snapshot.statistics(key) if not _is_noise(s)][:TOP]
        lines.append(f"top {len(stats)} {title}:")
        lines += [f"  {s.size / 2**20:8.2f} MiB {s.count:9,} blocks  {s.traceback[0]}" for s in stats]
        lines.append("")
    if baseline is not None:
        diffs = [d for d in snapshot.compare_to(baseline, "lineno") if not _is_noise(d)][:TOP]
        lines.append(f"growth by line since the first report (top {len(diffs)}):")
        lines += [f"  {d.size_diff / 2**20:+8.2f} MiB {d.count_diff:+9,} blocks  (now {d.size / 2**20:.2f} MiB)  "
                  f"{d.traceback[0]}" for d in diffs]
    return "\n".join(lines) + "\n", snapshot


def dump(path: Path) -> None:
    """Write one report to ``path`` (atomically; the first report's snapshot is the growth baseline)."""
    with _state.setdefault("lock", threading.Lock()):  # type: ignore[union-attr]
        text, snapshot = report(_state.get("baseline"))  # type: ignore[arg-type]
        _state.setdefault("baseline", snapshot)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)


def start(environ: dict[str, str] | None = None) -> bool:
    """Start tracing when ``GAME_ANALYTICS_TRACEMALLOC`` names a file (once; True when tracing): reports on
    ``SIGUSR1`` and every ``GAME_ANALYTICS_TRACEMALLOC_SECONDS`` seconds."""
    environ = os.environ if environ is None else environ
    target = environ.get("GAME_ANALYTICS_TRACEMALLOC", "")
    if not target or _state.get("started"):
        return bool(_state.get("started"))
    path = Path(target)
    tracemalloc.start(FRAMES)
    _state["started"] = True
    every = float(environ.get("GAME_ANALYTICS_TRACEMALLOC_SECONDS", "60"))

    def safe_dump() -> None:
        try:
            dump(path)
        except Exception:  # noqa: BLE001 - a diagnostic must never take the operator down
            log.exception("tracemalloc report to %s failed", path)

    def on_signal(*_: object) -> None:  # the report is written off the signal handler, in a thread
        threading.Thread(target=safe_dump, name="tracemalloc report", daemon=True).start()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGUSR1, on_signal)
    if every > 0:
        def periodic() -> None:
            while True:
                time.sleep(every)
                safe_dump()

        threading.Thread(target=periodic, name="tracemalloc periodic", daemon=True).start()
    log.info("tracemalloc on: reports to %s on SIGUSR1%s", path, f" and every {every:.0f} s" if every > 0 else "")
    return True
