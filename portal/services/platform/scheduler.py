"""Q-3: every scheduled rule, run by `flask jobs run`. Each rule is idempotent and safe to run concurrently.

Domains register their rules in `portal.services.wiring` (in the order they must run), so the scheduler, which
sits in `platform`, imports no domain. Each rule commits per unit of work (one plan payment, one invoice, one
email) — the documented exception to "the caller commits once".
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from portal import clock

Rule = Callable[[], Any]
_rules: dict[str, Rule] = {}


def register(name: str, rule: Rule) -> None:
    """Add a rule; rules run in the order they were registered (registering a name again replaces it in place)."""
    _rules[name] = rule


def rule_names() -> list[str]:
    return list(_rules)


def run_due(now: datetime | None = None) -> dict[str, Any]:
    """Run every rule due at `now` (default: the clock's now). Returns what each rule did."""
    with clock.frozen_at(now or clock.now()), clock.fixed_time_zone(clock.business_tz()):
        return {name: rule() for name, rule in _rules.items()}
