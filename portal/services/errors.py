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
