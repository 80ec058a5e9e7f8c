"""SP-1, SP-2, SP-12, AO-2 … AO-4: plan templates, a customer's plan from draft to cancelled, add-ons."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select, update

from portal import clock
from portal.extensions import db, get_existing
from portal.labels import label
from portal.models import (
    Customer,
    CustomerPlan,
    Payment,
    PlanAddon,
    PlanPayment,
    PlanStatus,
    PlanTemplate,
    StaffUser,
    TemplateAddon,
)
from portal.models.plans import ADDON_PAYMENT_PLANS, FREQUENCIES
from portal.money import MAX_CHARGE_CENTS, MIN_CHARGE_CENTS, format_money
from portal.services.errors import ServiceError, ValidationError, found
from portal.services.payments import refunds
from portal.services.plans import billing as plan_billing
from portal.services.platform import activity, magic_links, mailer, settings

MAX_INSTALLMENTS = 120
MAX_NAME = 160


# --- Templates (SP-1) -----------------------------------------------------------------------------------

@dataclass
class TemplateInput:
    name: str
    description: str | None
    visits_per_year: int
    prices: dict  # frequency → cents or None
    is_active: bool = True


def _check_prices(prices: dict) -> None:
    offered = {f: c for f, c in prices.items() if c is not None}
    if not offered:
        raise ValidationError("price_monthly", "Offer at least one billing frequency (enter its price).")
    for frequency, cents in offered.items():
        if cents < MIN_CHARGE_CENTS or cents > MAX_CHARGE_CENTS:
            raise ValidationError(f"price_{frequency}", f"The {frequency} price must be between "
                                                        f"{format_money(MIN_CHARGE_CENTS)} and "
                                                        f"{format_money(MAX_CHARGE_CENTS)}.")


def _check_template(data: TemplateInput) -> None:
    if not (data.name or "").strip():
        raise ValidationError("name", "Enter the plan's name.")
    if len(data.name.strip()) > MAX_NAME:
        raise ValidationError("name", f"Keep the name under {MAX_NAME} characters.")
    if not 0 <= data.visits_per_year <= 365:
        raise ValidationError("visits_per_year", "Visits per year must be between 0 and 365.")
    _check_prices(data.prices)


def save_template(data: TemplateInput, template: PlanTemplate | None = None) -> PlanTemplate:
    """Caller commits."""
    _check_template(data)
    template = template or PlanTemplate(created_at=clock.now())
    template.name = data.name.strip()
    template.description = (data.description or "").strip() or None
    template.visits_per_year = data.visits_per_year
    template.is_active = data.is_active
    for frequency in FREQUENCIES:
        setattr(template, f"price_{frequency}_cents", data.prices.get(frequency))
    db.session.add(template)
    db.session.flush()
    return template


def templates(active_only: bool = False) -> list[PlanTemplate]:
    q = select(PlanTemplate).order_by(PlanTemplate.name)
    if active_only:
        q = q.where(PlanTemplate.is_active.is_(True))
    return list(db.session.scalars(q))


def add_template_addon(template: PlanTemplate, data: AddonInput) -> TemplateAddon:
    check_addon(data)
    addon = TemplateAddon(template_id=template.id, name=data.name.strip(), amount_cents=data.amount_cents,
                          payment_plan=data.payment_plan,
                          installments=data.installments if data.payment_plan == "installments" else None)
    db.session.add(addon)
    return addon


# --- Customer plans (SP-2) ------------------------------------------------------------------------------

@dataclass
class PlanInput:
    name: str
    description: str | None
    visits_per_year: int
    prices: dict
    payment_method: str
    start_date: date | None
    end_date: date | None


def _check_plan(data: PlanInput) -> None:
    _check_template(TemplateInput(data.name, data.description, data.visits_per_year, data.prices))
    if data.payment_method not in ("card", "cash", "check", "other"):
        raise ValidationError("payment_method", "Choose card, cash, check or other.")
    if data.start_date and data.end_date and data.end_date < data.start_date:
        raise ValidationError("end_date", "The end date is before the start date.")


def create_plan(customer: Customer, data: PlanInput, actor: StaffUser, template: PlanTemplate | None = None
                ) -> CustomerPlan:
    """A draft plan for the customer, with the template's add-ons. Caller commits."""
    _check_plan(data)
    plan = CustomerPlan(customer_id=customer.id, template_id=template.id if template else None, status="draft",
                        created_by_id=actor.id, created_at=clock.now(),
                        currency=settings.currency())
    _apply(plan, data)
    db.session.add(plan)
    db.session.flush()
    if template is not None:
        for t in template.addons:
            db.session.add(PlanAddon(plan_id=plan.id, customer_id=customer.id, name=t.name,
                                     amount_cents=t.amount_cents, payment_plan=t.payment_plan,
                                     installments=t.installments,
                                     status="active" if t.payment_plan == "recurring" else "receivable",
                                     installments_billed=0, billed_cents=0, created_at=clock.now()))
    activity.record(customer.id, "plan", f"Plan “{plan.name}” created as a draft", staff=actor, plan_id=plan.id)
    return plan


