"""Service plans, staff side: templates (SP-1), a customer's plans (SP-2 … SP-13), add-ons (AO-*),
the overdue dashboard (REP-2) and the plan report (REP-3). Rules live in portal.services.plan_*."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from admin import bp, form_id
from admin.customers import _customer_or_404
from admin.payments import staff_card_entry
from admin.forms import (ActivatePlanForm, AddonForm, CancelPlanForm, ConfirmForm, CustomerPlanForm, PlanCardForm,
                         PlanPayForm, PlanTemplateForm)
from portal import clock
from portal.extensions import db
from portal.labels import label
from portal.models import ActivityEvent, ChargeAttempt, CustomerPlan, PlanPayment, PlanTemplate
from portal.models.plans import FREQUENCIES
from portal.money import MoneyError, format_money, parse_amount
from portal.services.payments import cards
from portal.services.payments import charges
from portal.services.platform import once
from portal.services.plans import billing as plan_billing
from portal.services.plans import reports as plan_reports
from portal.services.plans import lifecycle as plan_setup
from portal.services.payments import refunds
from portal.services.errors import ServiceError, ValidationError


def _plan_or_404(plan_id: int) -> CustomerPlan:
    plan = db.session.get(CustomerPlan, plan_id)
    if plan is None:
        abort(404)
    return plan


def _put_error(form, exc: ServiceError, default: str | None = None) -> None:
    name = getattr(exc, "field", None)
    name = {"amount": "amount", "price_monthly": "price_monthly", "payment_id": "payment_id",
            "setup_intent": "card_id"}.get(name, name)  # the hidden setup_intent shows no errors: the card radios do
    field = getattr(form, name or "", None) if name else None
    if field is None and default:
        field = getattr(form, default, None)
    if field is None or not hasattr(field, "errors"):
        form.form_errors.append(exc.message)
    else:
        field.errors = list(field.errors) + [exc.message]


def _cents(form, name: str, required: bool = False) -> int | None:
    raw = (getattr(form, name).data or "").strip()
    if not raw:
        if required:
            raise ValidationError(name, "Enter an amount.")
        return None
    try:
        return parse_amount(raw)
    except MoneyError as exc:
        raise ValidationError(name, str(exc)) from None


def _small_int(form, name: str, low: int, high: int, default: int | None = None) -> int | None:
    raw = (getattr(form, name).data or "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise ValidationError(name, f"Enter a whole number from {low} to {high}.")
    return int(raw)


def _prices(form) -> dict:
    return {f: _cents(form, f"price_{f}") for f in FREQUENCIES}


def _fill_terms(form, source) -> None:
    form.name.data = source.name
    form.description.data = source.description
    form.visits_per_year.data = str(source.visits_per_year or 0)
    for f in FREQUENCIES:
        cents = getattr(source, f"price_{f}_cents")
        getattr(form, f"price_{f}").data = f"{cents / 100:.2f}" if cents is not None else ""


# --- Templates (SP-1), admin only (under settings) -------------------------------------------------------

@bp.route("/settings/plans", methods=["GET", "POST"])
def settings_plans():
    form = PlanTemplateForm()
    if form.validate_on_submit():
        try:
            template = plan_setup.save_template(plan_setup.TemplateInput(
                form.name.data, form.description.data, _small_int(form, "visits_per_year", 0, 365, 0), _prices(form),
                bool(form.is_active.data)))
        except ServiceError as exc:
            db.session.rollback()
            _put_error(form, exc)
        else:
            db.session.commit()
            flash(f"Plan template “{template.name}” saved.", "success")
            return redirect(url_for("admin.settings_plan_edit", template_id=template.id))
    status = 400 if request.method == "POST" else 200
    return render_template("admin/plans/templates.html", templates=plan_setup.templates(), form=form), status


@bp.route("/settings/plans/<int:template_id>", methods=["GET", "POST"])
def settings_plan_edit(template_id: int):
    template = db.session.get(PlanTemplate, template_id)
    if template is None:
        abort(404)
    form = PlanTemplateForm(formdata=request.form if request.form.get("form") == "terms" else None)
    addon_form = AddonForm(formdata=request.form if request.form.get("form") == "addon" else None)
    status = 200
    if request.method == "GET":
        _fill_terms(form, template)
        form.is_active.data = template.is_active
    elif request.form.get("form") == "terms" and form.validate_on_submit():
        try:
            plan_setup.save_template(plan_setup.TemplateInput(
                form.name.data, form.description.data, _small_int(form, "visits_per_year", 0, 365, 0), _prices(form),
                bool(form.is_active.data)), template)
        except ServiceError as exc:
            db.session.rollback()
            _put_error(form, exc)
            status = 400
        else:
            db.session.commit()
            flash("Template saved.", "success")
            return redirect(url_for("admin.settings_plan_edit", template_id=template.id))
    elif request.form.get("form") == "addon" and addon_form.validate_on_submit():
        try:
            plan_setup.add_template_addon(template, _addon_input(addon_form))
        except ServiceError as exc:
            db.session.rollback()
            _put_error(addon_form, exc, "name")
            status = 400
        else:
            db.session.commit()
            flash("Add-on added to the template.", "success")
            return redirect(url_for("admin.settings_plan_edit", template_id=template.id))
    elif request.form.get("form") == "remove_addon" and ConfirmForm().validate_on_submit():
        addon = next((a for a in template.addons if a.id == form_id(request.form.get("addon_id"))), None)
        if addon is not None:
            db.session.delete(addon)
            db.session.commit()
            flash("Add-on removed from the template.", "success")
        return redirect(url_for("admin.settings_plan_edit", template_id=template.id))
    else:
        status = 400
    return render_template("admin/plans/template_edit.html", template=template, form=form, addon_form=addon_form,
                           confirm=ConfirmForm()), status


def _addon_input(form) -> plan_setup.AddonInput:
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
    return plan_setup.AddonInput(form.name.data or "", _cents(form, "amount", required=True) or 0,
                                 form.payment_plan.data, installments, form.start_date.data, form.end_date.data)


# --- A customer's plans ---------------------------------------------------------------------------------

def _plan_input(form) -> plan_setup.PlanInput:
    return plan_setup.PlanInput(form.name.data or "", form.description.data,
                                _small_int(form, "visits_per_year", 0, 365, 0), _prices(form),
                                form.payment_method.data, form.start_date.data, form.end_date.data)


@bp.route("/customers/<int:customer_id>/plans/new", methods=["GET", "POST"])
def plan_new(customer_id: int):
    customer = _customer_or_404(customer_id)
    form = CustomerPlanForm()
    template = db.session.get(PlanTemplate, form_id(request.values.get("template_id") or request.args.get("template"))
                              or 0)
    if request.method == "GET":
        form.form_key.data = charges.new_token()
        if template is not None:
            _fill_terms(form, template)
            form.template_id.data = str(template.id)
        return render_template("admin/plans/form.html", customer=customer, form=form, plan=None,
                               templates=plan_setup.templates(active_only=True), template=template)
    if (earlier := once.earlier(form.form_key.data, "plan")) is not None:
        return redirect(url_for("admin.plan_view", plan_id=earlier))
    if form.validate_on_submit():
        try:
            plan = plan_setup.create_plan(customer, _plan_input(form), current_user, template)
            once.remember(form.form_key.data, "plan", plan)
            db.session.commit()
        except ServiceError as exc:
            db.session.rollback()
            _put_error(form, exc)
        else:
            flash(f"Plan “{plan.name}” created as a draft. Send it to the customer to pay and accept, or activate "
                  "it if it is paid in cash or by check.", "success")
            return redirect(url_for("admin.plan_view", plan_id=plan.id))
    return render_template("admin/plans/form.html", customer=customer, form=form, plan=None,
                           templates=plan_setup.templates(active_only=True), template=template), 400


@bp.route("/plans/<int:plan_id>/edit", methods=["GET", "POST"])
def plan_edit(plan_id: int):
    plan = _plan_or_404(plan_id)
    form = CustomerPlanForm()
    if request.method == "GET":
        _fill_terms(form, plan)
        form.payment_method.data = plan.payment_method
        form.start_date.data, form.end_date.data = plan.start_date, plan.end_date
        return render_template("admin/plans/form.html", customer=plan.customer, form=form, plan=plan)
    if form.validate_on_submit():
        try:
            plan_setup.update_plan(plan, _plan_input(form), current_user)
            db.session.commit()
        except ServiceError as exc:
            db.session.rollback()
            _put_error(form, exc)
        else:
            flash("Plan saved.", "success")
            return redirect(url_for("admin.plan_view", plan_id=plan.id))
    return render_template("admin/plans/form.html", customer=plan.customer, form=form, plan=plan), 400


def _attempts_by_payment(payments: list[PlanPayment]) -> dict[int, list[ChargeAttempt]]:
    ids = [p.id for p in payments]
    out: dict[int, list[ChargeAttempt]] = {}
    if not ids:
        return out
    rows = db.session.scalars(select(ChargeAttempt).where(ChargeAttempt.plan_id == payments[0].plan_id)
                              .options(selectinload(ChargeAttempt.card)).order_by(ChargeAttempt.created_at)).all()
    for attempt in rows:
        for pid in [int(x) for x in (attempt.plan_payment_ids or "").split(",") if x.isdigit()]:
            out.setdefault(pid, []).append(attempt)
    return out


@bp.get("/plans/<int:plan_id>")
def plan_view(plan_id: int):
    plan = _plan_or_404(plan_id)
    payments = list(db.session.scalars(select(PlanPayment).where(PlanPayment.plan_id == plan.id)
                                       .options(selectinload(PlanPayment.card), selectinload(PlanPayment.lines))
                                       .order_by(PlanPayment.due_date.desc())))
    payment_ids = [p.payment_id for p in payments if p.payment_id]
    from portal.models import Payment, Refund, StaffUser
    money = {p.id: p for p in db.session.scalars(select(Payment).where(Payment.id.in_(payment_ids)))} \
        if payment_ids else {}
    refund_rows = db.session.scalars(select(Refund).where(Refund.payment_id.in_(payment_ids))
                                     .order_by(Refund.created_at)).all() if payment_ids else []
    refunds_by_payment: dict[int, list] = {}
    for r in refund_rows:
        refunds_by_payment.setdefault(r.payment_id, []).append(r)
    marked_by = {s.id: s for s in db.session.scalars(select(StaffUser).where(StaffUser.id.in_(
        [p.marked_paid_by_id for p in payments if p.marked_paid_by_id])))}
    events = db.session.scalars(select(ActivityEvent).where(ActivityEvent.plan_id == plan.id)
                                .options(selectinload(ActivityEvent.actor))
                                .order_by(ActivityEvent.created_at.desc(), ActivityEvent.id.desc()).limit(50)).all()
    owed = plan_reports.owed_by_plan([plan.id]).get(plan.id, {"failed": 0, "overdue": 0, "count": 0, "total": 0})
    activate = ActivatePlanForm(formdata=None)
    activate.frequency.choices = [(f, f"{label(f)} — {format_money(plan.price_for(f))}") for f in plan.offers]
    activate.start_date.data = clock.today()
    return render_template("admin/plans/view.html", plan=plan, customer=plan.customer, payments=payments,
                           money=money, refunds=refunds_by_payment, marked_by=marked_by, events=events, owed=owed,
                           attempts=_attempts_by_payment(payments), busy=plan_billing.open_charge(plan),
                           addon_form=AddonForm(formdata=None), confirm=ConfirmForm(), activate=activate,
                           today=clock.today(), now=clock.now(), expiring=plan_billing.expiring_soon(plan.card),
                           last_card_payment=plan_setup.last_card_payment(plan))


def _act(plan: CustomerPlan, action, success: str):
    if not ConfirmForm().validate_on_submit():
        flash("The form expired; try again.", "error")
        return redirect(url_for("admin.plan_view", plan_id=plan.id))
    try:
        action()
        db.session.commit()
    except ServiceError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        flash(success, "success")
    return redirect(url_for("admin.plan_view", plan_id=plan.id))


@bp.post("/plans/<int:plan_id>/send")
def plan_send(plan_id: int):
    plan = _plan_or_404(plan_id)
    return _act(plan, lambda: plan_setup.send(plan, current_user),
                "Sent: the customer got an email to pay and accept the plan in the portal.")


@bp.post("/plans/<int:plan_id>/activate")
def plan_activate(plan_id: int):
    plan = _plan_or_404(plan_id)
    form = ActivatePlanForm()
    form.frequency.choices = [(f, f) for f in plan.offers]
    if not form.validate_on_submit():
        flash("Check the first payment date (YYYY-MM-DD).", "error")
        return redirect(url_for("admin.plan_view", plan_id=plan.id))
    try:
        plan_setup.activate_offline(plan, form.frequency.data, form.start_date.data, current_user)
    except ServiceError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        flash("Plan active. Record each payment when you collect it; unpaid ones become overdue after their due "
              "day.", "success")
    return redirect(url_for("admin.plan_view", plan_id=plan.id))


@bp.post("/plans/<int:plan_id>/addons")
def plan_addon_add(plan_id: int):
    plan = _plan_or_404(plan_id)
    form = AddonForm()
    warning = None
    if form.validate_on_submit():
        try:
            plan_setup.add_addon(plan, _addon_input(form), current_user, confirmed=bool(form.confirm.data))
            db.session.commit()
        except ValidationError as exc:
            db.session.rollback()
            if exc.field == "confirm":
                warning = exc.message
            else:
                _put_error(form, exc, "name")
        except ServiceError as exc:
            db.session.rollback()
            form.form_errors.append(exc.message)
        else:
            flash("Add-on saved: it appears on the plan's next bills.", "success")
            return redirect(url_for("admin.plan_view", plan_id=plan.id) + "#addons")
    return render_template("admin/plans/addon.html", plan=plan, form=form, warning=warning), 400 if not warning \
        else 200


@bp.post("/plans/<int:plan_id>/addons/<int:addon_id>/remove")
def plan_addon_remove(plan_id: int, addon_id: int):
    plan = _plan_or_404(plan_id)
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
    plan = _plan_or_404(plan_id)
    form = PlanCardForm()
    if request.method == "GET":
        return _card_page(plan, form)
    if not form.validate_on_submit():
        form.form_errors.append("The form expired; reload the page.")
        return _card_page(plan, form, 400)
    outstanding = plan_billing.outstanding_payments(plan)
    choice = form.outstanding.data
    if outstanding and choice not in ("charge", "mark_paid"):
        form.outstanding.errors = ["Choose what happens to the outstanding payments."]
        return _card_page(plan, form, 400)
    try:
        if form.card_id.data == "new":
            if not form.setup_intent.data:
                raise ValidationError("card_id", "Enter the card details.")
            card = cards.save_from_setup_intent(plan.customer, form.setup_intent.data, added_by="staff",
                                                actor=current_user)
            db.session.commit()
        else:
            card = cards.card_of(plan.customer, form.card_id.data)
        plan_billing.set_card(plan, card, actor=current_user)
        db.session.commit()
        if outstanding and choice == "mark_paid":
            count = plan_billing.mark_outstanding_paid(plan, current_user)
            db.session.commit()
            flash(f"Card {card.label} saved for the plan; {count} outstanding payment(s) marked as paid (no money "
                  "moved). The billing date is unchanged.", "success")
            return redirect(url_for("admin.plan_view", plan_id=plan.id))
        if outstanding and choice == "charge":
            outcome = plan_billing.charge_outstanding(plan, card, token=form.token.data, initiated_by="staff",
                                                      actor=current_user)
            if outcome is not None and outcome.status != "succeeded":
                form.token.data = charges.new_token()
                form.setup_intent.data = ""
                form.card_id.data = str(card.id)
                return _card_page(plan, form, 402 if outcome.status == "failed" else 202, outcome)
            if outcome is not None and outcome.payment is not None:
                flash(f"Card {card.label} saved and charged {format_money(outcome.payment.amount_cents)} for all "
                      "outstanding payments. The billing date is unchanged.", "success")
                return redirect(url_for("admin.plan_view", plan_id=plan.id))
    except ServiceError as exc:
        db.session.rollback()
        _put_error(form, exc, "card_id")
        form.setup_intent.data = ""
        return _card_page(plan, form, 409 if type(exc) is ServiceError else 400)
    flash(f"Card {card.label} saved for the plan; nothing was charged. The billing date is unchanged.", "success")
    return redirect(url_for("admin.plan_view", plan_id=plan.id))


# --- SP-13: collect a payment now -----------------------------------------------------------------------

def _pay_page(plan: CustomerPlan, form: PlanPayForm, status: int = 200, outcome=None):
    due = [p for p in db.session.scalars(select(PlanPayment).where(
        PlanPayment.plan_id == plan.id, PlanPayment.status.in_(plan_billing.OUTSTANDING + ("scheduled",)),
        PlanPayment.due_date <= clock.today()).order_by(PlanPayment.due_date))]
    form.payment_id.choices = ([("all", f"All outstanding ({format_money(sum(p.amount_cents for p in due))})")]
                               if len(due) > 1 else []) + [
        (str(p.id), f"Due {p.due_date.isoformat()} — {format_money(p.amount_cents)} ({label(p.status)})") for p in due]
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
    plan = _plan_or_404(plan_id)
    form = PlanPayForm()
    if request.method == "GET":
        return _pay_page(plan, form)
    if not form.validate_on_submit():
        form.form_errors.append("The form expired; reload the page.")
        return _pay_page(plan, form, 400)
    due = list(db.session.scalars(select(PlanPayment).where(
        PlanPayment.plan_id == plan.id, PlanPayment.status.in_(plan_billing.OUTSTANDING + ("scheduled",)),
        PlanPayment.due_date <= clock.today())))
    chosen = due if form.payment_id.data == "all" else [p for p in due if p.id == form_id(form.payment_id.data)]
    if not chosen:
        form.payment_id.errors = ["Choose a payment that is due."]
        return _pay_page(plan, form, 400)
    try:
        if form.method.data == "card":
            card = cards.card_of(plan.customer, form.card_id.data)
            outcome = _charge_rows(plan, card, chosen, form.token.data)
            if outcome.status != "succeeded" or outcome.payment is None:
                form.token.data = charges.new_token()
                return _pay_page(plan, form, 402 if outcome.status == "failed" else 202, outcome)
            payment = outcome.payment
        else:
            payment = plan_billing.record_cash(plan, chosen, method=form.method.data, reference=form.reference.data,
                                               actor=current_user, token=form.token.data)
    except ServiceError as exc:
        db.session.rollback()
        _put_error(form, exc, "payment_id")
        return _pay_page(plan, form, 409 if type(exc) is ServiceError else 400)
    flash(f"Payment of {format_money(payment.amount_cents)} recorded; receipt emailed.", "success")
    return redirect(url_for("admin.plan_view", plan_id=plan.id))


def _charge_rows(plan: CustomerPlan, card, rows: list[PlanPayment], token: str | None):
    """One charge for the chosen due payments (outstanding or scheduled for today)."""
    plan = plan_billing.lock_plan(plan.id)
    if plan_billing.open_charge(plan) is not None:
        raise ServiceError("A payment for this plan is being processed. Wait a minute and reload the page.")
    total = sum(r.amount_cents for r in rows)
    return charges.charge_card(plan.customer, card, total, token=token, purpose="plan_payments", off_session=True,
                               initiated_by="staff", actor=current_user, plan_id=plan.id,
                               plan_payment_ids=[r.id for r in rows])


# --- SP-12: cancel --------------------------------------------------------------------------------------

@bp.route("/plans/<int:plan_id>/cancel", methods=["GET", "POST"])
def plan_cancel(plan_id: int):
    plan = _plan_or_404(plan_id)
    form = CancelPlanForm()
    last = plan_setup.last_card_payment(plan)
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            if form.refund_last.data and current_user.role != "admin":
                form.refund_last.errors = ["Only an admin can refund."]
                status = 403
            else:
                try:
                    plan_setup.cancel(plan, form.reason.data, current_user, refund_last=bool(form.refund_last.data),
                                      write_off=bool(form.write_off.data), token=form.token.data)
                except ServiceError as exc:
                    db.session.rollback()
                    _put_error(form, exc, "reason")
                    status = 400
                else:
                    flash("Plan cancelled." + (" The last card payment was refunded." if form.refund_last.data
                                               else ""), "success")
                    return redirect(url_for("admin.plan_view", plan_id=plan.id))
        else:
            status = 400
    if not form.token.data:
        form.token.data = charges.new_token()
    outstanding = plan_billing.outstanding_payments(plan)
    return render_template("admin/plans/cancel.html", plan=plan, form=form, last=last,
                           last_problem=refunds.why_not(last) if last else None, outstanding=outstanding,
                           total=sum(p.amount_cents for p in outstanding)), status


# --- REP-2, REP-3 ---------------------------------------------------------------------------------------

@bp.get("/overdue")
def overdue():
    bucket = request.args.get("bucket") if request.args.get("bucket") in plan_reports.BUCKETS else None
    kind = request.args.get("kind") if request.args.get("kind") in ("plan", "invoice") else None
    return render_template("admin/plans/overdue.html", report=plan_reports.overdue_report(bucket=bucket, kind=kind),
                           buckets=plan_reports.BUCKETS, bucket=bucket, kind=kind)


@bp.get("/reports/plans")
def plan_report():
    status = request.args.get("status") if request.args.get("status") in (
        "draft", "pending", "active", "cancelled", "expired") else None
    return render_template("admin/plans/report.html", report=plan_reports.plan_report(status), status=status,
                           monthly_value=plan_reports.monthly_value)
