"""S-3: staff accounts (admin role only: endpoints start with admin.staff)."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select

from admin import bp
from admin.forms import ConfirmForm, StaffInviteForm, StaffRoleForm
from portal.extensions import db
from portal.models import StaffUser
from portal.services.platform import staff as staff_service
from portal.services.errors import ServiceError, ValidationError


def _staff_or_404(staff_id: int) -> StaffUser:
    user = db.session.get(StaffUser, staff_id)
    if user is None:
        abort(404)
    return user


@bp.route("/staff", methods=["GET", "POST"])
def staff_list():
    form = StaffInviteForm()
    if form.validate_on_submit():
        try:
            user = staff_service.invite(form.email.data, form.name.data, form.role.data, current_user)
        except ValidationError as exc:
            db.session.rollback()
            getattr(form, exc.field).errors.append(exc.message)
        else:
            db.session.commit()
            flash(f"Invitation sent to {user.email}.", "success")
            return redirect(url_for("admin.staff_list"))
    members = db.session.scalars(select(StaffUser).order_by(StaffUser.is_active_account.desc(), StaffUser.name)).all()
    return render_template("admin/staff/list.html", form=form, members=members, confirm=ConfirmForm()), \
        400 if form.errors else 200


@bp.post("/staff/<int:staff_id>/role")
def staff_role(staff_id: int):
    user = _staff_or_404(staff_id)
    form = StaffRoleForm()
    if form.validate_on_submit():
        try:
            staff_service.change_role(user, form.role.data, current_user)
        except ServiceError as exc:
            db.session.rollback()
            flash(exc.message, "error")
        else:
            db.session.commit()
            flash(f"{user.name} is now {user.role}.", "success")
    else:
        flash("Choose a role.", "error")
    return redirect(url_for("admin.staff_list"))


@bp.post("/staff/<int:staff_id>/deactivate")
def staff_deactivate(staff_id: int):
    user = _staff_or_404(staff_id)
    if ConfirmForm().validate_on_submit():
        try:
            staff_service.deactivate(user, current_user)
        except ServiceError as exc:
            db.session.rollback()
            flash(exc.message, "error")
        else:
            db.session.commit()
            flash(f"{user.name} is deactivated and logged out everywhere.", "success")
    return redirect(url_for("admin.staff_list"))


@bp.post("/staff/<int:staff_id>/reactivate")
def staff_reactivate(staff_id: int):
    user = _staff_or_404(staff_id)
    if ConfirmForm().validate_on_submit():
        staff_service.reactivate(user, current_user)
        db.session.commit()
        flash(f"{user.name} is active again.", "success")
    return redirect(url_for("admin.staff_list"))


@bp.post("/staff/<int:staff_id>/resend-invitation")
def staff_resend(staff_id: int):
    user = _staff_or_404(staff_id)
    if ConfirmForm().validate_on_submit() and user.is_active_account:
        staff_service.send_invitation(user)
        db.session.commit()
        flash(f"Invitation sent again to {user.email}.", "success")
    return redirect(url_for("admin.staff_list"))
