"""The operator's backtests in a child process, so that the analytics stack never enters the operator's heap.

A backtest imports pandas, SciPy and scikit-learn (``alerting.cli`` -> ``workers.detectors`` ->
``analytics.anomaly``): run in the operator's own thread, it raised the operator's peak RSS from ~100 MiB to
265 MiB for good (docs/scaling.md, "The operator at scale").  :class:`BacktestProcess` runs each call of its
target in one child process instead:

* **one child, reused**: started by the first call (``spawn``: a fresh interpreter, not a fork of the operator's
  threads and sockets), it keeps its imports for the next backtests;
* **stopped when idle**: ``idle_seconds`` after the last call finished the child exits and gives its memory back
  (backtests come in bursts: at the start, after spec changes and once per window bucket, hourly by default);
* **a killed child** (the kernel's OOM killer picks the largest process of the pod, which is the child while it
  replays) is :class:`BacktestProcessDied` for that one call; the next call starts a new child.

Calls are serialised by the caller (the :class:`~game_analytics.controller.alertrule.backtests.Backtester` runs one
backtest at a time); the target and its arguments and result must pickle.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

__all__ = ["IDLE_SECONDS", "BacktestProcess", "BacktestProcessDied"]

#: the child exits this long after its last backtest
IDLE_SECONDS = 300.0


class BacktestProcessDied(RuntimeError):
    """The child process ended during the call (killed, e.g. out of memory, or crashed)."""


class BacktestProcess:
    """Runs ``target(*args)`` in a child process (see the module docstring); ``idle_seconds`` until it stops."""

    def __init__(self, target: Callable[..., Any], *, idle_seconds: float = IDLE_SECONDS) -> None:
        self._target = target
        self._idle = idle_seconds
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._timer: threading.Timer | None = None
        self._calls = 0

    @property
    def running(self) -> bool:
        """Whether a child process is started (busy or idle)."""
        with self._lock:
            return self._pool is not None

    def __call__(self, *args: Any) -> Any:
        """``target(*args)`` in the child; raises what the target raised, or :class:`BacktestProcessDied`."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._pool is None:
                self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
            pool = self._pool
            self._calls += 1
        try:
            return pool.submit(self._target, *args).result()
        except BrokenProcessPool:
            with self._lock:
                if self._pool is pool:
                    self._pool = None
            pool.shutdown(wait=False)
            raise BacktestProcessDied("the backtest process ended during the backtest (killed: out of memory?); "
                                      "it is retried with a new process") from None
        finally:
            with self._lock:
                self._calls -= 1
                if self._calls == 0 and self._pool is not None:
                    self._timer = threading.Timer(self._idle, self._stop_if_idle, args=(self._pool,))
                    self._timer.daemon = True
                    self._timer.start()

    def _stop_if_idle(self, pool: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is not pool or self._calls:
                return
            self._pool = None
            self._timer = None
        pool.shutdown(wait=True)

    def shutdown(self) -> None:
        """Stop the child now (a running call finishes first)."""
        with self._lock:
            pool, self._pool = self._pool, None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
