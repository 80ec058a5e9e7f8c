"""/admin/settings (admin only): the business and its document terms, payments (PAY-5 fees, R-3 refund window);
custom fields live at /admin/settings/fields."""
from __future__ import annotations

from decimal import Decimal

from flask import flash, redirect, render_template, request, url_for

from admin import bp
from admin.forms import BusinessForm, PaymentSettingsForm
from portal.extensions import db
from portal.services.platform import settings
from portal.services.errors import ValidationError


def _saved(form, action, message: str) -> bool:
    """Save a settings section: commit and say so, or put the rule's reason on its field."""
    try:
        action()
    except ValidationError as exc:
        db.session.rollback()
        getattr(form, exc.field).errors = [exc.message]
        return False
    db.session.commit()
    flash(message, "success")
    return True


def _business_form(current) -> BusinessForm:
    form = BusinessForm(formdata=None)
    form.name.data, form.email.data, form.phone.data = current.name, current.email, current.phone
    form.address.data, form.invoice_due_days.data = current.address, Decimal(current.invoice_due_days or 0)
    form.default_tax.data = Decimal(current.default_tax_bp or 0) / 100
    form.require_card_for_deposits.data = bool(current.require_card_for_deposits)
    return form


@bp.post("/settings/business")
def settings_business():
    form = BusinessForm()
    if form.validate_on_submit() and _saved(form, lambda: settings.update_business(
            name=form.name.data, email=form.email.data, phone=form.phone.data, address=form.address.data,
            invoice_due_days=int(form.invoice_due_days.data), default_tax_bp=int(form.default_tax.data * 100),
            require_card_for_deposits=bool(form.require_card_for_deposits.data)), "Business settings saved."):
        return redirect(url_for("admin.settings_page"))
    payments = PaymentSettingsForm(formdata=None)
    _fill_payments(payments, settings.get())
    return render_template("admin/settings.html", form=payments, business_form=form), 400


def _fill_payments(form: PaymentSettingsForm, current) -> None:
    form.fee_percent.data = Decimal(current.fee_percent_bp) / 100
    form.fee_fixed.data = Decimal(current.fee_fixed_cents) / 100
    form.refund_window_days.data = Decimal(current.refund_window_days)
    form.dunning_hours.data = ", ".join((current.dunning_retry_hours or "").split(","))


@bp.route("/settings", methods=["GET", "POST"])
def settings_page():
    form = PaymentSettingsForm()
    current = settings.get()
    if request.method == "GET":
        _fill_payments(form, current)
    elif form.validate_on_submit() and _saved(form, lambda: settings.update_payments(
            fee_percent_bp=int(form.fee_percent.data * 100), fee_fixed_cents=int(form.fee_fixed.data * 100),
            refund_window_days=int(form.refund_window_days.data),
            dunning_retry_hours=(form.dunning_hours.data or "") if "dunning_hours" in request.form else None),
            "Payment settings saved. New fees apply to payments from now on."):
        return redirect(url_for("admin.settings_page"))
    return render_template("admin/settings.html", form=form, business_form=_business_form(current)), \
        400 if request.method == "POST" else 200
