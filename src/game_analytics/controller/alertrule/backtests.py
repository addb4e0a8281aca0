"""``status.backtest`` of an AlertRule: its last 7 days backtested by the operator, bounded in cost.

The backtest is the CLI's (:func:`game_analytics.alerting.cli.backtest_rule`: worker-evaluated detectors replayed
over the GameDataSource's PostgreSQL, PromQL ones with the operator's Prometheus ``query_range``).  Cost bounds
(docs/backtest.md, "In the cluster"):

* **cache**: one result per rule, keyed by ``(uid, metadata.generation, window end)``; the window ends at the start
  of the current hour (:class:`~game_analytics.config.BacktestSettings` ``bucket``), so a rule is backtested at
  most once an hour and once per spec change, whatever the resync interval; a restarted operator seeds it from
  each rule's live status (a result for this generation and window is not recomputed);
* **one at a time**: backtests run one after the other, from one background thread, each in a child process
  (:mod:`.backtest_process`: the analytics stack it imports stays out of the operator's heap); the reconcile waits at most ``WAIT_SECONDS`` for a
  new one and otherwise reports ``Backtested=Unknown`` (``Running``); the next resync picks the result up;
* **time budget**: a replay stops after ``budget_seconds`` (checked after every evaluated step; every SQL statement
  has that ``statement_timeout``, every Prometheus request that timeout);
* **errors** become the ``Backtested`` condition (``False``: ``BacktestUnavailable``, ``BudgetExceeded``,
  ``BacktestFailed``); a failed backtest is retried after ``RETRY_SECONDS``, never in a loop.

:func:`summary` (pure) turns a :class:`~game_analytics.alerting.backtest.Backtest` into the status model.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg.errors import QueryCanceled
from sqlalchemy.exc import OperationalError

from ...alerting.backtest import Backtest, NotBacktestable
from ...api.alertrule import AlertRuleSpec, BacktestStatus
from ...api.common import parse_duration
from ...config import BacktestSettings
from ...monitoring import promql
from ..common import conditions
from ..common.render import Owner
from .backtest_process import BacktestProcess

__all__ = ["CONDITION", "RETRY_SECONDS", "WAIT_SECONDS", "BacktestError", "Backtester", "BudgetExceeded", "Source",
           "backtest_status", "backtester", "reset", "run_backtest", "summary", "window"]

CONDITION = "Backtested"
#: how long a reconcile waits for a backtest it has just started (most finish within this on small stores); only
#: when no other backtest is queued before it: with many rules (a restart, 1,000 created at once) each reconcile
#: would otherwise hold a reconcile thread this long while the one backtest thread works through the queue
WAIT_SECONDS = 2.0
#: a failed backtest is tried again after this long (or at the next window / spec change, if sooner)
RETRY_SECONDS = 300.0


class BudgetExceeded(RuntimeError):
    """The backtest ran longer than its time budget."""


class BacktestError(RuntimeError):
    """Any other error of a backtest in the child process, as ``kind`` (the exception's class name) and message:
    the store's and Prometheus' exceptions need not pickle back to the operator."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(kind, message)
        self.kind, self.message = kind, message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Source:
    """Where a backtest reads: the GameDataSource's DSN (None when its Secret cannot be read), its games, and the
    operator's Prometheus URL (empty: none)."""

    dsn: str | None
    games: tuple[str, ...]
    prometheus_url: str


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _same_spec(old: tuple[Any, ...], new: tuple[Any, ...]) -> bool:
    """Whether two backtest keys ``(generation, end, spec, source)`` differ at most in the window's end."""
    return (old[0], *old[2:]) == (new[0], *new[2:])


def _same_failure(shown: dict, new: dict) -> bool:
    """Whether two failed Backtested conditions report the same failure: status, reason and the error's kind
    (the message up to its first colon). Seen at 1,500 rules: a retried backtest against an unresolvable DSN
    failed with varying resolver wording, which rewrote 740 statuses per idle window."""
    return ((shown["status"], shown["reason"], shown["message"].split(":")[0])
            == (new["status"], new["reason"], new["message"].split(":")[0]))


def window(now: datetime, settings: BacktestSettings) -> tuple[datetime, datetime]:
    """``(start, end)`` of the backtested span: ``end`` is ``now`` rounded down to a whole ``bucket`` (UTC),
    ``start`` is ``window`` earlier."""
    bucket = parse_duration(settings.bucket).total_seconds()
    end = datetime.fromtimestamp(now.timestamp() // bucket * bucket, UTC)
    return end - parse_duration(settings.window), end


def summary(result: Backtest, settings: BacktestSettings) -> BacktestStatus:
    """The ``status.backtest`` of ``result``: pages, pages per week, paged incidents, when the last paged incident
    started firing, the window, step and the window's end (``computedAt``)."""
    paged = [i for i in result.incidents if i.pages]
    return BacktestStatus(pages=len(result.page_times), pages_per_week=round(result.pages_per_week, 3),
                          incidents=len(paged), last_fired=_rfc3339(paged[-1].firing_at) if paged else None,
                          window=settings.window, step=settings.step, computed_at=_rfc3339(result.end))


def run_backtest(rule: str, spec: AlertRuleSpec, source: Source, start: datetime, end: datetime,
                 settings: BacktestSettings) -> Backtest:
    """Backtest ``rule`` over ``start``..``end`` within ``settings.budget_seconds`` (runs in the backtest thread).

    Raises:
        NotBacktestable: no source for the detector (the DSN Secret unreadable, or no Prometheus URL).
        BudgetExceeded: the replay took longer than the budget.
        Exception: whatever the store or Prometheus raise.
    """
    from ...alerting.cli import backtest_rule

    budget = settings.budget_seconds
    deadline = time.monotonic() + budget

    def progress(done: int, total: int) -> None:
        if time.monotonic() > deadline:
            raise BudgetExceeded(f"stopped after {budget:g} s at step {done} of {total}: use a coarser "
                                 "backtest step (chart backtest.step) or a larger budget")

    options = {"connect_args": {"connect_timeout": 10,
                                "options": f"-c statement_timeout={max(1, int(budget * 1000))}"}}
    try:
        return backtest_rule(rule, spec, start, end, parse_duration(settings.step), dsn=source.dsn,
                             prometheus=source.prometheus_url or None, games=source.games, progress=progress,
                             timeout=budget, engine_options=options)
    except OperationalError as exc:
        if isinstance(exc.orig, QueryCanceled):  # the statement_timeout of the budget
            raise BudgetExceeded(f"stopped after {budget:g} s: a query ran out of the time budget; use a coarser "
                                 "backtest step (chart backtest.step) or a larger budget") from None
        raise


def backtest_status(rule: str, spec: AlertRuleSpec, source: Source, start: datetime, end: datetime,
                    settings: BacktestSettings) -> BacktestStatus:
    """:func:`summary` of :func:`run_backtest` (the target of the backtest child process).

    Raises ``NotBacktestable`` and ``BudgetExceeded`` as :func:`run_backtest`; every other exception as
    :class:`BacktestError`.
    """
    try:
        return summary(run_backtest(rule, spec, source, start, end, settings), settings)
    except (NotBacktestable, BudgetExceeded):
        raise
    except Exception as exc:  # noqa: BLE001 - reported as the Backtested condition by the operator
        raise BacktestError(type(exc).__name__, str(exc)) from None


@dataclass
class _Entry:
    key: tuple[Any, ...]
    future: Future[Backtest]
    finished: float | None = None  # monotonic time the future completed with an error
    #: the Backtested condition shown while this backtest runs: the previous one of the same spec (a retry, or
    #: the next hour's window), so an idle rule's status does not flap Running -> result at each of those
    shown: dict | None = None


class Backtester:
    """The cache and the background thread of the operator's backtests (see the module docstring).

    ``run`` returns a :class:`~game_analytics.alerting.backtest.Backtest` or its :class:`BacktestStatus`; by
    default :func:`backtest_status` in a :class:`~.backtest_process.BacktestProcess` (tests pass their own);
    ``clock`` gives the current time.
    """

    def __init__(self, settings: BacktestSettings, *, run: Callable[..., Backtest] | None = None,
                 clock: Callable[[], datetime] | None = None, wait_seconds: float = WAIT_SECONDS):
        self.settings = settings
        self._process = BacktestProcess(backtest_status) if run is None else None
        self._run = run or self._process
        self._clock = clock or (lambda: datetime.now(UTC))
        self._wait = wait_seconds
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alertrule-backtest")
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.RLock()  # re-entered when a future is done before its callback is added
        self._queued = 0  # backtests submitted and not finished

    def lookup(self, owner: Owner, spec: AlertRuleSpec, source: Source,
               live: dict | None = None) -> tuple[BacktestStatus | None, dict]:
        """``(status.backtest or None, the Backtested condition)`` of the rule; starts its backtest when the
        cache holds none for the current key (waiting at most ``wait_seconds``). Never raises for a failed
        backtest. None: nothing new to write (the last written ``status.backtest`` stays).

        ``live`` is the rule's current ``status``: with an empty cache (the operator restarted) a backtest it
        already shows for this generation and window is taken as it is, and a failed one stays shown while its
        retry runs, so a restart rewrites no status (:func:`_seed`).
        """
        generation = owner.generation
        if spec.suspend:
            return None, conditions.condition(CONDITION, None, "Suspended", "a suspended rule is not backtested",
                                              generation)
        start, end = window(self._clock(), self.settings)
        rule = promql.rule_id(owner.namespace, owner.name)
        key = (generation, end, spec.model_dump_json(), source)
        with self._lock:
            entry = self._entries.get(owner.uid or rule)
            if entry is None and live:
                entry = self._seed(key, live, generation, end)
                if entry is not None:
                    self._entries[owner.uid or rule] = entry
            retry = (entry is not None and entry.finished is not None
                     and time.monotonic() - entry.finished > RETRY_SECONDS)
            if entry is None or entry.key != key or retry:
                same_spec = entry is not None and _same_spec(entry.key, key)
                entry = _Entry(key, self._pool.submit(self._run, rule, spec, source, start, end, self.settings),
                               shown=entry.shown if same_spec else None)
                self._entries[owner.uid or rule] = entry
                self._queued += 1
                entry.future.add_done_callback(self._finished)
            wait = self._wait if self._queued <= 1 else 0.0  # others ahead: report Running, look again next time
        try:
            # exception(), not result(): result() re-raises the future's one exception object, and each raise
            # prepends this reconcile's frames to its __traceback__; the cached failed future then kept every
            # reconcile's stack (body, spec, children) alive until the retry (docs/scaling.md, RSS after Ready)
            exc = entry.future.exception(timeout=wait)
        except TimeoutError:
            if entry.shown is not None:  # the last result of this spec stays until the new one is in
                return None, entry.shown
            return None, self._show(entry, conditions.condition(
                CONDITION, None, "Running", f"backtesting the {self.settings.window} before {_rfc3339(end)}",
                generation))
        if isinstance(exc, NotBacktestable):
            return self._failed(entry, "BacktestUnavailable", str(exc), generation)
        if isinstance(exc, BudgetExceeded):
            return self._failed(entry, "BudgetExceeded", str(exc), generation)
        if exc is not None:  # the store or Prometheus failed: report, retry later
            message = " ".join(str(exc).split())[:500]
            kind = exc.kind if isinstance(exc, BacktestError) else type(exc).__name__
            return self._failed(entry, "BacktestFailed", f"{kind}: {message}", generation)
        result = entry.future.result()
        status = result if isinstance(result, BacktestStatus) else summary(result, self.settings)
        return status, self._show(entry, conditions.condition(
            CONDITION, True, "Computed", f"{status.pages} pages ({status.pages_per_week:g}/week) in the "
            f"{status.window} before {status.computed_at}", generation))

    def _seed(self, key: tuple[Any, ...], live: dict, generation: int | None, end: datetime) -> _Entry | None:
        """The cache entry a restarted operator takes from the rule's live ``status`` (None: nothing usable).

        A ``Computed`` condition of this generation whose ``status.backtest`` covers this window (its end, window
        and step) is a finished entry: nothing is recomputed until the next window or spec change. Any other
        condition of this generation is kept as ``shown`` on an entry that is due at once (a retry)."""
        shown = conditions.get(live.get("conditions"), CONDITION)
        if shown is None or shown.get("observedGeneration") != generation:
            return None
        shown = {k: v for k, v in shown.items() if k != "lastTransitionTime"}
        backtest = live.get("backtest") or {}
        if (shown["status"] == "True" and shown["reason"] == "Computed"
                and (backtest.get("computedAt"), backtest.get("window"), backtest.get("step"))
                == (_rfc3339(end), self.settings.window, self.settings.step)):
            future: Future[Backtest] = Future()
            future.set_result(BacktestStatus.model_validate(dict(backtest)))
            return _Entry(key, future, shown=shown)
        future = Future()
        future.set_exception(RuntimeError("not run by this operator process"))
        return _Entry(key, future, finished=time.monotonic() - RETRY_SECONDS - 1, shown=shown)

    @staticmethod
    def _show(entry: _Entry, condition: dict) -> dict:
        entry.shown = condition
        return condition

    def _finished(self, _: Future) -> None:
        with self._lock:
            self._queued -= 1

    def _failed(self, entry: _Entry, reason: str, message: str, generation: int | None) -> tuple[None, dict]:
        if entry.finished is None:
            entry.finished = time.monotonic()
        new = conditions.condition(CONDITION, False, reason, message, generation)
        if entry.shown is not None and _same_failure(entry.shown, new):
            return None, entry.shown  # a retry failed the same way: the wording may differ, the status stays
        return None, self._show(entry, new)

    def forget(self, uid: str) -> None:
        """Drop the cached backtest of a deleted rule."""
        with self._lock:
            self._entries.pop(uid, None)

    def shutdown(self) -> None:
        """Stop the background thread and the backtest process (a running backtest finishes first)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._process is not None:
            self._process.shutdown()


_instances: dict[BacktestSettings, Backtester] = {}
_instances_lock = threading.Lock()


def backtester(settings: BacktestSettings) -> Backtester:
    """THE operator's :class:`Backtester` for ``settings`` (one per process)."""
    with _instances_lock:
        if settings not in _instances:
            _instances[settings] = Backtester(settings)
        return _instances[settings]


def reset() -> None:
    """Forget every backtester (tests)."""
    with _instances_lock:
        for instance in _instances.values():
            instance.shutdown()
        _instances.clear()
