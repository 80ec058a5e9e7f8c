"""A-1 … A-6: signed portal links.

A token is signed for its purpose (salt), carries 128 random bits, the customer id and a
fingerprint of the customer's `auth_secret`; rotating that secret revokes every link and
session at once. Timestamps come from the clock so tests can move time.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired
from sqlalchemy import func, select

from portal import clock
from portal.extensions import db
from portal.models import Customer, CustomerEmail, StaffUser
from portal.models.customers import new_auth_secret
from portal.services.errors import ServiceError
from portal.services.platform import activity, mailer, sessions
from portal.services.platform.signing import serializer as _serializer

LOGIN_SALT = "portal-login"


def fingerprint(customer: Customer) -> str:
    """What links and sessions carry of the per-customer secret (never the secret itself)."""
    return hmac.new(current_app.config["SECRET_KEY"].encode(), customer.auth_secret.encode(),
                    hashlib.sha256).hexdigest()[:32]


def max_age() -> timedelta:
    return timedelta(days=current_app.config["MAGIC_LINK_MAX_AGE_DAYS"])


def issue_token(customer: Customer, next_path: str | None = None) -> str:
    payload = {"c": customer.id, "v": fingerprint(customer), "n": secrets.token_urlsafe(16)}
    if next_path and next_path.startswith("/portal/"):
        payload["p"] = next_path
    return _serializer(LOGIN_SALT).dumps(payload)


def portal_link(customer: Customer, next_path: str | None = None) -> str:
    base = current_app.config["BASE_URL"].rstrip("/")
    return f"{base}/portal/magic/{issue_token(customer, next_path)}"


@dataclass
class Redemption:
    outcome: str  # "ok" | "expired" | "invalid"
    customer: Customer | None = None
    next_path: str | None = None
    resent: bool = False


def _customer_for(payload) -> Customer | None:
    if not isinstance(payload, dict) or not isinstance(payload.get("c"), int):
        return None
    customer = db.session.get(Customer, payload["c"])
    if customer is None or not customer.can_log_in:
        return None
    if not hmac.compare_digest(str(payload.get("v", "")), fingerprint(customer)):
        return None
    return customer


def redeem(token: str) -> Redemption:
    """A-2, A-3, A-4. Caller commits (an expired link may have queued a new one)."""
    serializer = _serializer(LOGIN_SALT)
    try:
        payload = serializer.loads(token, max_age=int(max_age().total_seconds()))
    except SignatureExpired as exc:
        assert exc.payload is not None  # itsdangerous types it Optional; loads(max_age=...) always sets it
        try:
            payload = serializer.load_payload(exc.payload)
        except BadSignature:
            return Redemption("invalid")
        customer = _customer_for(payload)
        if customer is None:
            return Redemption("invalid")
        return Redemption("expired", customer, resent=_auto_resend(customer))
    except BadSignature:
        return Redemption("invalid")
    customer = _customer_for(payload)
    if customer is None:
        return Redemption("invalid")
    customer.last_portal_login_at = clock.now()
    return Redemption("ok", customer, next_path=payload.get("p"))


def _auto_resend(customer: Customer) -> bool:
    """A-3: at most one automatic re-send per 10 minutes per customer."""
    window = timedelta(minutes=current_app.config["MAGIC_LINK_AUTO_RESEND_MINUTES"])
    now = clock.now()
    if customer.last_auto_link_sent_at is not None and now - customer.last_auto_link_sent_at < window:
        return False
    to = customer.primary_email
    if not to:
        return False
    customer.last_auto_link_sent_at = now
    mailer.queue_email("portal_new_link", to, {"link": portal_link(customer)}, customer=customer)
    activity.record(customer.id, "portal", "An expired portal link was used; a new link was emailed.",
                    actor_kind="customer")
    return True


def send_invitation(customer: Customer, staff: StaffUser | None) -> None:
    """A-1: staff send the portal invitation."""
    if not customer.can_log_in:
        raise ServiceError("Archived or blacklisted customers cannot be invited to the portal.")
    to = customer.primary_email
    if not to:
        raise ServiceError("Add an email address to this customer first.")
    mailer.queue_email("portal_invitation", to, {"link": portal_link(customer)}, customer=customer, actor=staff)
    activity.record(customer.id, "portal", f"Portal invitation sent to {to}.", staff=staff)


def request_link(email: str) -> None:
    """A-5: email a login link if the address belongs to a customer who may log in. Says nothing either way."""
    address = (email or "").strip().lower()
    if not address:
        return
    customers = db.session.scalars(
        select(Customer).join(CustomerEmail).where(func.lower(CustomerEmail.email) == address)).unique().all()
    for customer in customers:
        if customer.can_log_in:
            mailer.queue_email("portal_login_link", address, {"link": portal_link(customer)}, customer=customer)


def revoke(customer: Customer, staff: StaffUser | None) -> None:
    """A-6: every outstanding link and open portal session of this customer stops working."""
    customer.auth_secret = new_auth_secret()
    sessions.end_all(customer_id=customer.id)
    activity.record(customer.id, "portal", "All portal links revoked and portal sessions logged out.", staff=staff)
