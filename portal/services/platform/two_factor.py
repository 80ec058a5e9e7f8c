"""Staff two-factor authentication with time-based one-time codes (TOTP, RFC 6238; issue 18).

Enrolment: a secret is created (`begin`), shown as a QR code and as base32 text, and turned on only by a valid
current code (`confirm`), which also returns 10 one-time recovery codes (shown once; stored as SHA-256 — they
are random, so a fast hash is enough). At login, `check` accepts a current code (one 30-s step either side for
clock drift; a step already used is refused, so an overheard code cannot be replayed) or an unused recovery
code, which is then spent. An admin can `reset` a member's two-factor; it is on the activity trail.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

import pyotp
import segno
from flask import current_app
from sqlalchemy import delete, func, select, update

from portal import clock
from portal.extensions import db, execute_dml
from portal.models import ActivityEvent, RecoveryCode, StaffUser
from portal.services.errors import ServiceError, ValidationError
from portal.services.platform import activity, sessions

STEP_SECONDS = 30
RECOVERY_CODES = 10
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _normalise_recovery(code: str) -> str:
    return "".join(ch for ch in (code or "").lower() if ch.isalnum())


def begin(user: StaffUser) -> str:
    """The secret being enrolled (kept until confirmed, so a reload shows the same QR code). Caller commits."""
    if user.has_two_factor:
        raise ServiceError("Two-factor authentication is already on for this account.")
    if not user.totp_secret:
        user.totp_secret = pyotp.random_base32()
    return user.totp_secret


def provisioning_uri(user: StaffUser) -> str:
    issuer = current_app.config.get("BUSINESS_NAME") or "Service portal"
    return pyotp.TOTP(user.totp_secret or "").provisioning_uri(name=user.email, issuer_name=issuer)


def qr_svg(user: StaffUser) -> str:
    """The enrolment QR code as inline SVG markup (no style attributes: the CSP allows no inline style)."""
    return segno.make(provisioning_uri(user), error="m").svg_inline(scale=4, title="QR code for your authenticator app")


def _matching_step(secret: str, code: str) -> int | None:
    code = "".join(ch for ch in (code or "") if not ch.isspace())
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    now_step = int(clock.now().timestamp()) // STEP_SECONDS
    for step in (now_step - 1, now_step, now_step + 1):
        if hmac.compare_digest(totp.at(step * STEP_SECONDS), code):
            return step
    return None


def _accept_code(user: StaffUser, code: str) -> bool:
    step = _matching_step(user.totp_secret or "", code)
    if step is None or (user.totp_last_step is not None and step <= user.totp_last_step):
        return False
    user.totp_last_step = step
    return True


def _new_recovery_codes(user: StaffUser) -> list[str]:
    execute_dml(delete(RecoveryCode).where(RecoveryCode.staff_id == user.id))
    codes = ["".join(secrets.choice(_ALPHABET) for _ in range(10)) for _ in range(RECOVERY_CODES)]
    codes = [f"{c[:5]}-{c[5:]}" for c in codes]
    db.session.add_all(RecoveryCode(staff_id=user.id, code_hash=_hash(_normalise_recovery(c))) for c in codes)
    return codes


def confirm(user: StaffUser, code: str) -> list[str]:
    """Turn two-factor on with a valid current code; returns the recovery codes (show them once). Caller commits."""
    if user.has_two_factor:
        raise ServiceError("Two-factor authentication is already on for this account.")
    if not user.totp_secret:
        raise ServiceError("Start again: open the two-factor page to get a new QR code.")
    if not _accept_code(user, code):
        raise ValidationError("code", "That code is not right. Enter the 6-digit code your app shows now.")
    user.totp_enabled_at = clock.now()
    activity.record(None, "staff", f"{user.name} ({user.email}) turned on two-factor authentication.", staff=user)
    return _new_recovery_codes(user)


def check(user: StaffUser, code: str) -> str | None:
    """The login's second step: "code" for a current code, "recovery" for a recovery code (now spent), None for
    anything else. Caller commits (the used step / spent code)."""
    if not user.has_two_factor:
        return None
    if _accept_code(user, code):
        return "code"
    normalised = _normalise_recovery(code)
    if len(normalised) != 10:
        return None
    spent = execute_dml(update(RecoveryCode).where(
        RecoveryCode.staff_id == user.id, RecoveryCode.code_hash == _hash(normalised), RecoveryCode.used_at.is_(None))
        .values(used_at=clock.now()))
    return "recovery" if spent.rowcount == 1 else None


def recovery_codes_left(user: StaffUser) -> int:
    return db.session.scalar(select(func.count()).select_from(RecoveryCode).where(
        RecoveryCode.staff_id == user.id, RecoveryCode.used_at.is_(None))) or 0


def reset(user: StaffUser, by: StaffUser) -> None:
    """An admin turns a member's two-factor off (a lost phone); the member's sessions end and they enrol again. On
    the activity trail. Caller commits."""
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    execute_dml(delete(RecoveryCode).where(RecoveryCode.staff_id == user.id))
    if user.id != by.id:
        sessions.end_all(staff_id=user.id)  # a lost phone: whoever holds it is logged out too
    activity.record(None, "staff", f"Two-factor authentication of {user.name} ({user.email}) was reset by "
                                   f"{by.name}.", staff=by)


def staff_events(limit: int = 20) -> list[ActivityEvent]:
    """The staff security trail (two-factor turned on or reset), newest first."""
    return list(db.session.scalars(
        select(ActivityEvent).where(ActivityEvent.customer_id.is_(None), ActivityEvent.event_type == "staff")
        .order_by(ActivityEvent.created_at.desc(), ActivityEvent.id.desc()).limit(limit)))
