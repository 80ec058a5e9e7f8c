"""P-1: what the customer sees first. A fixed number of queries, whatever the history's size."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from portal import clock
from portal.extensions import db
from portal.models import Card, Customer, CustomerPlan, Invoice, PlanPayment, Visit
from portal.services.payments import cards, charges
from portal.services.platform import settings
from portal.services.work import appointments, estimates

OUTSTANDING_PLAN = ("failed", "overdue")
SHOWN = 5  # rows per block on the home page; the rest is one click away


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

    open_count: int = 0
    past_due_count: int = 0

    @property
    def pay_target(self) -> Invoice | None:
        """One open invoice: Pay goes straight to it; several: to the list."""
        return self.open_invoices[0] if self.open_count == 1 else None


def summary(customer: Customer) -> Home:
    today = clock.today()
    home = Home()
    payable = (Invoice.customer_id == customer.id, Invoice.status.in_(charges.PAYABLE_INVOICE))
    count, balance = db.session.execute(
        select(func.count(), func.coalesce(func.sum(Invoice.total_cents - Invoice.paid_cents), 0))
        .where(*payable)).one()
    home.open_count, home.balance_cents = int(count), int(balance)
    home.open_invoices = list(db.session.scalars(  # the first few, oldest due first
        select(Invoice).where(*payable).order_by(Invoice.due_date.is_(None), Invoice.due_date, Invoice.id)
        .limit(SHOWN)))
    past_due = (*payable, Invoice.due_date < today)
    home.past_due_count = db.session.scalar(select(func.count()).select_from(Invoice).where(*past_due)) or 0
    home.past_due = list(db.session.scalars(select(Invoice).where(*past_due).order_by(Invoice.due_date, Invoice.id)
                                            .limit(SHOWN)))
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
        for invoice in home.open_invoices:  # the next few AutoPay charges
            if invoice.due_date is not None:
                home.upcoming.append(UpcomingCharge(max(invoice.due_date, today), invoice.balance_cents,
                                                    invoice.currency, default_card, "autopay", invoice=invoice))
    home.upcoming.sort(key=lambda u: u.when)
    home.next_visit = appointments.next_visit(customer)
    home.open_estimates = estimates.open_for(customer, limit=SHOWN)
    return home
