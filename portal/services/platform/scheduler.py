"""Q-3: every scheduled rule, run by `flask jobs run`. Each rule is idempotent and safe to run concurrently.

Domains register their rules in `portal.services.wiring` (in the order they must run), so the scheduler, which
sits in `platform`, imports no domain. Each rule commits per unit of work (one plan payment, one invoice, one
email) — the documented exception to "the caller commits once".
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal import clock
from portal.extensions import db
from portal.models import SchedulerRun
from portal.services.platform import settings

Rule = Callable[[], Any]
_rules: dict[str, Rule] = {}
log = logging.getLogger("portal.scheduler")


def register(name: str, rule: Rule) -> None:
    """Add a rule; rules run in the order they were registered (registering a name again replaces it in place)."""
    _rules[name] = rule


def rule_names() -> list[str]:
    return list(_rules)


def run_due(now: datetime | None = None, *, isolate: bool = False,
            should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Run every rule due at `now` (default: the clock's now). Returns what each rule did.

    `isolate` (the `--every` loop): a rule that raises is rolled back and logged, its result is
    `{"error": …}`, and the rules after it still run. `should_stop` is asked between rules (SIGTERM)."""
    # the settings and the time zone are read once for the whole run (not per payment or email)
    with clock.frozen_at(now or clock.now()), settings.fixed_for_run(), clock.fixed_time_zone(clock.business_tz()):
        results: dict[str, Any] = {}
        for name, rule in _rules.items():
            if should_stop is not None and should_stop():
                break
            if not isolate:
                results[name] = rule()
                continue
            try:
                results[name] = rule()
            except Exception as exc:  # one failing rule never stops the others, nor the loop
                db.session.rollback()
                log.exception("scheduler rule %s failed", name)
                results[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        return results


def failed_rules(results: dict[str, Any]) -> list[str]:
    return [name for name, r in results.items() if isinstance(r, dict) and "error" in r]


def record_run(node: str, started: datetime, results: dict[str, Any]) -> None:
    """The pass finished: remember it for /healthz (one row per node). Commits."""
    failed = failed_rules(results)
    node = node[:120]
    row = db.session.scalars(select(SchedulerRun).where(SchedulerRun.node == node)).first()
    if row is None:
        db.session.add(SchedulerRun(node=node, started_at=started, finished_at=clock.now(), runs=0))
        try:
            db.session.commit()
        except IntegrityError:  # another runner of this node wrote it first
            db.session.rollback()
        row = db.session.scalars(select(SchedulerRun).where(SchedulerRun.node == node)).one()
    row.started_at, row.finished_at = started, clock.now()
    row.runs = (row.runs or 0) + 1
    row.failed_rules = ", ".join(failed)[:300] or None
    row.last_error = "; ".join(f"{n}: {results[n]['error']}" for n in failed) or None
    db.session.commit()


def last_run() -> SchedulerRun | None:
    """The newest completed pass of any node."""
    return db.session.scalars(select(SchedulerRun).order_by(SchedulerRun.finished_at.desc()).limit(1)).first()


def run_every(seconds: float, node: str, stop: threading.Event, on_pass: Callable[[dict[str, Any]], None]) -> None:
    """`flask jobs run --every N`: a pass of the due rules every `seconds` until `stop` is set (SIGTERM/SIGINT).
    A failing rule is logged and the loop goes on; a failure to even record the pass (database down) too."""
    while not stop.is_set():
        started = clock.now()
        try:
            results = run_due(isolate=True, should_stop=stop.is_set)
            if not stop.is_set():
                record_run(node, started, results)
            on_pass(results)
        except Exception:
            db.session.rollback()
            log.exception("scheduler pass failed")
        finally:
            db.session.remove()
        stop.wait(max(seconds - (clock.now() - started).total_seconds(), 0.5))