def _apply(plan: CustomerPlan, data: PlanInput) -> None:
    plan.name = data.name.strip()
    plan.description = (data.description or "").strip() or None
    plan.visits_per_year = data.visits_per_year
    for frequency in FREQUENCIES:
        setattr(plan, f"price_{frequency}_cents", data.prices.get(frequency))
    plan.offered_frequencies = ",".join(plan.offers)
    plan.payment_method = data.payment_method
    plan.start_date = data.start_date
    plan.end_date = data.end_date


def update_plan(plan: CustomerPlan, data: PlanInput, actor: StaffUser) -> None:
    """Only drafts and pending plans change their terms; a pending plan goes back to draft (send it again)."""
    if plan.status not in ("draft", "pending"):
        raise ServiceError("Only a draft or pending plan can be edited; cancel this plan and create a new one.")
    _check_plan(data)
    _apply(plan, data)
    if plan.status == "pending":
        _status(plan, "draft", actor, "edited after sending; send it again")


def _status(plan: CustomerPlan, new: str, actor: StaffUser | None, why: str = "") -> None:
    old = plan.status
    plan.status = PlanStatus(new)
    activity.record(plan.customer_id, "plan", f"Plan “{plan.name}”: {old} → {new}" + (f" ({why})" if why else ""),
                    staff=actor, plan_id=plan.id)


def send(plan: CustomerPlan, actor: StaffUser) -> None:
    """Draft → pending: the customer gets the "Pay and accept" email (magic link to the plan). Caller commits."""
    if plan.status not in ("draft", "pending"):
        raise ServiceError(f"This plan is {plan.status}; only a draft or pending plan is sent.")
    customer = get_existing(Customer, plan.customer_id)
    if not customer.primary_email:
        raise ServiceError("The customer has no email address; add one first.")
    if not customer.can_log_in:
        raise ServiceError("This customer's portal access is turned off.")
    if plan.payment_method != "card":
        raise ServiceError("Pay and accept is for card plans. For cash or check, activate the plan here.")
    if plan.status == "draft":
        _status(plan, "pending", actor, "sent to the customer")
    else:
        activity.record(plan.customer_id, "plan", f"Plan “{plan.name}” sent again", staff=actor, plan_id=plan.id)
    plan.sent_at = clock.now()
    mailer.queue_email("plan_sent", customer.primary_email,
                       {"plan": plan, "link": magic_links.portal_link(customer, f"/portal/plans/{plan.id}"),
                        "subject_args": {"plan": plan.name}}, customer=customer, actor=actor)


