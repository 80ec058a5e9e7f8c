"""P-1: what the customer sees first. A fixed number of queries, whatever the history's size."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from portal import clock
from portal.extensions import db
from portal.models import Card, Customer, CustomerPlan, Invoice, PlanPayment, Visit
from portal.services import appointments, cards, charges, estimates, settings

OUTSTANDING_PLAN = ("failed", "overdue")


@dataclass
class UpcomingCharge:
    when: date
    amount_cents: int
    currency: str
    card: Card | None
    what: str  # "plan" | "autopay"
    plan: CustomerPlan | None = None
    invoice: Invoice | None = None


@dataclass
class Home:
    balance_cents: int = 0
    open_invoices: list[Invoice] = field(default_factory=list)
    past_due: list[Invoice] = field(default_factory=list)
    upcoming: list[UpcomingCharge] = field(default_factory=list)
    next_visit: Visit | None = None
    open_estimates: list = field(default_factory=list)
    plans: list[CustomerPlan] = field(default_factory=list)
    plan_outstanding: list[PlanPayment] = field(default_factory=list)

    @property
    def plan_outstanding_cents(self) -> int:
        return sum(p.amount_cents for p in self.plan_outstanding)

    @property
    def pay_target(self) -> Invoice | None:
        """One open invoice: Pay goes straight to it; several: to the list."""
        return self.open_invoices[0] if len(self.open_invoices) == 1 else None


def summary(customer: Customer) -> Home:
    today = clock.today()
    home = Home()
    home.open_invoices = list(db.session.scalars(
        select(Invoice).where(Invoice.customer_id == customer.id, Invoice.status.in_(charges.PAYABLE_INVOICE))
        .order_by(Invoice.due_date.is_(None), Invoice.due_date, Invoice.id)))
    home.balance_cents = sum(i.balance_cents for i in home.open_invoices)
    home.past_due = [i for i in home.open_invoices if i.due_date is not None and i.due_date < today]
    home.plans = list(db.session.scalars(
        select(CustomerPlan).where(CustomerPlan.customer_id == customer.id,
                                   CustomerPlan.status.in_(("pending", "active")))
        .options(selectinload(CustomerPlan.card)).order_by(CustomerPlan.created_at)))
    plan_ids = [p.id for p in home.plans]
    payments = db.session.scalars(
        select(PlanPayment).where(PlanPayment.plan_id.in_(plan_ids),
                                  PlanPayment.status.in_(OUTSTANDING_PLAN + ("scheduled",)))
        .order_by(PlanPayment.due_date)).all() if plan_ids else []
    home.plan_outstanding = [p for p in payments if p.status in OUTSTANDING_PLAN]
    default_card = next((c for c in cards.active_cards(customer) if c.is_default), None)
    for plan in home.plans:
        if plan.status != "active" or plan.payment_method != "card":
            continue
        nxt = next((p for p in payments if p.plan_id == plan.id and p.status == "scheduled" and p.due_date >= today),
                   None)
        when = nxt.due_date if nxt else plan.next_billing_date
        amount = nxt.amount_cents if nxt else plan.price_cents
        if when and amount:
            home.upcoming.append(UpcomingCharge(when, amount, plan.currency, plan.card, "plan", plan=plan))
    if settings.get().autopay_enabled and customer.autopay_enabled:
        for invoice in home.open_invoices:
            if invoice.due_date is not None:
                home.upcoming.append(UpcomingCharge(max(invoice.due_date, today), invoice.balance_cents,
                                                    invoice.currency, default_card, "autopay", invoice=invoice))
    home.upcoming.sort(key=lambda u: u.when)
    home.next_visit = appointments.next_visit(customer)
    home.open_estimates = estimates.open_for(customer)
    return home
