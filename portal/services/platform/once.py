"""A create form submitted twice (double click, back-and-resubmit, two tabs) creates one thing.

The form carries a one-time key; `remember` stores it with what the submission created, in the same
transaction, under a unique constraint. `earlier` finds what a key already made.
"""
from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal import clock
from portal.extensions import db
from portal.models import FormSubmission

_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def valid(key: str | None) -> bool:
    return bool(key and _KEY.match(key))


def earlier(key: str | None, kind: str) -> int | None:
    if not valid(key):
        return None
    return db.session.scalar(select(FormSubmission.target_id).where(FormSubmission.form_key == f"{kind}:{key}"))


def add_or_existing(row, column, key: str | None):
    """Insert `row`, whose `column` is unique and holds `key`; if the same form already inserted it (a double
    submit, possibly at the same moment), return that earlier row instead. Flushes."""
    db.session.add(row)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        if key is None:  # no key: the clash is some other constraint's, never "the same form twice"
            raise
        existing = db.session.scalars(select(type(row)).where(column == key)).first()
        if existing is not None:
            return existing
        raise
    return row


def remember(key: str | None, kind: str, created):
    """Store the key with the created object's id (flushes); returns the object. Caller commits."""
    db.session.flush()
    if valid(key):
        db.session.add(FormSubmission(form_key=f"{kind}:{key}", kind=kind, target_id=created.id,
                                      created_at=clock.now()))
        db.session.flush()
    return created
