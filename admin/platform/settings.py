"""/admin/settings (admin only): the business and its document terms, payments (PAY-5 fees, R-3 refund window).
Custom fields live at /admin/settings/fields (admin.crm), plan templates at /admin/settings/plans (admin.plans),
invoice automations at /admin/settings/automations (admin.billing)."""
from __future__ import annotations

from decimal import Decimal

from flask import flash, redirect, render_template, request, url_for

from admin import bp
from admin.platform.forms import BusinessForm, PaymentSettingsForm, SecuritySettingsForm
from portal.blueprints.actions import parsed, run_form
from portal.money import parse_amount, parse_percent_bp, percent_to_input, to_input
from portal.services.platform import settings

NOT_A_PERCENT = "Enter a number, like 2.95."


def _business_form(current) -> BusinessForm:
    form = BusinessForm(formdata=None)
    form.name.data, form.email.data, form.phone.data = current.name, current.email, current.phone
    form.address.data, form.invoice_due_days.data = current.address, Decimal(current.invoice_due_days or 0)
    form.default_tax.data = percent_to_input(current.default_tax_bp)
    form.require_card_for_deposits.data = bool(current.require_card_for_deposits)
    return form


@bp.post("/settings/business")
def settings_business():
    form = BusinessForm()
    if form.validate_on_submit() and run_form(form, lambda: settings.update_business(
            name=form.name.data, email=form.email.data, phone=form.phone.data, address=form.address.data,
            invoice_due_days=int(form.invoice_due_days.data),
            default_tax_bp=parsed("default_tax", parse_percent_bp, form.default_tax.data, blank=None,
                                  invalid="Enter a number, like 8.25 (0 for none)."),
            require_card_for_deposits=bool(form.require_card_for_deposits.data))):
        flash("Business settings saved.", "success")
        return redirect(url_for("admin.settings_page"))
    payments = PaymentSettingsForm(formdata=None)
    _fill_payments(payments, settings.get())
    return render_template("admin/settings.html", form=payments, business_form=form), 400


def _fill_payments(form: PaymentSettingsForm, current) -> None:
    form.fee_percent.data = percent_to_input(current.fee_percent_bp)
    form.fee_fixed.data = to_input(current.fee_fixed_cents, settings.currency())
    form.refund_window_days.data = Decimal(current.refund_window_days)
    form.dunning_hours.data = ", ".join((current.dunning_retry_hours or "").split(","))


def _save_payments(form: PaymentSettingsForm):
    return settings.update_payments(
        fee_percent_bp=parsed("fee_percent", parse_percent_bp, form.fee_percent.data, blank=None,
                              invalid=NOT_A_PERCENT),
        fee_fixed_cents=parsed("fee_fixed", parse_amount, form.fee_fixed.data, settings.currency()),
        refund_window_days=int(form.refund_window_days.data),
        dunning_retry_hours=(form.dunning_hours.data or "") if "dunning_hours" in request.form else None)


@bp.route("/settings", methods=["GET", "POST"])
def settings_page():
    form = PaymentSettingsForm()
    current = settings.get()
    if request.method == "GET":
        _fill_payments(form, current)
    elif form.validate_on_submit() and run_form(form, lambda: _save_payments(form)):
        flash("Payment settings saved. New fees apply to payments from now on.", "success")
        return redirect(url_for("admin.settings_page"))
    return render_template("admin/settings.html", form=form, business_form=_business_form(current)), \
        400 if request.method == "POST" else 200


@bp.post("/settings/security")
def settings_security():
    """Settings › Security (issue 18): require two-factor authentication for all staff."""
    form = SecuritySettingsForm()
    if form.validate_on_submit() and run_form(form, lambda: settings.update_security(
            require_staff_2fa=bool(form.require_staff_2fa.data))):
        flash("Security settings saved." + (" Staff without two-factor authentication set it up at their next login."
                                            if form.require_staff_2fa.data else ""), "success")
    return redirect(url_for("admin.settings_page"))
