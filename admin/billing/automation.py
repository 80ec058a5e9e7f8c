"""Invoice automation in the admin: Settings › Invoices › Automations (INV-5, INV-6 switch), AutoPay enrolment and
automatic-invoicing cadence on the client card (INV-3, INV-6), batch sending (INV-4) and the AutoPay page."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from admin import bp, form_id
from admin.billing.forms import AutomationsForm, AutoPayForm, BatchSendForm, CadenceForm
from admin.common import back_to_card as _back
from admin.forms import ConfirmForm
from portal.blueprints.actions import run_action, run_form
from portal.services.billing import auto_invoicing, autopay, invoices, reminders
from portal.services.crm import customers as customer_service
from portal.services.platform import settings


@bp.route("/settings/automations", methods=["GET", "POST"])
def settings_automations():
    form = AutomationsForm()
    current = settings.get()
    if request.method == "GET":
        form.reminders_enabled.data = bool(current.reminders_enabled)
        form.reminder_days.data = ", ".join((current.reminder_days or "").split(","))
        form.autopay_enabled.data = bool(current.autopay_enabled)
    elif form.validate_on_submit():
        def save():
            reminders.update(enabled=bool(form.reminders_enabled.data), days=form.reminder_days.data)
            autopay.set_global(bool(form.autopay_enabled.data))
        if run_form(form, save, "reminder_days", aliases={None: "reminder_days"}):
            flash("Automation settings saved.", "success")
            return redirect(url_for("admin.settings_automations"))
    else:
        form.form_errors.append("The form expired; try again.")
    return render_template("admin/automations.html", form=form), 400 if request.method == "POST" else 200


@bp.post("/customers/<int:customer_id>/autopay")
def customer_autopay(customer_id: int):
    customer = customer_service.load(customer_id)
    form = AutoPayForm()
    if not form.validate_on_submit():
        abort(400)
    on = form.enabled.data == "1"
    note = "" if settings.get().autopay_enabled or not on else \
        " AutoPay is switched off for the business in Settings › Automations: nothing is charged until it is on."
    run_action(lambda: autopay.enroll(customer, current_user, on),
               lambda _: ("AutoPay turned on." + note) if on else "AutoPay turned off.")
    return _back(customer, "financial")


@bp.post("/customers/<int:customer_id>/auto-invoicing")
def customer_auto_invoicing(customer_id: int):
    customer = customer_service.load(customer_id)
    form = CadenceForm()
    if not form.validate_on_submit():
        abort(400)

    def said(_):
        if not customer.auto_invoice_cadence:
            return "Automatic invoicing turned off."
        return (f"Automatic invoicing: {auto_invoicing.CADENCES[customer.auto_invoice_cadence].lower()}. "
                f"Next email on {auto_invoicing.upcoming(customer).isoformat()} if there is finished, unpaid work.")
    run_action(lambda: auto_invoicing.set_cadence(customer, form.cadence.data, current_user), said)
    return _back(customer, "financial")


@bp.post("/customers/<int:customer_id>/invoices/send")
def customer_send_invoices(customer_id: int):
    """INV-4: the open invoices picked on the client card, in one email with one "Pay all" link."""
    customer = customer_service.load(customer_id)
    if not BatchSendForm().validate_on_submit():
        abort(400)
    raw = request.form.getlist("invoice_id")
    ids = [form_id(v) for v in raw]
    if not raw:
        flash("Tick the invoices to send.", "error")
        return _back(customer, "money")
    if None in ids:
        flash("That is not an invoice of this customer.", "error")
        return _back(customer, "money")
    chosen = invoices.by_ids(ids)
    if len(chosen) != len(set(ids)):
        flash("That is not an invoice of this customer.", "error")
        return _back(customer, "money")
    run_action(lambda: invoices.send_many(customer, chosen, current_user),
               lambda _: f"{len(chosen)} invoice{'s' if len(chosen) > 1 else ''} sent to {customer.primary_email} "
                         "in one email with a “Pay all” link.")
    return _back(customer, "money")


@bp.get("/autopay")
def autopay_page():
    """INV-6: who is on AutoPay, and the customers without a card (each with "Request card on file")."""
    page = autopay.customers_without_card(page=request.args.get("page", 1, type=int) or 1)
    return render_template("admin/autopay.html", enabled=settings.get().autopay_enabled,
                           enrolled=autopay.enrolled(), page=page, confirm=ConfirmForm())
