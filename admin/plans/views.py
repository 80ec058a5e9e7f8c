"""Service plans, staff side: templates (SP-1), a customer's plans (SP-2 … SP-13), add-ons (AO-*).
Rules and read models live in portal.services.plans."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from admin import bp, form_id
from admin.forms import ConfirmForm
from admin.payments.views import staff_card_entry
from admin.plans.forms import (
    ActivatePlanForm,
    AddonForm,
    CancelPlanForm,
    CustomerPlanForm,
    PlanCardForm,
    PlanPayForm,
    PlanTemplateForm,
)
from portal import clock
from portal.blueprints.actions import parsed, run_action, run_form
from portal.extensions import db
from portal.labels import label
from portal.models import CustomerPlan
from portal.models.plans import FREQUENCIES
from portal.money import format_money, parse_amount, to_input
from portal.services.crm import customers as customer_service
from portal.services.errors import ValidationError
from portal.services.payments import cards, charges, refunds
from portal.services.plans import billing as plan_billing
from portal.services.plans import lifecycle as plan_setup
from portal.services.plans import reports as plan_reports
from portal.services.platform import once, settings

CARD_FIELD = {"setup_intent": "card_id"}  # the hidden setup_intent shows no errors: the card radios do


def _cents(form, name: str, required: bool = False, currency: str | None = None) -> int | None:
    raw = (getattr(form, name).data or "").strip()
    if not raw:
        if required:
            raise ValidationError(name, "Enter an amount.")
        return None
    return parsed(name, parse_amount, raw, currency or settings.currency())


def _small_int(form, name: str, low: int, high: int, default: int | None = None) -> int | None:
    raw = (getattr(form, name).data or "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise ValidationError(name, f"Enter a whole number from {low} to {high}.")
    return int(raw)


def _prices(form, currency: str | None = None) -> dict:
    return {f: _cents(form, f"price_{f}", currency=currency) for f in FREQUENCIES}


def _fill_terms(form, source, currency: str) -> None:
    form.name.data = source.name
    form.description.data = source.description
    form.visits_per_year.data = str(source.visits_per_year or 0)
    for f in FREQUENCIES:
        getattr(form, f"price_{f}").data = to_input(getattr(source, f"price_{f}_cents"), currency)


# --- Templates (SP-1), admin only (under settings) -------------------------------------------------------

def _template_input(form) -> plan_setup.TemplateInput:
    return plan_setup.TemplateInput(form.name.data, form.description.data,
                                    _small_int(form, "visits_per_year", 0, 365, 0), _prices(form),
                                    bool(form.is_active.data))


@bp.route("/settings/plans", methods=["GET", "POST"])
def settings_plans():
    form = PlanTemplateForm()
    if form.validate_on_submit():
        done = run_form(form, lambda: plan_setup.save_template(_template_input(form)))
        if done:
            flash(f"Plan template “{done.result.name}” saved.", "success")
            return redirect(url_for("admin.settings_plan_edit", template_id=done.result.id))
    status = 400 if request.method == "POST" else 200
    return render_template("admin/plans/templates.html", templates=plan_setup.templates(), form=form), status


@bp.route("/settings/plans/<int:template_id>", methods=["GET", "POST"])
def settings_plan_edit(template_id: int):
    template = plan_setup.load_template(template_id)
    which = request.form.get("form")
    form = PlanTemplateForm(formdata=request.form if which == "terms" else None)
    addon_form = AddonForm(formdata=request.form if which == "addon" else None)
    back = url_for("admin.settings_plan_edit", template_id=template.id)
    status = 200
    if request.method == "GET":
        _fill_terms(form, template, settings.currency())
        form.is_active.data = template.is_active
    elif which == "terms" and form.validate_on_submit():
        if run_form(form, lambda: plan_setup.save_template(_template_input(form), template)):
            flash("Template saved.", "success")
            return redirect(back)
        status = 400
    elif which == "addon" and addon_form.validate_on_submit():
        if run_form(addon_form, lambda: plan_setup.add_template_addon(template, _addon_input(addon_form)), "name"):
            flash("Add-on added to the template.", "success")
            return redirect(back)
        status = 400
    elif which == "remove_addon" and ConfirmForm().validate_on_submit():
        addon_id = form_id(request.form.get("addon_id"))
        run_action(lambda: plan_setup.remove_template_addon(template, addon_id),
                   lambda removed: "Add-on removed from the template." if removed else None)
        return redirect(back)
    else:
        status = 400
    return render_template("admin/plans/template_edit.html", template=template, form=form, addon_form=addon_form,
                           confirm=ConfirmForm()), status


def _addon_input(form, currency: str | None = None) -> plan_setup.AddonInput:
    if form.start_date.raw_data and form.start_date.raw_data[0] and form.start_date.data is None:
        raise ValidationError("start_date", "Enter the date as YYYY-MM-DD.")
    if form.end_date.raw_data and form.end_date.raw_data[0] and form.end_date.data is None:
        raise ValidationError("end_date", "Enter the date as YYYY-MM-DD.")
    installments = None
    if form.payment_plan.data == "installments":
        raw = (form.installments.data or "").strip()
        if not (raw.isascii() and raw.lstrip("-").isdigit()):
            raise ValidationError("installments", f"Installments must be between 1 and {plan_setup.MAX_INSTALLMENTS}.")
        installments = int(raw)
    return plan_setup.AddonInput(form.name.data or "", _cents(form, "amount", required=True, currency=currency) or 0,
                                 form.payment_plan.data, installments, form.start_date.data, form.end_date.data)


# --- A customer's plans ---------------------------------------------------------------------------------

def _plan_input(form, currency: str | None = None) -> plan_setup.PlanInput:
    return plan_setup.PlanInput(form.name.data or "", form.description.data,
                                _small_int(form, "visits_per_year", 0, 365, 0), _prices(form, currency),
                                form.payment_method.data, form.start_date.data, form.end_date.data)


def _to_plan(plan: CustomerPlan, anchor: str = ""):
    return redirect(url_for("admin.plan_view", plan_id=plan.id) + anchor)


@bp.route("/customers/<int:customer_id>/plans/new", methods=["GET", "POST"])
def plan_new(customer_id: int):
    customer = customer_service.load(customer_id)
    form = CustomerPlanForm()
    template = plan_setup.find_template(form_id(request.values.get("template_id") or request.args.get("template")))
    if request.method == "GET":
        form.form_key.data = charges.new_token()
        if template is not None:
            _fill_terms(form, template, settings.currency())
            form.template_id.data = str(template.id)
        return render_template("admin/plans/form.html", customer=customer, form=form, plan=None,
                               templates=plan_setup.templates(active_only=True), template=template)
    if (earlier := once.earlier(form.form_key.data, "plan")) is not None:
        return redirect(url_for("admin.plan_view", plan_id=earlier))
    if form.validate_on_submit():
        done = run_form(form, lambda: once.remember(form.form_key.data, "plan", plan_setup.create_plan(
            customer, _plan_input(form), current_user, template)))
        if done:
            flash(f"Plan “{done.result.name}” created as a draft. Send it to the customer to pay and accept, or "
                  "activate it if it is paid in cash or by check.", "success")
            return _to_plan(done.result)
    return render_template("admin/plans/form.html", customer=customer, form=form, plan=None,
                           templates=plan_setup.templates(active_only=True), template=template), 400


@bp.route("/plans/<int:plan_id>/edit", methods=["GET", "POST"])
def plan_edit(plan_id: int):
    plan = plan_setup.load_plan(plan_id)
    form = CustomerPlanForm()
    if request.method == "GET":
        _fill_terms(form, plan, plan.currency)
        form.payment_method.data = plan.payment_method
        form.start_date.data, form.end_date.data = plan.start_date, plan.end_date
        return render_template("admin/plans/form.html", customer=plan.customer, form=form, plan=plan)
    if form.validate_on_submit() and run_form(
            form, lambda: plan_setup.update_plan(plan, _plan_input(form, plan.currency), current_user)):
        flash("Plan saved.", "success")
        return _to_plan(plan)
    return render_template("admin/plans/form.html", customer=plan.customer, form=form, plan=plan), 400


@bp.get("/plans/<int:plan_id>")
def plan_view(plan_id: int):
    plan = plan_setup.load_plan(plan_id)
    page = plan_reports.plan_page(plan)
    activate = ActivatePlanForm(formdata=None)
    activate.frequency.choices = [(f, f"{label(f)} — {format_money(plan.price_for(f), plan.currency)}")
                                  for f in plan.offers]
    activate.start_date.data = clock.today()
    return render_template("admin/plans/view.html", plan=plan, customer=plan.customer, payments=page.payments,
                           money=page.money, refunds=page.refunds, marked_by=page.marked_by, events=page.events,
                           owed=page.owed, attempts=page.attempts, busy=plan_billing.open_charge(plan),
                           addon_form=AddonForm(formdata=None), confirm=ConfirmForm(), activate=activate,
                           today=clock.today(), now=clock.now(), expiring=plan_billing.expiring_soon(plan.card),
                           last_card_payment=plan_setup.last_card_payment(plan))


def _act(plan: CustomerPlan, action, success: str):
    if not ConfirmForm().validate_on_submit():
        flash("The form expired; try again.", "error")
    else:
        run_action(action, success)
    return _to_plan(plan)


@bp.post("/plans/<int:plan_id>/send")
def plan_send(plan_id: int):
    plan = plan_setup.load_plan(plan_id)
    return _act(plan, lambda: plan_setup.send(plan, current_user),
                "Sent: the customer got an email to pay and accept the plan in the portal.")


@bp.post("/plans/<int:plan_id>/activate")
def plan_activate(plan_id: int):
    plan = plan_setup.load_plan(plan_id)
    form = ActivatePlanForm()
    form.frequency.choices = [(f, f) for f in plan.offers]
    if not form.validate_on_submit():
        flash("Check the first payment date (YYYY-MM-DD).", "error")
        return _to_plan(plan)
    run_action(lambda: plan_setup.activate_offline(plan, form.frequency.data, form.start_date.data, current_user),
               "Plan active. Record each payment when you collect it; unpaid ones become overdue after their due "
               "day.")
    return _to_plan(plan)


@bp.post("/plans/<int:plan_id>/addons")
def plan_addon_add(plan_id: int):
    plan = plan_setup.load_plan(plan_id)
    form = AddonForm()
    warning = None
    if form.validate_on_submit():
        done = run_form(form, lambda: plan_setup.add_addon(plan, _addon_input(form, plan.currency), current_user,
                                                           confirmed=bool(form.confirm.data)),
                        lambda exc: "name" if isinstance(exc, ValidationError) else None)
        if done:
            flash("Add-on saved: it appears on the plan's next bills.", "success")
            return _to_plan(plan, "#addons")
        if getattr(done.error, "field", None) == "confirm":  # an incomplete payment: ask, do not refuse
            form.confirm.errors = []
            warning = done.error.message
    return render_template("admin/plans/addon.html", plan=plan, form=form, warning=warning), 400 if not warning \
        else 200


@bp.post("/plans/<int:plan_id>/addons/<int:addon_id>/remove")
def plan_addon_remove(plan_id: int, addon_id: int):
    plan = plan_setup.load_plan(plan_id)
    return _act(plan, lambda: plan_setup.remove_addon(plan, addon_id, current_user), "Add-on removed.")


# --- SP-10: add or update the plan's card ---------------------------------------------------------------

def _card_page(plan: CustomerPlan, form: PlanCardForm, status: int = 200, outcome=None):
    customer = plan.customer
    on_file = cards.active_cards(customer)
    form.card_id.choices = [(str(c.id), c.label + (f" “{c.nickname}”" if c.nickname else "")
                             + (" (default)" if c.is_default else "")) for c in on_file] + [("new", "A new card")]
    if not form.card_id.data:
        form.card_id.data = str(plan.card_id) if plan.card_id and any(c.id == plan.card_id for c in on_file) \
            else "new"
    if not form.token.data:
        form.token.data = charges.new_token()
    entry = staff_card_entry(customer)
    outstanding = plan_billing.outstanding_payments(plan)
    return render_template("admin/plans/card.html", plan=plan, customer=customer, form=form, entry=entry,
                           outstanding=outstanding, total=sum(p.amount_cents for p in outstanding),
                           outcome=outcome, busy=plan_billing.open_charge(plan)), status


@bp.route("/plans/<int:plan_id>/card", methods=["GET", "POST"])
def plan_card(plan_id: int):
    plan = plan_setup.load_plan(plan_id)
    form = PlanCardForm()
    if request.method == "GET":
        return _card_page(plan, form)
    if not form.validate_on_submit():
        form.form_errors.append("The form expired; reload the page.")
        return _card_page(plan, form, 400)
    outstanding = plan_billing.outstanding_payments(plan)
    choice = form.outstanding.data if outstanding else None
    if outstanding and choice not in ("charge", "mark_paid"):
        form.outstanding.errors = ["Choose what happens to the outstanding payments."]
        return _card_page(plan, form, 400)

    def save():
        """The card (new or on file) becomes the plan's; then the outstanding bills are marked paid or charged.
        The card is committed first, so it stays on file even when the bills step is refused (a charge already
        running); a charge commits its attempt itself before the card is charged."""
        if form.card_id.data == "new":
            if not form.setup_intent.data:
                raise ValidationError("card_id", "Enter the card details.")
            card = cards.save_from_setup_intent(plan.customer, form.setup_intent.data, added_by="staff",
                                                actor=current_user)
        else:
            card = cards.card_of(plan.customer, form.card_id.data)
        plan_billing.set_card(plan, card, actor=current_user)
        if choice:
            db.session.commit()
        if choice == "mark_paid":
            return card, plan_billing.mark_outstanding_paid(plan, current_user), None
        if choice == "charge":
            return card, 0, plan_billing.charge_outstanding(plan, card, token=form.token.data, initiated_by="staff",
                                                            actor=current_user)
        return card, 0, None

    done = run_form(form, save, "card_id", aliases=CARD_FIELD)
    if not done:
        form.setup_intent.data = ""
        return _card_page(plan, form, done.status)
    card, marked, outcome = done.result
    if choice == "mark_paid":
        flash(f"Card {card.label} saved for the plan; {marked} outstanding payment(s) marked as paid (no money "
              "moved). The billing date is unchanged.", "success")
    elif outcome is not None and outcome.status != "succeeded":
        form.token.data = charges.new_token()
        form.setup_intent.data = ""
        form.card_id.data = str(card.id)
        return _card_page(plan, form, 402 if outcome.status == "failed" else 202, outcome)
    elif outcome is not None and outcome.payment is not None:
        flash(f"Card {card.label} saved and charged {format_money(outcome.payment.amount_cents, plan.currency)} for "
              "all outstanding payments. The billing date is unchanged.", "success")
    else:
        flash(f"Card {card.label} saved for the plan; nothing was charged. The billing date is unchanged.", "success")
    return _to_plan(plan)


# --- SP-13: collect a payment now -----------------------------------------------------------------------

def _pay_page(plan: CustomerPlan, form: PlanPayForm, status: int = 200, outcome=None):
    due = plan_billing.due_now(plan)
    total_due = format_money(sum(p.amount_cents for p in due), plan.currency)
    form.payment_id.choices = ([("all", f"All outstanding ({total_due})")]
                               if len(due) > 1 else []) + [
        (str(p.id), f"Due {p.due_date.isoformat()} — {format_money(p.amount_cents, plan.currency)} ({label(p.status)})")
        for p in due]
    on_file = cards.active_cards(plan.customer)
    form.card_id.choices = [(str(c.id), c.label + (" (plan card)" if c.id == plan.card_id else "")) for c in on_file]
    if not form.card_id.data and plan.card_id:
        form.card_id.data = str(plan.card_id)
    if not form.token.data:
        form.token.data = charges.new_token()
    return render_template("admin/plans/pay.html", plan=plan, form=form, due=due, outcome=outcome,
                           busy=plan_billing.open_charge(plan)), status


@bp.route("/plans/<int:plan_id>/pay", methods=["GET", "POST"])
def plan_pay(plan_id: int):
    plan = plan_setup.load_plan(plan_id)
    form = PlanPayForm()
    if request.method == "GET":
        return _pay_page(plan, form)
    if not form.validate_on_submit():
        form.form_errors.append("The form expired; reload the page.")
        return _pay_page(plan, form, 400)
    due = plan_billing.due_now(plan)
    chosen = due if form.payment_id.data == "all" else [p for p in due if p.id == form_id(form.payment_id.data)]
    if not chosen:
        form.payment_id.errors = ["Choose a payment that is due."]
        return _pay_page(plan, form, 400)

    def collect():
        if form.method.data == "card":
            card = cards.card_of(plan.customer, form.card_id.data)
            return plan_billing.charge_now(plan, card, chosen, token=form.token.data, actor=current_user)
        return plan_billing.record_cash(plan, chosen, method=form.method.data, reference=form.reference.data,
                                        actor=current_user, token=form.token.data)

    done = run_form(form, collect, "payment_id")
    if not done:
        return _pay_page(plan, form, done.status)
    if form.method.data == "card":
        outcome = done.result
        if outcome.status != "succeeded" or outcome.payment is None:
            form.token.data = charges.new_token()
            return _pay_page(plan, form, 402 if outcome.status == "failed" else 202, outcome)
        payment = outcome.payment
    else:
        payment = done.result
    flash(f"Payment of {format_money(payment.amount_cents, payment.currency)} recorded; receipt emailed.", "success")
    return _to_plan(plan)


# --- SP-12: cancel --------------------------------------------------------------------------------------

@bp.route("/plans/<int:plan_id>/cancel", methods=["GET", "POST"])
def plan_cancel(plan_id: int):
    plan = plan_setup.load_plan(plan_id)
    form = CancelPlanForm()
    last = plan_setup.last_card_payment(plan)
    status = 200
    if request.method == "POST":
        if not form.validate_on_submit():
            status = 400
        elif form.refund_last.data and current_user.role != "admin":
            form.refund_last.errors = ["Only an admin can refund."]
            status = 403
        elif run_form(form, lambda: plan_setup.cancel(plan, form.reason.data, current_user,
                                                      refund_last=bool(form.refund_last.data),
                                                      write_off=bool(form.write_off.data), token=form.token.data),
                      "reason"):
            flash("Plan cancelled." + (" The last card payment was refunded." if form.refund_last.data else ""),
                  "success")
            return _to_plan(plan)
        else:
            status = 400
    if not form.token.data:
        form.token.data = charges.new_token()
    outstanding = plan_billing.outstanding_payments(plan)
    return render_template("admin/plans/cancel.html", plan=plan, form=form, last=last,
                           last_problem=refunds.why_not(last) if last else None, outstanding=outstanding,
                           total=sum(p.amount_cents for p in outstanding)), status
