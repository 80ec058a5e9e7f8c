"""Issue 16: the scheduler's card charges run on a bounded pool of worker threads, so the card processor's
latency overlaps instead of adding up.

`run(items, work)` calls `work(item)` for each item on `JOBS_CONCURRENCY` threads (config, env
`PORTAL_JOBS_CONCURRENCY`, default 8). Each thread pushes its own application context, so it has its own database
session (Flask-SQLAlchemy scopes the session per app context) and its own connection; `work` commits per unit
exactly as it would alone, so every guarantee of the money path holds per item (attempt committed before the card
processor is called, conditional UPDATE to settle, `SKIP LOCKED` claims shared with other runners). Items are fed
through a small queue while the caller pages through its ids, so memory does not grow with the number of items.

On SQLite the pool has one worker, the calling thread itself: SQLite has one writer at a time and no row locks, so
threads would only wait for each other (and the run stays in the caller's session, as before).

On PostgreSQL the workers are spread over `JOBS_PROCESSES` processes (env `PORTAL_JOBS_PROCESSES`; default the
machine's CPU count, at most 4 and at most the concurrency): one interpreter runs Python on one core at a time, and
a run's own work per charge (SQL, the receipt, the feed) is what bounds it once Stripe's latency overlaps. The
processes are forked from the run once it has work; the run keeps paging through the ids and hands them out over a
queue; each process runs its share of the threads as above, with its own connections (the pool inherited from the
run is dropped without being closed) and its own HTTP connections to Stripe, and sends back what it did. A process
dies with the run (Linux: the parent-death signal), as threads would: a SIGKILLed run leaves attempts committed
before Stripe was called, which the reconciler settles.

`gate()` bounds calls to an outside service (the card processor) and adapts: `slow_down()` after a rate-limit
answer halves how many calls may be in flight, each run of successes lets one more in again (AIMD), up to the
pool's size. Outside a pool it is a gate that never waits, with short back-offs (a customer is waiting on a page).
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import random
import signal
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import current_app

from portal.extensions import db

DEFAULT_CONCURRENCY = 8
MAX_DEFAULT_PROCESSES = 4
Result = str | None | list[str | None]  # what a work item did: one result, or one per unit it did in order


def concurrency() -> int:
    """How many charges a run makes at once: JOBS_CONCURRENCY (≥ 1), and 1 on SQLite (the calling thread)."""
    try:
        wanted = int(current_app.config.get("JOBS_CONCURRENCY") or DEFAULT_CONCURRENCY)
    except (TypeError, ValueError):
        wanted = DEFAULT_CONCURRENCY
    if db.engine.dialect.name == "sqlite":
        return 1
    return max(1, wanted)


def processes(size: int) -> int:
    """How many processes share a run's `size` workers: JOBS_PROCESSES, by default the CPU count (at most
    MAX_DEFAULT_PROCESSES); never more than the workers; 1 on SQLite."""
    if size <= 1 or db.engine.dialect.name == "sqlite":
        return 1
    configured = current_app.config.get("JOBS_PROCESSES")
    try:
        wanted = int(configured) if configured not in (None, "", "auto") else min(os.cpu_count() or 1,
                                                                                  MAX_DEFAULT_PROCESSES)
    except (TypeError, ValueError):
        wanted = 1
    return max(1, min(wanted, size))


class Gate:
    """At most `limit` calls in flight; the limit adapts to rate-limit answers (AIMD) between 1 and `ceiling`."""

    def __init__(self, ceiling: int, *, retries: int, first_backoff: float, max_backoff: float):
        self.ceiling = max(1, ceiling)
        self.limit = self.ceiling
        self.retries = retries
        self.first_backoff, self.max_backoff = first_backoff, max_backoff
        self.in_flight = 0
        self.lowest = self.ceiling
        self.rate_limited = 0
        self._successes = 0
        self._last_cut = 0.0
        self._cond = threading.Condition()

    def __enter__(self) -> Gate:
        with self._cond:
            while self.in_flight >= self.limit:
                self._cond.wait()
            self.in_flight += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self.in_flight -= 1
            self._cond.notify_all()

    def slow_down(self) -> None:
        """A rate-limit answer: halve the limit (once per burst of answers), count it."""
        with self._cond:
            self.rate_limited += 1
            self._successes = 0
            now = time.monotonic()
            if now - self._last_cut >= self.first_backoff:
                self._last_cut = now
                self.limit = max(1, self.limit // 2)
                self.lowest = min(self.lowest, self.limit)

    def succeeded(self) -> None:
        """A call went through: after `limit` of them in a row, one more call may be in flight."""
        with self._cond:
            self._successes += 1
            if self.limit < self.ceiling and self._successes >= self.limit:
                self._successes = 0
                self.limit += 1
                self._cond.notify_all()

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (0-based): exponential with jitter, capped."""
        base = min(self.max_backoff, self.first_backoff * (2 ** retry))
        return base * random.uniform(0.5, 1.0)


