"""S-1 … S-3: staff accounts."""
from __future__ import annotations

from flask import current_app
from itsdangerous import BadSignature
from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from portal import clock
from portal.extensions import db
from portal.models import StaffUser
from portal.models.staff import ROLES
from portal.services.errors import ServiceError, ValidationError, found
from portal.services.platform import mailer, sessions
from portal.services.platform.signing import serializer

INVITE_SALT = "staff-invite"
INVITE_MAX_AGE = 7 * 24 * 3600
MIN_PASSWORD = 10
# Checked when the email is unknown, so both paths cost one KDF run (S-2).
_DUMMY_HASH = generate_password_hash("not-a-real-password")


def by_email(email: str) -> StaffUser | None:
    return db.session.scalars(
        select(StaffUser).where(func.lower(StaffUser.email) == (email or "").strip().lower())).first()


def authenticate(email: str, password: str) -> StaffUser | None:
    user = by_email(email)
    if user is None or not user.password_hash:
        check_password_hash(_DUMMY_HASH, password or "")
        return None
    if not check_password_hash(user.password_hash, password or ""):
        return None
    if not user.is_active_account:
        return None
    user.last_login_at = clock.now()
    return user


def _check_password(password: str) -> None:
    if len(password or "") < MIN_PASSWORD:
        raise ValidationError("password", f"Use at least {MIN_PASSWORD} characters.")
    if len(password) > 200:
        raise ValidationError("password", "Use at most 200 characters.")


def create(email: str, name: str, role: str, password: str | None = None) -> StaffUser:
    email = (email or "").strip().lower()
    if role not in ROLES:
        raise ValidationError("role", "Choose a role.")
    if by_email(email) is not None:
        raise ValidationError("email", "A staff account with this email already exists.")
    user = StaffUser(email=email, name=(name or "").strip() or email, role=role, is_active_account=True,
                     created_at=clock.now())
    if password is not None:
        _check_password(password)
        user.password_hash = generate_password_hash(password)
    db.session.add(user)
    db.session.flush()
    return user


def invite(email: str, name: str, role: str, by: StaffUser) -> StaffUser:
    """S-3: create the account and email a link to choose a password."""
    user = create(email, name, role)
    user.invited_at = clock.now()
    send_invitation(user)
    return user


def send_invitation(user: StaffUser) -> None:
    token = serializer(INVITE_SALT).dumps({"s": user.id, "t": user.session_token})
    link = f"{current_app.config['BASE_URL'].rstrip('/')}/admin/invitation/{token}"
    mailer.queue_email("staff_invitation", user.email, {"link": link, "invitee": user}, staff=user)


def user_for_invitation(token: str) -> StaffUser | None:
    try:
        data = serializer(INVITE_SALT).loads(token, max_age=INVITE_MAX_AGE)
    except BadSignature:
        return None
    if not isinstance(data, dict):
        return None
    user = db.session.get(StaffUser, data.get("s"))
    if user is None or user.session_token != data.get("t") or not user.is_active_account:
        return None
    return user


def set_password(user: StaffUser, password: str) -> None:
    _check_password(password)
    user.password_hash = generate_password_hash(password)
    user.rotate_session_token()  # other sessions and the invitation link stop working
    sessions.end_all(staff_id=user.id)


def _active_admins() -> int:
    return db.session.scalar(select(func.count()).select_from(StaffUser).where(
        StaffUser.role == "admin", StaffUser.is_active_account.is_(True))) or 0


def change_role(user: StaffUser, role: str, by: StaffUser) -> None:
    if role not in ROLES:
        raise ValidationError("role", "Choose a role.")
    if user.role == "admin" and role != "admin" and _active_admins() <= 1:
        raise ServiceError("The last active admin cannot lose the admin role.")
    user.role = role


def deactivate(user: StaffUser, by: StaffUser) -> None:
    """S-3: the account is logged out everywhere (its session token changes)."""
    if user.id == by.id:
        raise ServiceError("You cannot deactivate your own account.")
    if user.role == "admin" and _active_admins() <= 1:
        raise ServiceError("The last active admin cannot be deactivated.")
    user.is_active_account = False
    user.deactivated_at = clock.now()
    user.rotate_session_token()
    sessions.end_all(staff_id=user.id)


def reactivate(user: StaffUser, by: StaffUser) -> None:
    user.is_active_account = True
    user.deactivated_at = None


def session_staff_id(session_id: str) -> int | None:
    """The staff id in Flask-Login's '<id>:<session_token>' (not yet checked: `load_from_session` checks it)."""
    user_id = (session_id or "").partition(":")[0]
    return int(user_id) if user_id.isascii() and user_id.isdigit() and int(user_id) < 2**31 else None


def load_from_session(session_id: str) -> StaffUser | None:
    """Flask-Login loader: '<id>:<session_token>'; a rotated token logs the session out."""
    user_id, _, token = (session_id or "").partition(":")
    if not user_id.isdigit():
        return None
    user = db.session.get(StaffUser, int(user_id))
    if user is None or not user.is_active_account or user.session_token != token:
        return None
    return user


_ACTIVE = select(StaffUser).where(StaffUser.is_active_account.is_(True)).order_by(StaffUser.name)  # built once


def active_staff() -> list[StaffUser]:
    return list(db.session.scalars(_ACTIVE))


def load(staff_id: int) -> StaffUser:
    return found(db.session.get(StaffUser, staff_id), "Staff member not found.")


def all_staff() -> list[StaffUser]:
    """Everyone, active first (the staff page)."""
    return list(db.session.scalars(select(StaffUser).order_by(StaffUser.is_active_account.desc(), StaffUser.name)))
