"""P-8, SP-3, SP-11: the customer's service plans, pay-and-accept, and the plan's card."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from portal import clock
from portal.blueprints.portal_session import current_customer
from portal.blueprints.wallet import (
    authenticate_page,
    back_from_bank,
    card_choices,
    card_entry,
    chosen_card,
    forget_if_done,
)
from portal.extensions import db
from portal.forms.payments import AcceptPlanForm, CardActionForm, PlanCardForm
from portal.labels import label
from portal.models import ChargeAttempt
from portal.money import format_money
from portal.services.errors import NotFound, ServiceError, ValidationError
from portal.services.overview import owed
from portal.services.payments import cards, charges
from portal.services.plans import billing as plan_billing
from portal.services.plans import customer_view as plans

bp = Blueprint("plans", __name__)


@bp.get("/plans")
def index():
    owed_by_plan: dict[int, int] = {}
    for row in owed.for_customer(current_customer).plan_payments:
        owed_by_plan[row.plan_id] = owed_by_plan.get(row.plan_id, 0) + row.amount_cents
    return render_template("portal/plans/list.html", plans=plans.for_customer(current_customer),
                           owed_by_plan=owed_by_plan)


def _plan(plan_id: int):
    plan = plans.plan_of(current_customer, plan_id)
    return plan


def _frequency_choices(form: AcceptPlanForm, plan) -> None:
    form.frequency.choices = [(f, _("%(frequency)s — %(price)s", frequency=label(f),
                                    price=format_money(plan.price_for(f), plan.currency))) for f in plan.offers]
    if not form.frequency.data and plan.offers:
        form.frequency.data = plan.offers[0]


def _detail_page(plan, form: AcceptPlanForm | None = None, status: int = 200, outcome=None):
    entry = {}
    if plan.status == "pending":
        form = form or AcceptPlanForm(formdata=None)
        _frequency_choices(form, plan)
        card_choices(form)
        entry = card_entry("payment")
    first_bills = {f: plan_billing.bill_for(plan, clock.today(), f).total_cents for f in plan.offers} \
        if plan.status == "pending" else {}
    owed_rows = [p for p in owed.for_customer(current_customer).plan_payments if p.plan_id == plan.id]
    wallet = cards.active_cards(current_customer) if plan.status == "active" and not plan.card_id else []
    return render_template("portal/plans/detail.html", detail=plans.detail(plan), plan=plan, form=form,
                           entry=entry, outcome=outcome, first_bills=first_bills, owed_rows=owed_rows,
                           owed_cents=sum(p.amount_cents for p in owed_rows), wallet=wallet), status


@bp.get("/plans/<int:plan_id>")
def detail(plan_id: int):
    return _detail_page(_plan(plan_id))


@bp.post("/plans/<int:plan_id>/accept")
def accept(plan_id: int):
    plan = _plan(plan_id)
    form = AcceptPlanForm()
    if not form.validate_on_submit():
        form.form_errors.append(_("The form expired. Please try again."))
        return _detail_page(plan, form, 400)
    new_card = None
    try:
        plan_billing.check_acceptable(plan, form.frequency.data)
        # the plan's card pays the next bills, so it stays on file — once the first payment went through
        card = chosen_card(form, on_file=True)
        new_card = card if form.card_id.data == "new" else None
        outcome = plan_billing.accept(current_customer, plan, form.frequency.data, card, token=form.token.data)
    except ValidationError as exc:
        db.session.rollback()
        getattr(form, exc.field if exc.field in ("frequency", "card_id") else "card_id").errors = [exc.message]
        form.setup_intent.data = ""
        return _detail_page(plan, form, 400)
    except NotFound as exc:
        db.session.rollback()
        form.card_id.errors = [exc.message]
        return _detail_page(plan, form, 400)
    except ServiceError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for(".detail", plan_id=plan.id))
    finally:
        forget_if_done(new_card)  # a declined new card does not stay (W-6)
    return _after_accept(plan, form, outcome)


def _after_accept(plan, form: AcceptPlanForm, outcome: charges.Outcome):
    if outcome.status == "succeeded":
        flash(_("Thank you! Your plan is active. Your receipt is on its way by email."), "success")
        return redirect(url_for(".detail", plan_id=plan.id))
    if outcome.status == "requires_action":
        return authenticate_page(outcome, url_for(".accept_confirm", plan_id=plan.id, attempt_id=outcome.attempt.id))
    form.token.data = charges.new_token()
    form.setup_intent.data = ""
    db.session.refresh(plan)
    return _detail_page(plan, form, 402 if outcome.status == "failed" else 202, outcome)


@bp.post("/plans/<int:plan_id>/accept/<int:attempt_id>/confirm")
def accept_confirm(plan_id: int, attempt_id: int):
    plan = _plan(plan_id)
    _attempt, outcome = back_from_bank(attempt_id, ChargeAttempt.plan_id == plan.id)
    form = AcceptPlanForm(formdata=None)
    form.frequency.data = plan.frequency
    return _after_accept(plan, form, outcome)


# --- SP-11: the customer updates the plan's card ----------------------------------------------------------

@bp.post("/plans/<int:plan_id>/use-card")
def use_card(plan_id: int):
    """One tap: a card already in the wallet pays this plan from now on (nothing is charged here)."""
    plan = _plan(plan_id)
    if not CardActionForm().validate_on_submit():
        flash(_("The form expired. Please try again."), "error")
        return redirect(url_for(".detail", plan_id=plan.id))
    try:
        chosen = cards.card_of(current_customer, request.form.get("card_id"))
        plan_billing.set_card(plan, chosen, actor=None)
    except ServiceError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for(".detail", plan_id=plan.id))
    db.session.commit()
    flash(_("%(card)s now pays for %(plan)s. Your billing date does not change.", card=chosen.label,
            plan=plan.name), "success")
    return redirect(url_for(".detail", plan_id=plan.id))


def _card_page(plan, form: PlanCardForm, status: int = 200, outcome=None):
    card_choices(form)
    if request.method == "GET" and plan.card_id:
        form.card_id.data = str(plan.card_id)
    outstanding = plan_billing.outstanding_payments(plan)
    return render_template("portal/plans/card.html", plan=plan, form=form, entry=card_entry("payment"),
                           outstanding=outstanding, total=sum(p.amount_cents for p in outstanding),
                           outcome=outcome, busy=plan_billing.open_charge(plan)), status


@bp.route("/plans/<int:plan_id>/card", methods=["GET", "POST"])
def card(plan_id: int):
    plan = _plan(plan_id)
    if plan.status not in ("active", "pending") and not plan_billing.outstanding_payments(plan):
        flash(_("This plan is %(status)s.", status=label(plan.status)), "error")
        return redirect(url_for(".detail", plan_id=plan.id))
    form = PlanCardForm()
    if request.method == "GET":
        return _card_page(plan, form)
    if not form.validate_on_submit():
        form.form_errors.append(_("The form expired. Please try again."))
        return _card_page(plan, form, 400)
    try:
        chosen = chosen_card(form, on_file=True, if_paid=False)  # SP-11: saved for the plan, paid or not
        if plan.status in ("active", "pending"):  # the page says the card is saved for the plan
            plan_billing.set_card(plan, chosen, actor=None)
            db.session.commit()
        outcome = plan_billing.charge_outstanding(plan, chosen, token=form.token.data, initiated_by="customer")
    except (ValidationError, NotFound) as exc:
        db.session.rollback()
        form.card_id.errors = [exc.message]
        form.setup_intent.data = ""
        return _card_page(plan, form, 400)
    except ServiceError as exc:
        db.session.rollback()
        form.form_errors.append(exc.message)
        return _card_page(plan, form, 409)
    return _after_card(plan, form, outcome)


def _after_card(plan, form: PlanCardForm, outcome: charges.Outcome | None):
    if outcome is None:
        flash(_("Your card is saved for this plan. Your billing date does not change."), "success")
        return redirect(url_for(".detail", plan_id=plan.id))
    if outcome.status == "succeeded":
        flash(_("Your card is saved and everything you owed on this plan (%(amount)s) is paid. Your billing date "
                "does not change.", amount=format_money(outcome.attempt.amount_cents, plan.currency)), "success")
        return redirect(url_for(".detail", plan_id=plan.id))
    if outcome.status == "requires_action":
        return authenticate_page(outcome, url_for(".card_confirm", plan_id=plan.id, attempt_id=outcome.attempt.id))
    form.token.data = charges.new_token()
    form.setup_intent.data = ""
    return _card_page(plan, form, 402 if outcome.status == "failed" else 202, outcome)


@bp.post("/plans/<int:plan_id>/card/<int:attempt_id>/confirm")
def card_confirm(plan_id: int, attempt_id: int):
    plan = _plan(plan_id)
    _attempt, outcome = back_from_bank(attempt_id, ChargeAttempt.plan_id == plan.id)
    return _after_card(plan, PlanCardForm(formdata=None), outcome)