def activate_offline(plan: CustomerPlan, frequency: str | None, start: date | None, actor: StaffUser) -> None:
    """A cash/check/other plan starts without the portal: its first bill is due on the start date.
    Commits: the first bill is made by the billing run, which claims and commits per plan."""
    plan = plan_billing.lock_plan(plan.id)
    if plan.status not in ("draft", "pending"):
        raise ServiceError(f"This plan is already {plan.status}.")
    if plan.payment_method == "card":
        raise ServiceError("A card plan starts when the customer pays and accepts it in the portal.")
    if frequency not in plan.offers:
        raise ValidationError("frequency", "Choose one of the frequencies this plan offers.")
    start = start or clock.today()
    if start < clock.today():
        raise ValidationError("start_date", "The first payment date cannot be in the past.")
    if plan.end_date and start > plan.end_date:
        raise ValidationError("start_date", "The first payment date is after the plan's end date.")
    plan.frequency = frequency
    plan.price_cents = plan.price_for(frequency)
    plan.billing_anchor_day = start.day
    plan.start_date = start
    plan.next_billing_date = start
    plan.accepted_at = clock.now()
    _status(plan, "active", actor, f"{label(frequency)}, paid by {plan.payment_method}")
    db.session.commit()
    plan_billing.generate_bills()


