"""A-6, A-8: the portal session. Separate from staff logins (Flask-Login), so one browser can hold both.

The session stores the customer id, the fingerprint of the customer's auth secret (a revoke
rotates it and the session dies), a random session token (new on every login: rotation) whose
server-side row (`platform.sessions`) must still exist — logout deletes it, so a replayed cookie
opens nothing — and the time of the last request (idle expiry, measured on the clock).
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import current_app, g, redirect, request, session, url_for
from werkzeug.local import LocalProxy

from portal import clock
from portal.extensions import db
from portal.models import Customer
from portal.services.platform import magic_links, sessions

KEY = "portal"
PUBLIC_ENDPOINTS = {"portal.auth.login", "portal.auth.magic", "portal.auth.sent", "portal.auth.logout"}

current_customer: Customer = LocalProxy(lambda: g.get("customer"))  # type: ignore[assignment]


# a staff login in the same browser is another principal (admin.platform.auth keeps its own keys)
STAFF_KEYS = ("_user_id", "_fresh", "_id", "_remember", "staff_sid", "staff_2fa_pending", "staff_must_enrol")


def _idle() -> timedelta:
    return timedelta(hours=float(current_app.config["PORTAL_IDLE_TIMEOUT_HOURS"]))


def log_in(customer: Customer) -> None:
    old = session.get(KEY)
    if isinstance(old, dict):
        sessions.end(old.get("sid"))  # the session this browser had before is over
    kept = {k: session[k] for k in ("lang", *STAFF_KEYS) if k in session}
    session.clear()  # rotation: nothing of the portal's from before the login survives (old CSRF token included)
    session.update(kept)
    if session.get("lang") in current_app.config["LANGUAGES"] and customer.preferred_language != session["lang"]:
        customer.preferred_language = session["lang"]  # chosen with the switcher before logging in (P-9)
    token = sessions.start(customer_id=customer.id, ip=request.remote_addr, user_agent=request.user_agent.string,
                           idle=_idle())
    db.session.commit()
    session[KEY] = {"cid": customer.id, "v": magic_links.fingerprint(customer), "sid": token,
                    "seen": int(clock.now().timestamp())}
    session.permanent = True


def log_out() -> None:
    data = session.pop(KEY, None)
    if isinstance(data, dict):
        sessions.end(data.get("sid"))
        db.session.commit()


def _load() -> Customer | None:
    data = session.get(KEY)
    if not isinstance(data, dict) or not isinstance(data.get("cid"), int):
        return None
    idle = _idle()
    try:
        seen = datetime.fromtimestamp(int(data.get("seen", 0)), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        seen = datetime.fromtimestamp(0, tz=UTC)
    if clock.now() - seen > idle:
        sessions.end(data.get("sid"))
        db.session.commit()
        session.pop(KEY, None)
        g.portal_session_expired = True
        return None
    customer = db.session.get(Customer, data["cid"])
    if customer is None or not customer.can_log_in or data.get("v") != magic_links.fingerprint(customer) or \
            sessions.current(data.get("sid"), customer_id=customer.id, idle=idle) is None:
        session.pop(KEY, None)  # logged out, revoked or ended elsewhere: a replayed cookie opens nothing
        return None
    data["seen"] = int(clock.now().timestamp())
    session[KEY] = data
    return customer


def _remember_language() -> None:
    """P-9: the switcher (?lang=xx) sticks: in the session, and as the customer's preference for emails too."""
    chosen = request.args.get("lang")
    if chosen not in current_app.config["LANGUAGES"]:
        return
    session["lang"] = chosen
    if g.customer is not None and g.customer.preferred_language != chosen:
        g.customer.preferred_language = chosen
        db.session.commit()


def guard():
    g.customer = _load()
    _remember_language()
    if request.endpoint in PUBLIC_ENDPOINTS or request.endpoint is None:
        return None
    if g.customer is None:
        expired = "1" if g.get("portal_session_expired") else None
        return redirect(url_for("portal.auth.login", expired=expired))
    return None


def after(response):
    response.headers.setdefault("Cache-Control", "no-store")
    return response
