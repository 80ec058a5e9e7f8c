"""P-1: what the customer sees first. A fixed number of queries, whatever the history's size."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

from sqlalchemy import Date, Integer, bindparam, select
from sqlalchemy.orm import joinedload

from portal import clock
from portal.extensions import db
from portal.models import Card, Customer, CustomerPlan, Invoice, PlanPayment, Visit
from portal.services.overview import owed as owed_service
from portal.services.payments import cards
from portal.services.platform import settings
from portal.services.work import appointments, estimates

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
    owed: owed_service.Owed
    upcoming: list[UpcomingCharge] = field(default_factory=list)
    next_visit: Visit | None = None
    open_estimates: list = field(default_factory=list)
    plans: list[CustomerPlan] = field(default_factory=list)
    wallet: list[Card] = field(default_factory=list)  # cards on file: a plan without a card can take one

    @property
    def balance_cents(self) -> int:
        """Balance due: everything owed (invoices and plan payments) less the credit the invoices take."""
        return self.owed.to_pay_cents

    @property
    def open_invoices(self) -> list[Invoice]:
        return self.owed.invoices[:SHOWN]

    @property
    def open_count(self) -> int:
        return len(self.owed.invoices)

    @property
    def past_due(self) -> list[Invoice]:
        return self.owed.past_due[:SHOWN]

    @property
    def past_due_count(self) -> int:
        return len(self.owed.past_due)

    @property
    def plan_outstanding(self) -> list[PlanPayment]:
        return self.owed.plan_payments

    @property
    def plan_outstanding_cents(self) -> int:
        return self.owed.plans_cents


def summary(customer: Customer) -> Home:
    today = clock.today()
    home = Home(owed_service.for_customer(customer))
    home.plans = list(db.session.scalars(_plans_stmt(), {"customer_id": customer.id}).unique())
    plan_ids = [p.id for p in home.plans]
    payments = db.session.scalars(_scheduled_stmt(), {"ids": plan_ids, "today": today}).all() if plan_ids else []
    home.wallet = cards.active_cards(customer)
    default_card = next((c for c in home.wallet if c.is_default), None)
    for plan in home.plans:
        if plan.status != "active" or plan.payment_method != "card":
            continue
        nxt = next((p for p in payments if p.plan_id == plan.id), None)
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


@lru_cache(maxsize=1)
def _plans_stmt():
    """The customer's pending and active plans with their cards, oldest first; built once per process."""
    return (select(CustomerPlan).where(CustomerPlan.customer_id == bindparam("customer_id", type_=Integer),
                                       CustomerPlan.status.in_(("pending", "active")))
            .options(joinedload(CustomerPlan.card)).order_by(CustomerPlan.created_at))


@lru_cache(maxsize=1)
def _scheduled_stmt():
    """The scheduled plan payments of some plans (`ids`) due on or after `today`; built once per process."""
    return (select(PlanPayment).where(PlanPayment.plan_id.in_(bindparam("ids", expanding=True)),
                                      PlanPayment.status == "scheduled",
                                      PlanPayment.due_date >= bindparam("today", type_=Date()))
            .order_by(PlanPayment.due_date))
