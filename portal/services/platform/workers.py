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

`gate()` bounds calls to an outside service (the card processor) and adapts: `slow_down()` after a rate-limit
answer halves how many calls may be in flight, each run of successes lets one more in again (AIMD), up to the
pool's size. Outside a pool it is a gate that never waits, with short back-offs (a customer is waiting on a page).
"""
from __future__ import annotations

import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from flask import current_app

from portal.extensions import db

DEFAULT_CONCURRENCY = 8
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
    cfg = current_app.config
    _gate = Gate(size, retries=int(cfg.get("JOBS_RATE_LIMIT_RETRIES", 8)),
                 first_backoff=float(cfg.get("JOBS_RATE_LIMIT_BACKOFF_SECONDS", 0.25)), max_backoff=8.0)
    try:
        if db.engine.dialect.name == "sqlite":
            for item in items:
                _count(results, work(item))
        else:
            _run_threads(size, items, work, results)
        if _gate.rate_limited:
            results["rate_limited"] += _gate.rate_limited
            results["lowest_concurrency"] = _gate.lowest
    finally:
        _gate = previous
    return results


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
        with app.app_context():
            session = db.session()
            # A worker reads what it needs once per item; the money path re-reads what it must under locks
            # (populate_existing) and settles with conditional UPDATEs, so objects are not reloaded after commits.
            session.expire_on_commit = False
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
