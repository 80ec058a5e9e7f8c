"""One way to run a service action from a POST button: commit and say so, or roll back and say why."""
from __future__ import annotations

from typing import Callable, TypeVar

from flask import flash

from portal.extensions import db
from portal.services.errors import ServiceError

T = TypeVar("T")


def run_action(action: Callable[[], T], success: Callable[[T], str]) -> T | None:
    try:
        result = action()
    except ServiceError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return None
    db.session.commit()
    flash(success(result), "success")
    return result