def _request_gate() -> Gate:
    return Gate(1_000_000, retries=2, first_backoff=0.25, max_backoff=1.0)


_gate: Gate | None = None


def gate() -> Gate:
    """The gate of the running pool, or a fresh non-waiting one (a request: two short retries)."""
    return _gate if _gate is not None else _request_gate()


class _Stop:
    pass


_STOP = _Stop()


def run(items: Iterable[Any], work: Callable[[Any], Result]) -> Counter:
    """`work(item)` for every item, on the pool; returns how often each result (a string) came back.
    The first exception a worker raises stops the feeding and is raised here once the workers are done."""
    global _gate
    size = concurrency()
    results: Counter = Counter()
    previous = _gate
    _gate = _pool_gate(size)
    try:
        if db.engine.dialect.name == "sqlite":
            for item in items:
                _count(results, work(item))
        elif processes(size) > 1:
            _run_processes(size, processes(size), iter(items), work, results)
        else:
            _run_threads(size, items, work, results)
        if _gate.rate_limited:
            results["rate_limited"] += _gate.rate_limited
            results["lowest_concurrency"] = _gate.lowest
    finally:
        _gate = previous
    return results


def _pool_gate(size: int) -> Gate:
    cfg = current_app.config
    return Gate(size, retries=int(cfg.get("JOBS_RATE_LIMIT_RETRIES", 8)),
                first_backoff=float(cfg.get("JOBS_RATE_LIMIT_BACKOFF_SECONDS", 0.25)), max_backoff=8.0)


def _count(results: Counter, result: str | None | list[str | None]) -> None:
    """A work item's result, or the results of the units it did one after another (a list)."""
    for one in result if isinstance(result, list) else [result]:
        if one:
            results[one] += 1


def _run_threads(size: int, items: Iterable[Any], work: Callable[[Any], Result], results: Counter) -> None:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    feed: queue.Queue = queue.Queue(maxsize=size * 2)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        with app.app_context(), db.engine.connect() as connection:
            session = db.session()
            # A worker reads what it needs once per item; the money path re-reads what it must under locks
            # (populate_existing) and settles with conditional UPDATEs, so objects are not reloaded after commits.
            session.expire_on_commit = False
            # One connection for the worker's life (checked and pinged once): each unit commits several times, and
            # a checkout per transaction (with its ping round trip) cost more than some of the statements.
            session.get_bind = lambda *_args, **_kwargs: connection  # type: ignore[method-assign]
            while True:
                item = feed.get()
                if item is _STOP:
                    return
                if errors:
                    continue  # drain: another worker failed, the run stops
                try:
                    result = work(item)
                except BaseException as exc:  # noqa: BLE001  (raised again in the calling thread)
                    db.session.rollback()
                    with lock:
                        errors.append(exc)
                    continue
                finally:
                    db.session.rollback()
                    db.session.expunge_all()  # nothing kept between items: memory stays flat
                with lock:
                    _count(results, result)

    threads: list[threading.Thread] = []
    try:
        for item in items:
            if errors:
                break
            if len(threads) < size:  # a worker (and its connection) only when there is work for it
                threads.append(threading.Thread(target=worker, name=f"jobs-worker-{len(threads)}", daemon=True))
                threads[-1].start()
            feed.put(item)
    finally:
        for _ in threads:
            feed.put(_STOP)
        for t in threads:
            t.join()
    if errors:
        raise errors[0]


