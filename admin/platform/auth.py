"""S-1, S-2: staff login; issue 18: server-side sessions and the two-factor second step.

A login is a `login_sessions` row (platform.sessions) whose token rides in the signed cookie under `staff_sid`;
Flask-Login's loader (`load_user`) accepts the cookie only while that row exists, so logout — here or from
/admin/account on another browser — ends it everywhere. Logging in rotates the session token and the CSRF token.
With two-factor on, the password step only remembers who is half-way (`staff_2fa_pending`, 10 minutes) and the
code step (`login_code`, rate limited per account) logs in. When Settings › Security requires two-factor, a
member without it is sent to enrolment right after the password step and can open nothing else."""
from __future__ import annotations

from datetime import timedelta

from flask import current_app, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from admin import bp
from admin.platform.forms import SetPasswordForm, StaffLoginForm, TwoFactorLoginForm
from portal import clock
from portal.blueprints.actions import run_form
from portal.extensions import db, limiter
from portal.models import StaffUser
from portal.services.platform import sessions, settings, two_factor
from portal.services.platform import staff as staff_service

FAILED = "That email and password do not match an active staff account."
WRONG_CODE = "That code is not right. Enter the 6-digit code your app shows now, or a recovery code."
SID = "staff_sid"
PENDING = "staff_2fa_pending"
MUST_ENROL = "staff_must_enrol"
PENDING_SECONDS = 600
PRUNE_AFTER = timedelta(days=30)  # a staff session row nobody used for this long is deleted at the owner's next login


def load_user(user_id: str) -> StaffUser | None:
    """Flask-Login's loader: this browser's live session row, and the account and its per-user token (S-3). The
    session's query reads the account too, so a staff page starts with one query, not two."""
    staff_id = staff_service.session_staff_id(user_id)
    if staff_id is None:
        return None
    row = sessions.current(session.get(SID), staff_id=staff_id, with_staff=True)  # no idle limit on staff sessions
    if row is None:
        return None
    user = staff_service.load_from_session(user_id)
    if user is None:
        return None
    g.staff_session_id = row.id
    return user


def _begin(user: StaffUser, target: str):
    """Log in: a new session row and token, a new CSRF token; then where the member was going (or enrolment)."""
    sessions.end(session.pop(SID, None))
    for key in ("csrf_token", PENDING, MUST_ENROL):
        session.pop(key, None)
    user.last_login_at = clock.now()
    token = sessions.start(staff_id=user.id, ip=request.remote_addr, user_agent=request.user_agent.string,
                           idle=PRUNE_AFTER)
    must_enrol = bool(settings.get().require_staff_2fa) and not user.has_two_factor
    db.session.commit()
    login_user(user)
    session[SID] = token
    if must_enrol:
        session[MUST_ENROL] = True
        flash("Two-factor authentication is required for all staff. Set it up now to continue.", "info")
        return redirect(url_for("admin.account_2fa"))
    return redirect(target)


def _failed_login(response) -> bool:
    return response.status_code != 302


def _email_key() -> str:
    return "staff-login:" + (request.form.get("email") or "").strip().lower()[:254]


def _safe_next(target: str | None) -> str:
    """A path inside /admin, else the dashboard: no other host, no control characters (CR/LF would split the
    redirect header), no spaces or backslashes."""
    if (isinstance(target, str) and len(target) <= 2000 and target.startswith("/admin")
            and not target.startswith("//") and target.isprintable() and not any(c.isspace() or c == "\\"
                                                                               for c in target)):
        return target
    return url_for("admin.dashboard")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["STAFF_LOGIN_LIMIT"], methods=["POST"], deduct_when=_failed_login,
               scope="staff-login-ip")
@limiter.limit(lambda: current_app.config["STAFF_LOGIN_LIMIT"], methods=["POST"], deduct_when=_failed_login,
               key_func=_email_key, scope="staff-login-email")
def login():
    if current_user.is_authenticated:
        return redirect(url_for("admin.dashboard"))
    form = StaffLoginForm()
    error = None
    if form.validate_on_submit():
        user = staff_service.authenticate(form.email.data, form.password.data)
        if user is not None:
            target = _safe_next(request.args.get("next"))
            if not user.has_two_factor:
                return _begin(user, target)
            pending = {"s": user.id, "t": user.session_token, "at": int(clock.now().timestamp()), "n": target}
            db.session.rollback()  # the password alone logs nobody in: last_login_at waits for the code
            session[PENDING] = pending
            return redirect(url_for("admin.login_code"))
        error = FAILED
    status = 401 if request.method == "POST" else 200
    return render_template("admin/login.html", form=form, error=error), status


def _pending_user() -> StaffUser | None:
    data = session.get(PENDING)
    if not isinstance(data, dict) or not isinstance(data.get("s"), int) or not isinstance(data.get("at"), int):
        return None
    if not 0 <= clock.now().timestamp() - data["at"] <= PENDING_SECONDS:
        return None
    user = db.session.get(StaffUser, data["s"])
    if user is None or not user.is_active_account or user.session_token != data.get("t") or not user.has_two_factor:
        return None
    return user


def _pending_key() -> str:
    data = session.get(PENDING)
    return f"staff-2fa:{data.get('s') if isinstance(data, dict) else request.remote_addr}"


@bp.route("/login/code", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["STAFF_2FA_LIMIT"], methods=["POST"], deduct_when=_failed_login,
               key_func=_pending_key, scope="staff-2fa")
def login_code():
    """The second step: a current code from the authenticator app, or a recovery code (once each)."""
    user = _pending_user()
    if user is None:
        session.pop(PENDING, None)
        flash("Log in again: the code step is open for 10 minutes after the password.", "error")
        return redirect(url_for("admin.login"))
    form = TwoFactorLoginForm()
    error = None
    if form.validate_on_submit():
        used = two_factor.check(user, form.code.data)
        if used is not None:
            if used == "recovery":
                flash(f"You used a recovery code; {two_factor.recovery_codes_left(user)} left. Each works once.",
                      "info")
            return _begin(user, _safe_next(session[PENDING].get("n")))
        db.session.rollback()
        error = WRONG_CODE
    status = 401 if request.method == "POST" else 200
    return render_template("admin/login_code.html", form=form, error=error), status


@bp.post("/logout")
def logout():
    sessions.end(session.pop(SID, None))
    db.session.commit()
    logout_user()
    for key in (MUST_ENROL, PENDING, "csrf_token"):
        session.pop(key, None)
    return redirect(url_for("admin.login"))


@bp.route("/invitation/<token>", methods=["GET", "POST"])
def invitation(token: str):
    user = staff_service.user_for_invitation(token)
    if user is None:
        return render_template("admin/invitation_invalid.html"), 400
    form = SetPasswordForm()
    if form.validate_on_submit() and run_form(form, lambda: staff_service.set_password(user, form.password.data),
                                              "password"):
        flash("Your password is set. Log in with your email and new password.", "success")
        return redirect(url_for("admin.login"))
    return render_template("admin/invitation.html", form=form, invitee=user), 400 if form.errors else 200
