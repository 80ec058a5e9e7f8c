"""One way to run a service call from a view (admin and portal): call it, commit once on success; on a
`ServiceError` roll back and put the reason where the user sees it — on the form (`run_form`) or in a flash
(`run_action`)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from flask import flash
from sqlalchemy.exc import IntegrityError

from portal.extensions import db
from portal.money import MoneyError
from portal.services.errors import NotFound, ServiceError, ValidationError

T = TypeVar("T")


def put_error(form, exc: ServiceError, default_field: str | Callable[[ServiceError], str] | None = None, *,
              aliases: dict[str, str] | None = None, elsewhere: dict | None = None) -> None:
    """Put a service's refusal on the form: on the field the `ValidationError` names (renamed through `aliases`),
    else on `default_field`, else in `elsewhere[name or "form"]` when given (what a page shows outside the
    form's fields, like a line table), else in the form's own errors. `default_field` may depend on the error."""
    name = getattr(exc, "field", None)
    name = (aliases or {}).get(name, name)
    default = default_field(exc) if callable(default_field) else default_field
    field = _field(form, name) or (None if elsewhere is not None and name else _field(form, default))
    if field is not None:
        field.errors = list(field.errors) + [exc.message]
    elif elsewhere is not None:
        elsewhere[name or "form"] = exc.message
    else:
        form.form_errors.append(exc.message)


def _field(form, name: str | None):
    field = getattr(form, name, None) if name else None
    return field if field is not None and hasattr(field, "errors") else None


def error_status(exc: ServiceError | None) -> int:
    """400 for bad input (a field's rule, an unknown id), 409 for a rule the current state refuses."""
    return 400 if isinstance(exc, ValidationError | NotFound) else 409


class Outcome(Generic[T]):
    """What `run_form` did: `ok` and the service's `result`, or the `error` (already on the form)."""

    def __init__(self, ok: bool, result: T | None = None, error: ServiceError | None = None):
        self.ok, self.result, self.error = ok, result, error

    def __bool__(self) -> bool:
        return self.ok

    @property
    def status(self) -> int:
        return 200 if self.ok else error_status(self.error)


def run_form(form, action: Callable[[], T], default_field: str | Callable[[ServiceError], str] | None = None, *,
             duplicate: str | None = None, aliases: dict[str, str] | None = None,
             elsewhere: dict | None = None) -> Outcome[T]:
    """Run `action` for a submitted (and validated) form: commit once on success; on a `ServiceError` roll back
    and put the reason on the form (see `put_error`). `duplicate` is the message for a unique-key clash (the same
    form submitted twice at once)."""
    try:
        result = action()
        db.session.commit()
    except ServiceError as exc:
        db.session.rollback()
        put_error(form, exc, default_field, aliases=aliases, elsewhere=elsewhere)
        return Outcome(False, error=exc)
    except IntegrityError:
        if duplicate is None:
            raise
        db.session.rollback()
        exc = ServiceError(duplicate)
        put_error(form, exc, aliases=aliases, elsewhere=elsewhere)
        return Outcome(False, error=exc)
    return Outcome(True, result)


def run_action(action: Callable[[], T], success: str | Callable[[T], str | None]) -> T | None:
    """Run a service action from a POST button: commit and flash `success` (a text, or one made from the result;
    nothing when empty), or roll back and flash why.
    Returns the action's result, None when it was refused."""
    try:
        result = action()
    except ServiceError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return None
    db.session.commit()
    message = success if isinstance(success, str) else success(result)
    if message:
        flash(message, "success")
    return result


def parsed(field: str, parse: Callable[..., T], *args, **kwargs) -> T:
    """A money or percent parser's answer for one form field; its `MoneyError` becomes that field's
    `ValidationError` (so `run_form` puts it on the field)."""
    try:
        return parse(*args, **kwargs)
    except MoneyError as exc:
        raise ValidationError(field, str(exc)) from None
