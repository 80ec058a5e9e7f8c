"""S-3: staff accounts (admin role only: endpoints start with admin.staff)."""
from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_login import current_user

from admin import bp
from admin.forms import ConfirmForm
from admin.platform.forms import StaffInviteForm, StaffRoleForm
from portal.blueprints.actions import run_action, run_form
from portal.services.platform import staff as staff_service
from portal.services.platform import two_factor


@bp.route("/staff", methods=["GET", "POST"])
def staff_list():
    form = StaffInviteForm()
    if form.validate_on_submit():
        done = run_form(form, lambda: staff_service.invite(form.email.data, form.name.data, form.role.data,
                                                           current_user), "email")
        if done:
            flash(f"Invitation sent to {done.result.email}.", "success")
            return redirect(url_for("admin.staff_list"))
    return render_template("admin/staff/list.html", form=form, members=staff_service.all_staff(),
                           confirm=ConfirmForm(), security_events=two_factor.staff_events()), \
        400 if form.errors else 200


@bp.post("/staff/<int:staff_id>/role")
def staff_role(staff_id: int):
    user = staff_service.load(staff_id)
    form = StaffRoleForm()
    if form.validate_on_submit():
        run_action(lambda: staff_service.change_role(user, form.role.data, current_user),
                   lambda _: f"{user.name} is now {user.role}.")
    else:
        flash("Choose a role.", "error")
    return redirect(url_for("admin.staff_list"))


@bp.post("/staff/<int:staff_id>/deactivate")
def staff_deactivate(staff_id: int):
    user = staff_service.load(staff_id)
    if ConfirmForm().validate_on_submit():
        run_action(lambda: staff_service.deactivate(user, current_user),
                   f"{user.name} is deactivated and logged out everywhere.")
    return redirect(url_for("admin.staff_list"))


@bp.post("/staff/<int:staff_id>/reactivate")
def staff_reactivate(staff_id: int):
    user = staff_service.load(staff_id)
    if ConfirmForm().validate_on_submit():
        run_action(lambda: staff_service.reactivate(user, current_user), f"{user.name} is active again.")
    return redirect(url_for("admin.staff_list"))


@bp.post("/staff/<int:staff_id>/resend-invitation")
def staff_resend(staff_id: int):
    user = staff_service.load(staff_id)
    if ConfirmForm().validate_on_submit() and user.is_active_account:
        run_action(lambda: staff_service.send_invitation(user), f"Invitation sent again to {user.email}.")
    return redirect(url_for("admin.staff_list"))


@bp.post("/staff/<int:staff_id>/reset-2fa")
def staff_reset_2fa(staff_id: int):
    """Issue 18: a member lost their authenticator; they set it up again at their next login. On the trail below."""
    user = staff_service.load(staff_id)
    if ConfirmForm().validate_on_submit():
        run_action(lambda: two_factor.reset(user, current_user),
                   f"Two-factor authentication of {user.name} is reset; they set it up again after logging in.")
    return redirect(url_for("admin.staff_list"))
