"""Errors services raise; views put them on the form (docs/architecture.md). A `NotFound` that reaches Flask
is the normal 404 page (portal.errors)."""
from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


class ServiceError(Exception):
    """A rule refused the action. `message` is fit to show to the user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ValidationError(ServiceError):
    """Bad input for one field."""

    def __init__(self, field: str | None, message: str):
        super().__init__(message)
        self.field = field


class NotFound(ServiceError):
    def __init__(self, message: str = "Not found."):
        super().__init__(message)


def found(row: T | None, message: str = "Not found.") -> T:
    """The row a loader looked up, or NotFound: every service loader (`load*`, `*_of`) raises, none returns None."""
    if row is None:
        raise NotFound(message)
    return row


def row_id(value) -> int | None:
    """An id a form or URL names, as the database can hold it: a whole positive number below 2**31 (an int or its
    plain ASCII digits), else None — so an out-of-range or non-numeric id is NotFound, never a database error."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not (value.isascii() and value.isdigit() and len(value) <= 10):
            return None
        value = int(value)
    return value if isinstance(value, int) and 0 < value < 2**31 else None
