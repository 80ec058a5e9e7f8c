"""Server-side login sessions, for the customer portal and for staff (issue 18).

The signed session cookie carries a random token; the `login_sessions` row holds its SHA-256 with who logged in,
when, from which IP and browser. A request is logged in only while the row exists, so logging out (deleting it)
ends the session for good: a copy of the cookie replayed later opens nothing, on any app node sharing the
database. Staff see and end their sessions at /admin/account; a portal revoke (A-6) ends a customer's.

`current` commits itself when it touches or expires a row: that bookkeeping is its own unit of work, done before
the view runs, and the touch is written at most once a minute (`TOUCH_EVERY`) so a page view rarely writes.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from functools import cache

from sqlalchemy import Integer, String, bindparam, delete, select
from sqlalchemy.orm import joinedload

from portal import clock
from portal.extensions import db, execute_dml
from portal.models import LoginSession

TOUCH_EVERY = timedelta(minutes=1)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _one_owner(staff_id: int | None, customer_id: int | None) -> None:
    if (staff_id is None) == (customer_id is None):
        raise ValueError("a login session belongs to one staff member or one customer")


def _owner(staff_id: int | None, customer_id: int | None):
    _one_owner(staff_id, customer_id)
    if staff_id is not None:
        return LoginSession.staff_id == staff_id
    return LoginSession.customer_id == customer_id


def start(*, staff_id: int | None = None, customer_id: int | None = None, ip: str | None = None,
          user_agent: str | None = None, idle: timedelta | None = None) -> str:
    """A new session; returns the token for the cookie (never stored). The owner's sessions idle longer than
    `idle` are deleted on the way, so the table holds live sessions only. Caller commits."""
    owner = _owner(staff_id, customer_id)
    now = clock.now()
    if idle is not None:
        execute_dml(delete(LoginSession).where(owner, LoginSession.last_seen_at < now - idle))
    token = secrets.token_urlsafe(32)
    db.session.add(LoginSession(token_hash=_hash(token), staff_id=staff_id, customer_id=customer_id,
                                created_at=now, last_seen_at=now, ip=(ip or "")[:45] or None,
                                user_agent=(user_agent or "")[:255] or None))
    db.session.flush()
    return token


def current(token, *, staff_id: int | None = None, customer_id: int | None = None,
            idle: timedelta | None = None, with_staff: bool = False) -> LoginSession | None:
    """The live session for this cookie token and owner, or None (logged out, ended elsewhere, idle too long).
    Commits a touch (at most once a minute) or an expiry. `with_staff`: the staff member is read in the same query
    (`row.staff`, so the staff loader's `db.session.get` finds it loaded)."""
    if not isinstance(token, str) or not token or len(token) > 100:
        return None
    _one_owner(staff_id, customer_id)
    row = db.session.scalars(_current_stmt(staff_id is not None, with_staff), {
        "token_hash": _hash(token), "owner_id": staff_id if staff_id is not None else customer_id}).first()
    if row is None:
        return None
    now = clock.now()
    if idle is not None and now - row.last_seen_at > idle:
        db.session.delete(row)
        db.session.commit()
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
        db.session.commit()
    return row


@cache
def _current_stmt(of_staff: bool, with_staff: bool):
    """`current`'s SELECT, built once per process (every page view runs it): the token's hash and the owner are
    parameters."""
    owner = LoginSession.staff_id if of_staff else LoginSession.customer_id
    stmt = select(LoginSession).where(LoginSession.token_hash == bindparam("token_hash", type_=String()),
                                      owner == bindparam("owner_id", type_=Integer()))
    return stmt.options(joinedload(LoginSession.staff)) if with_staff else stmt


def end(token) -> None:
    """Logout: the session with this token stops working. Caller commits."""
    if isinstance(token, str) and token:
        execute_dml(delete(LoginSession).where(LoginSession.token_hash == _hash(token)))


def end_one(session_id: int, *, staff_id: int | None = None, customer_id: int | None = None) -> bool:
    """End one of the owner's sessions (another browser); False when it is not theirs or already gone."""
    result = execute_dml(delete(LoginSession).where(LoginSession.id == session_id, _owner(staff_id, customer_id)))
    return bool(result.rowcount)


def end_all(*, staff_id: int | None = None, customer_id: int | None = None, keep_id: int | None = None) -> int:
    """End every session of the owner (all but `keep_id`); returns how many. Caller commits."""
    stmt = delete(LoginSession).where(_owner(staff_id, customer_id))
    if keep_id is not None:
        stmt = stmt.where(LoginSession.id != keep_id)
    return execute_dml(stmt).rowcount


def of(*, staff_id: int | None = None, customer_id: int | None = None) -> list[LoginSession]:
    """The owner's sessions, most recently used first."""
    return list(db.session.scalars(select(LoginSession).where(_owner(staff_id, customer_id))
                                   .order_by(LoginSession.last_seen_at.desc(), LoginSession.id.desc())))
