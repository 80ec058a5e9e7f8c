"""S-1, S-2: staff login."""
from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user

from admin import bp
from admin.platform.forms import SetPasswordForm, StaffLoginForm
from portal.blueprints.actions import run_form
from portal.extensions import db, limiter
from portal.services.platform import staff as staff_service

FAILED = "That email and password do not match an active staff account."


def _failed_login(response) -> bool:
    return response.status_code != 302


def _email_key() -> str:
    return "staff-login:" + (request.form.get("email") or "").strip().lower()[:254]


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/admin") and not target.startswith("//"):
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
            db.session.commit()
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        error = FAILED
    status = 401 if request.method == "POST" else 200
    return render_template("admin/login.html", form=form, error=error), status


@bp.post("/logout")
def logout():
    logout_user()
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
