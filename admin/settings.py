"""/admin/settings (admin only). Today: the payments section (PAY-5 fees, R-3 refund window)."""
from __future__ import annotations

from decimal import Decimal

from flask import flash, redirect, render_template, request, url_for

from admin import bp
from admin.forms import PaymentSettingsForm
from portal.extensions import db
from portal.services import settings
from portal.services.errors import ValidationError


@bp.route("/settings", methods=["GET", "POST"])
def settings_page():
    form = PaymentSettingsForm()
    current = settings.get()
    if request.method == "GET":
        form.fee_percent.data = Decimal(current.fee_percent_bp) / 100
        form.fee_fixed.data = Decimal(current.fee_fixed_cents) / 100
        form.refund_window_days.data = Decimal(current.refund_window_days)
    elif form.validate_on_submit():
        try:
            settings.update_payments(fee_percent_bp=int(form.fee_percent.data * 100),
                                     fee_fixed_cents=int(form.fee_fixed.data * 100),
                                     refund_window_days=int(form.refund_window_days.data))
        except ValidationError as exc:
            db.session.rollback()
            getattr(form, exc.field).errors = [exc.message]
        else:
            db.session.commit()
            flash("Payment settings saved. New fees apply to payments from now on.", "success")
            return redirect(url_for("admin.settings_page"))
    return render_template("admin/settings.html", form=form), 400 if request.method == "POST" else 200