# --- Several processes ---------------------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _after_fork(parent_pid: int) -> None:
    """In a forked worker process: die with the run, own connections (the run's are dropped unclosed: they stay
    the run's), own Stripe HTTP connections, own random jitter."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the queue's end still stops the process
        pass
    if os.getppid() != parent_pid:  # the run died before the signal was asked for
        os._exit(1)
    for engine in db.engines.values():
        engine.dispose(close=False)
    random.seed()  # (the Stripe clients are forgotten by payments.gateway's own at-fork hook)


def _from_feed(feed: Any) -> Iterator[Any]:
    while True:
        item = feed.get()
        if isinstance(item, _Stop):
            return
        yield item


def _process_main(index: int, parent_pid: int, threads: int, feed: Any, done: Any, stop: Any,
                  work: Callable[[Any], Result]) -> None:
    """A worker process: `threads` workers over the items the run hands out, then what they did (or the error)."""
    global _gate
    _after_fork(parent_pid)
    results: Counter = Counter()
    error = None
    _gate = _pool_gate(threads)
    items = _from_feed(feed)
    try:
        _run_threads(threads, items, work, results)
    except BaseException:  # noqa: BLE001  (sent to the run, which raises it)
        error = traceback.format_exc()
        stop.set()
    for _rest in items:  # drain to the end marker, so the run never waits on a full queue
        pass
    done.put((index, dict(results), _gate.rate_limited, _gate.lowest, error))


class WorkerProcessError(RuntimeError):
    """A worker process failed (its traceback is the message) or died."""


def _run_processes(size: int, count: int, items: Iterator[Any], work: Callable[[Any], Result],
                   results: Counter) -> None:
    first = next(items, _STOP)
    if first is _STOP:
        return  # nothing to do: no process started
    db.session.rollback()  # the run's session holds no connection while the processes work
    pool = _Processes(size, count, work)
    try:
        pool.put(first)
        for item in items:
            if pool.stop.is_set():  # a process failed: the run stops feeding
                break
            pool.put(item)
    finally:
        reports = pool.finish()
    lowest = 0
    for counted, rate_limited, its_lowest, _error in reports:
        results.update(counted)
        lowest += its_lowest
        if _gate is not None:
            _gate.rate_limited += rate_limited
    if _gate is not None:  # as one pool would report it: the processes' lowest limits together
        _gate.lowest = min(_gate.lowest, lowest)
    errors = [error for *_rest, error in reports if error]
    if errors:
        raise WorkerProcessError(errors[0])


class _Processes:
    """`count` forked worker processes sharing `size` threads, fed through one queue."""

    def __init__(self, size: int, count: int, work: Callable[[Any], Result]):
        ctx = multiprocessing.get_context("fork")
        self.feed, self.done, self.stop = ctx.Queue(maxsize=size * 2), ctx.Queue(), ctx.Event()
        shares = [size // count + (1 if k < size % count else 0) for k in range(count)]
        self.procs = [ctx.Process(target=_process_main, name=f"jobs-process-{k}", daemon=True,
                                  args=(k, os.getpid(), threads, self.feed, self.done, self.stop, work))
                      for k, threads in enumerate(shares)]
        for proc in self.procs:
            proc.start()

    def _died(self, reported: dict | None = None) -> bool:
        """A process ended without its report (killed, or crashed outside the work)."""
        return any(proc.exitcode not in (None, 0) and (reported is None or k not in reported)
                   for k, proc in enumerate(self.procs))

    def put(self, item: Any) -> None:
        while True:
            try:
                self.feed.put(item, timeout=0.5)
                return
            except queue.Full:
                if self._died():
                    raise WorkerProcessError("a worker process of the run died") from None

    def finish(self) -> list[tuple]:
        """The end marker for each process, then each one's report (counts, rate limits, lowest limit, error).
        If one died without its report, the others are stopped too (they would wait for items forever, holding
        their connections) and the run fails; what they had claimed is settled by the reconciler."""
        reported: dict[int, tuple] = {}
        try:
            for _ in self.procs:
                self.put(_STOP)
            while len(reported) < len(self.procs):
                try:
                    k, *report = self.done.get(timeout=0.5)
                    reported[k] = tuple(report)
                except queue.Empty:
                    if self._died(reported):
                        raise WorkerProcessError("a worker process of the run died") from None
        except BaseException:
            for proc in self.procs:
                if proc.is_alive():
                    proc.kill()
            raise
        finally:
            for proc in self.procs:
                proc.join()
        return [reported[k] for k in sorted(reported)]
