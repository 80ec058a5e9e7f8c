"""/admin/account: a staff member's own sessions (end one or all) and two-factor enrolment (issue 18). Open to every
role (admin.ACCOUNT_ENDPOINTS)."""
from __future__ import annotations

from flask import flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, logout_user

from admin import bp
from admin.forms import ConfirmForm
from admin.platform.auth import MUST_ENROL, SID
from admin.platform.forms import TwoFactorEnrolForm
from portal.blueprints.actions import run_form
from portal.extensions import db
from portal.services.platform import sessions, two_factor


@bp.get("/account")
def account():
    return render_template("admin/account/index.html", sessions=sessions.of(staff_id=current_user.id),
                           current_session_id=g.get("staff_session_id"), confirm=ConfirmForm(),
                           codes_left=two_factor.recovery_codes_left(current_user) if current_user.has_two_factor
                           else None)


def _logged_out_here():
    logout_user()
    for key in (SID, MUST_ENROL, "csrf_token"):
        session.pop(key, None)
    flash("You are logged out.", "success")
    return redirect(url_for("admin.login"))


@bp.post("/account/sessions/<int:session_id>/end")
def account_session_end(session_id: int):
    if not ConfirmForm().validate_on_submit():
        return redirect(url_for("admin.account"))
    ended = sessions.end_one(session_id, staff_id=current_user.id)
    db.session.commit()
    if ended and session_id == g.get("staff_session_id"):
        return _logged_out_here()
    flash("That session is ended: the browser is logged out." if ended else "That session had already ended.",
          "success" if ended else "info")
    return redirect(url_for("admin.account"))


@bp.post("/account/sessions/end")
def account_sessions_end():
    """"End all other sessions" (scope=others) or "Log out everywhere" (scope=all)."""
    if not ConfirmForm().validate_on_submit():
        return redirect(url_for("admin.account"))
    everywhere = request.form.get("scope") == "all"
    count = sessions.end_all(staff_id=current_user.id, keep_id=None if everywhere else g.get("staff_session_id"))
    db.session.commit()
    if everywhere:
        return _logged_out_here()
    flash(f"{count} other session{'' if count == 1 else 's'} ended.", "success")
    return redirect(url_for("admin.account"))


@bp.route("/account/2fa", methods=["GET", "POST"])
def account_2fa():
    user = current_user._get_current_object()
    form = TwoFactorEnrolForm()
    if user.has_two_factor:
        return render_template("admin/account/two_factor.html", enabled=True,
                               codes_left=two_factor.recovery_codes_left(user))
    if request.method == "GET":
        two_factor.begin(user)
        db.session.commit()
    elif form.validate_on_submit():
        done = run_form(form, lambda: two_factor.confirm(user, form.code.data), "code")
        if done:
            session.pop(MUST_ENROL, None)
            return render_template("admin/account/recovery_codes.html", codes=done.result)
    if not user.totp_secret:  # a POST without a started enrolment
        return redirect(url_for("admin.account_2fa"))
    return render_template("admin/account/two_factor.html", enabled=False, form=form, secret=user.totp_secret,
                           qr=two_factor.qr_svg(user)), 400 if form.errors else 200
