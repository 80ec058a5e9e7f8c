"""The only source of time (G-2).

Everything that asks "what time is it?" asks here, so tests, the demo and
`flask jobs run --as-of` can move time. Datetimes are timezone-aware UTC;
calendar rules use the business time zone.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from flask import has_app_context

_frozen: datetime | None = None
_fixed_tz: ZoneInfo | None = None
_tz_name: Callable[[], str | None] | None = None


def now() -> datetime:
    """Current instant, aware UTC."""
    if _frozen is not None:
        return _frozen
    return datetime.now(UTC)


def set_now(when: datetime | None) -> None:
    """Move the clock (tests, --as-of). None returns to real time."""
    global _frozen
    if when is not None and when.tzinfo is None:
        raise ValueError("set_now() needs an aware datetime")
    _frozen = when.astimezone(UTC) if when is not None else None


def use_time_zone(name: Callable[[], str | None]) -> None:
    """Where the business time zone's name comes from (the settings, wired by the app factory); the clock itself
    imports nothing of the application, so models and services can all use it."""
    global _tz_name
    _tz_name = name


def business_tz() -> ZoneInfo:
    if _fixed_tz is not None:
        return _fixed_tz
    name = _tz_name() if _tz_name is not None and has_app_context() else None
    return ZoneInfo(name or "UTC")


@contextmanager
def fixed_time_zone(tz: ZoneInfo) -> Iterator[ZoneInfo]:
    """Read the business time zone once for a whole run (the scheduler): no settings query per rule or row."""
    global _fixed_tz
    previous, _fixed_tz = _fixed_tz, tz
    try:
        yield tz
    finally:
        _fixed_tz = previous


def local_now(tz: ZoneInfo | None = None) -> datetime:
    return now().astimezone(tz or business_tz())


def today(tz: ZoneInfo | None = None) -> date:
    return local_now(tz).date()


def parse_as_of(value: str, tz: ZoneInfo | None = None) -> datetime:
    """Parse --as-of: an ISO date or datetime; naive values are business-local."""
    value = value.strip()
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz or business_tz())
    return dt.astimezone(UTC)


class frozen_at:
    """Context manager: the clock reads `when` inside, and whatever it read before, after."""

    def __init__(self, when: datetime):
        self.when = when
        self.previous: datetime | None = None

    def __enter__(self):
        self.previous = _frozen
        set_now(self.when)
        return self.when

    def __exit__(self, *exc):
        set_now(self.previous)
        return False


def to_utc(value: datetime) -> datetime:
    """An aware datetime in UTC (stored values are UTC)."""
    return value.astimezone(UTC)


def to_local(value: datetime) -> datetime:
    """A stored UTC datetime in the business's time zone."""
    return value.astimezone(business_tz())


def from_local(value: datetime | None) -> datetime | None:
    """A naive date-time typed by staff, in the business's time zone → aware UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=business_tz()).astimezone(UTC)