def cancel(plan: CustomerPlan, reason: str | None, actor: StaffUser, *, refund_last: bool = False,
           write_off: bool = False, token: str | None = None) -> None:
    """SP-12: future scheduled payments are cancelled, paid ones stay, the reason is kept; optionally the
    last card payment is refunded. Commits."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError("reason", "Enter the reason for cancelling.")
    if len(reason) > 500:
        raise ValidationError("reason", "Keep the reason under 500 characters.")
    plan = plan_billing.lock_plan(plan.id)
    if plan.status in ("cancelled", "expired"):
        raise ServiceError(f"This plan is already {plan.status}.")
    if plan_billing.open_charge(plan) is not None:
        raise ServiceError("A payment for this plan is being processed. Wait a minute and try again.")
    last = last_card_payment(plan) if refund_last else None
    if refund_last and last is None:
        raise ValidationError("refund_last", "There is no card payment of this plan left to refund.")
    if last is not None:
        problem = refunds.why_not(last)
        if problem:
            raise ValidationError("refund_last", problem)
    statuses = ("scheduled", "failed", "overdue") if write_off else ("scheduled",)
    db.session.execute(update(PlanPayment).where(PlanPayment.plan_id == plan.id, PlanPayment.status.in_(statuses))
                       .values(status="cancelled", next_retry_at=None).execution_options(synchronize_session=False))
    db.session.execute(update(PlanPayment).where(PlanPayment.plan_id == plan.id, PlanPayment.status == "failed")
                       .values(next_retry_at=None).execution_options(synchronize_session=False))
    plan.cancelled_at = clock.now()
    plan.cancel_reason = reason
    plan.next_billing_date = None
    _status(plan, "cancelled", actor, reason)
    db.session.commit()
    if last is not None:
        refunds.refund(last, refunds.refundable_cents(last), f"Plan cancelled: {reason}", actor, token)


def last_card_payment(plan: CustomerPlan) -> Payment | None:
    return db.session.scalars(select(Payment).join(PlanPayment, PlanPayment.payment_id == Payment.id)
                              .where(PlanPayment.plan_id == plan.id, Payment.method == "card",
                                     Payment.refunded_cents < Payment.amount_cents)
                              .order_by(Payment.received_at.desc(), Payment.id.desc())).first()


# --- Add-ons (AO-2 … AO-4) ------------------------------------------------------------------------------

@dataclass
class AddonInput:
    name: str
    amount_cents: int
    payment_plan: str
    installments: int | None
    start_date: date | None = None
    end_date: date | None = None


def check_addon(data: AddonInput) -> None:
    if not (data.name or "").strip():
        raise ValidationError("name", "Enter the add-on's name.")
    if len(data.name.strip()) > MAX_NAME:
        raise ValidationError("name", f"Keep the name under {MAX_NAME} characters.")
    if data.payment_plan not in ADDON_PAYMENT_PLANS:
        raise ValidationError("payment_plan", "Choose recurring, one-time or installments.")
    if data.amount_cents <= 0 or data.amount_cents > MAX_CHARGE_CENTS:
        raise ValidationError("amount", "Enter an amount above zero and at most 999,999.99.")
    if data.payment_plan == "installments":
        if data.installments is None or not 1 <= data.installments <= MAX_INSTALLMENTS:
            raise ValidationError("installments", f"Installments must be between 1 and {MAX_INSTALLMENTS}.")
        if data.amount_cents < data.installments:
            raise ValidationError("amount", "The total is too small to split into that many installments.")
    if data.start_date and data.end_date and data.end_date < data.start_date:
        raise ValidationError("end_date", "The end date is before the start date.")


def installment_warning(plan: CustomerPlan, data: AddonInput) -> str | None:
    """AO-4: installments that would not all fall inside the dates make an incomplete payment."""
    if data.payment_plan != "installments" or not data.installments:
        return None
    fits = plan_billing.installments_that_fit(plan, installments=data.installments, start_date=data.start_date,
                                              end_date=data.end_date)
    if fits >= data.installments:
        return None
    end = data.end_date or plan.end_date
    assert end is not None  # without an end date installments_that_fit counts them all
    return (f"Only {fits} of the {data.installments} installments fall on bills between "
            f"{(data.start_date or plan.next_billing_date or plan.start_date or clock.today()).isoformat()} and "
            f"{end.isoformat()}: the payment would be incomplete "
            f"({format_money(plan_billing.installment_amount(data.amount_cents, data.installments, 1) * fits)} of "
            f"{format_money(data.amount_cents)} billed). Change the dates or the number of installments, or save "
            "anyway.")


def add_addon(plan: CustomerPlan, data: AddonInput, actor: StaffUser, *, confirmed: bool = False) -> PlanAddon:
    """Caller commits. Raises ValidationError('confirm', warning) when AO-4 applies and it is not confirmed."""
    if plan.status in ("cancelled", "expired"):
        raise ServiceError(f"This plan is {plan.status}.")
    check_addon(data)
    warning = installment_warning(plan, data)
    if warning and not confirmed:
        raise ValidationError("confirm", warning)
    addon = PlanAddon(plan_id=plan.id, customer_id=plan.customer_id, name=data.name.strip(),
                      amount_cents=data.amount_cents, payment_plan=data.payment_plan,
                      installments=data.installments if data.payment_plan == "installments" else None,
                      installments_billed=0, billed_cents=0, start_date=data.start_date, end_date=data.end_date,
                      status="active" if data.payment_plan == "recurring" else "receivable", created_at=clock.now())
    db.session.add(addon)
    db.session.flush()
    what = {"recurring": "on every bill", "one_time": "once, on the next bill",
            "installments": f"in {data.installments} installments"}[data.payment_plan]
    activity.record(plan.customer_id, "plan", f"Plan “{plan.name}”: add-on “{addon.name}” "
                    f"{format_money(addon.amount_cents)} {what}" + (" (incomplete installments accepted)"
                                                                     if warning else ""), staff=actor,
                    plan_id=plan.id)
    return addon


def remove_addon(plan: CustomerPlan, addon_id: int, actor: StaffUser) -> None:
    addon = db.session.get(PlanAddon, addon_id)
    if addon is None or addon.plan_id != plan.id:
        raise ValidationError("addon", "Add-on not found.")
    activity.record(plan.customer_id, "plan", f"Plan “{plan.name}”: add-on “{addon.name}” removed "
                    "(bills already made keep it)", staff=actor, plan_id=plan.id)
    db.session.delete(addon)


def load_plan(plan_id: int) -> CustomerPlan:
    """A customer plan by id (staff side), or NotFound."""
    return found(db.session.get(CustomerPlan, plan_id), "Plan not found.")


def load_template(template_id: int) -> PlanTemplate:
    return found(db.session.get(PlanTemplate, template_id), "Plan template not found.")


def find_template(template_id: int | None) -> PlanTemplate | None:
    """The template a "new plan" form names, if any (an unknown id is no template, not an error)."""
    return db.session.get(PlanTemplate, template_id) if template_id else None


def remove_template_addon(template: PlanTemplate, addon_id: int | None) -> bool:
    """Take an add-on off a template (plans made from it keep theirs). Caller commits. False: no such add-on."""
    addon = next((a for a in template.addons if a.id == addon_id), None)
    if addon is None:
        return False
    db.session.delete(addon)
    return True
