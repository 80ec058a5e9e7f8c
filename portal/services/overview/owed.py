"""P-1, SP-8, R-7: what a customer owes — the one answer every money screen reads.

Owed = the balances of their open invoices + their failed and overdue plan payments. Credit on account (money
paid that nothing holds, `billing.credit`) is shown beside it and goes to the invoices first, so "to pay" is what
is owed less the credit those invoices can take. A refunded invoice or plan payment is not owed (R-7): refunds
never lower what an invoice was paid unless staff said the customer still owes it.

`pay_everything` is the portal's one "Pay $X": one card charge for every open invoice and outstanding plan
payment, allocated to each when it succeeds (the invoices through the "Pay all" shares, the plan payments through
`plans.billing.on_pay_all_succeeded`, which also ends their dunning).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import cache

from flask_babel import gettext as _
from sqlalchemy import Date, Integer, bindparam, case, func, select, true
from sqlalchemy.orm import aliased, contains_eager, joinedload

from portal import clock
from portal.extensions import db
from portal.models import Card, Customer, CustomerPlan, Invoice, PlanPayment
from portal.services.billing import credit
from portal.services.errors import NotFound, ServiceError, ValidationError
from portal.services.payments import charges
from portal.services.plans import billing as plan_billing
from portal.services.platform import settings

OUTSTANDING_PLAN = plan_billing.OUTSTANDING  # failed, overdue
PAY_ALL = "pay_all"  # the purpose of a charge for invoices and plan payments together


@dataclass
class Owed:
    currency: str
    today: date
    invoices: list[Invoice] = field(default_factory=list)  # open, with a balance; oldest due first (`listed`)
    plan_payments: list[PlanPayment] = field(default_factory=list)  # failed / overdue; oldest first
    credit_cents: int = 0
    next_scheduled: PlanPayment | None = None  # the next plan bill still to come
    invoice_count: int = 0  # every open invoice with a balance, also when `invoices` lists only the first ones
    invoices_cents: int = 0  # their balances (the database's sum over all of them)

    @property
    def plans_cents(self) -> int:
        return sum(p.amount_cents for p in self.plan_payments)

    @property
    def total_cents(self) -> int:
        """Everything owed, before credit."""
        return self.invoices_cents + self.plans_cents

    @property
    def credit_used_cents(self) -> int:
        """The part of the credit that goes to the open invoices."""
        return min(self.credit_cents, self.invoices_cents)

    @property
    def credit_left_cents(self) -> int:
        return self.credit_cents - self.credit_used_cents

    @property
    def to_pay_cents(self) -> int:
        """What one "Pay" charges: everything owed less the credit the invoices take."""
        return self.total_cents - self.credit_used_cents

    @property
    def past_due(self) -> list[Invoice]:
        """The listed invoices past their due date."""
        return [i for i in self.invoices if i.due_date is not None and i.due_date < self.today]

    @property
    def nothing_owed(self) -> bool:
        return self.total_cents == 0

    def overdue_invoice(self, invoice: Invoice) -> bool:
        return invoice.balance_cents > 0 and invoice.due_date is not None and invoice.due_date < self.today


def for_customer(customer: Customer, *, with_next: bool = True, listed: int | None = None) -> Owed:
    """Two queries (the open invoices with their number, balance sum and the credit; plan payments with their
    plans) plus one for the next bill (`with_next`; the client card does not show it). `listed`: load only the first
    open invoices (the client card); their number and balance are still the database's over all of them."""
    today = clock.today()
    owed = Owed(settings.currency(), today)
    rows = db.session.execute(_invoices_stmt(listed is not None),
                              {"customer_id": customer.id, "listed": listed}).all()
    owed.invoice_count, owed.invoices_cents, owed.credit_cents = (int(v or 0) for v in rows[0][:3])
    owed.invoices = [row[3] for row in rows if row[3] is not None]
    owed.plan_payments = list(db.session.scalars(_plan_payments_stmt(), {"customer_id": customer.id}))
    if not with_next:
        return owed
    owed.next_scheduled = db.session.scalars(_next_scheduled_stmt(),
                                             {"customer_id": customer.id, "today": today}).first()
    return owed


@cache
def _next_scheduled_stmt():
    """The customer's next scheduled bill of an active plan, with its plan; built once per process."""
    return (select(PlanPayment).join(CustomerPlan, CustomerPlan.id == PlanPayment.plan_id)
            .where(CustomerPlan.customer_id == bindparam("customer_id", type_=Integer),
                   CustomerPlan.status == "active", PlanPayment.status == "scheduled",
                   PlanPayment.due_date >= bindparam("today", type_=Date()))
            .options(contains_eager(PlanPayment.plan)).order_by(PlanPayment.due_date).limit(1))



@cache
def _invoices_stmt(limited: bool):
    """The customer's open invoices, oldest due first (the first `listed` when `limited`), each row carrying their
    number, balance sum and the customer's credit; one row of sums and no invoice when nothing is open. Built once
    per process with the customer (and `listed`) as parameters."""
    cid = bindparam("customer_id", type_=Integer)
    payable = (Invoice.customer_id == cid, Invoice.status.in_(charges.PAYABLE_INVOICE),
               Invoice.total_cents > Invoice.paid_cents)
    sums = select(func.count().label("n"), func.coalesce(func.sum(Invoice.total_cents - Invoice.paid_cents), 0)
                  .label("cents")).where(*payable).subquery("owed_sums")
    oldest_due = select(Invoice).where(*payable).order_by(Invoice.due_date.is_(None), Invoice.due_date, Invoice.id)
    listed = (oldest_due.limit(bindparam("listed", type_=Integer)) if limited else oldest_due).subquery(
        "owed_invoices")
    invoice = aliased(Invoice, listed)
    return (select(sums.c.n, sums.c.cents, credit.available_select(cid).scalar_subquery(), invoice)
            .select_from(sums.outerjoin(listed, true()))
            .order_by(listed.c.due_date.is_(None), listed.c.due_date, listed.c.id))


@cache
def _plan_payments_stmt():
    return (select(PlanPayment).join(CustomerPlan, CustomerPlan.id == PlanPayment.plan_id)
            .where(CustomerPlan.customer_id == bindparam("customer_id", type_=Integer),
                   PlanPayment.status.in_(OUTSTANDING_PLAN))
            .options(contains_eager(PlanPayment.plan)).order_by(PlanPayment.due_date, PlanPayment.id))

@dataclass
class BusinessOwed:
    invoices_cents: int
    plans_cents: int
    plan_payments: int
    credit_cents: int

    @property
    def total_cents(self) -> int:
        return self.invoices_cents + self.plans_cents


def business_totals() -> BusinessOwed:
    """What all customers owe (the staff dashboard), by the same rules as `for_customer`."""
    invoices = db.session.scalar(select(invoices_owed_sum()).where(Invoice.status.in_(charges.PAYABLE_INVOICE))) or 0
    count, plans = db.session.execute(select(func.count(), func.coalesce(func.sum(PlanPayment.amount_cents), 0))
                                      .where(PlanPayment.status.in_(OUTSTANDING_PLAN))).one()
    return BusinessOwed(int(invoices), int(plans or 0), int(count or 0), credit.business_total_cents())


def invoices_owed_sum():
    """Summed over the payable invoices (`charges.PAYABLE_INVOICE`): what they owe, their balances above zero (the
    dashboard sums it in its own pass over those invoices)."""
    return func.coalesce(func.sum(case((Invoice.total_cents > Invoice.paid_cents,
                                        Invoice.total_cents - Invoice.paid_cents), else_=0)), 0)


# --- Paying everything at once (P-1, INV-4 extended to plan payments) -----------------------------------------

@dataclass
class Selection:
    invoices: list[Invoice]
    plan_payments: list[PlanPayment]
    settled: list[Invoice]  # named in a "Pay all" link but paid or voided since

    @property
    def total_cents(self) -> int:
        return sum(i.balance_cents for i in self.invoices) + sum(p.amount_cents for p in self.plan_payments)


def reload(ids: list[int], plan_ids: list[int]) -> None:
    """After a commit (the card element's SetupIntent): load the chosen rows (their ids taken before the commit)
    again in two queries, not one each."""
    if ids:
        db.session.scalars(select(Invoice).where(Invoice.id.in_(ids))).all()
    if plan_ids:
        db.session.scalars(select(PlanPayment).where(PlanPayment.id.in_(plan_ids))
                           .options(joinedload(PlanPayment.plan))).all()


def _ids(raw: str | None, limit: int = 50) -> list[int]:
    parts = [p.strip() for p in (raw or "").split(",") if p.strip()]
    if len(parts) > limit or not all(p.isascii() and p.isdigit() and 0 < int(p) < 2**31 for p in parts):
        raise NotFound("Not found.")
    return sorted({int(p) for p in parts})


def selection(customer: Customer, raw_invoice_ids: str | None, raw_plan_ids: str | None, *,
              everything: bool) -> Selection:
    """What a "Pay all" page pays. `everything`: every open invoice and outstanding plan payment (the home page's
    "Pay $X"); otherwise the invoices a link names (INV-4) and the plan payments the form carries. Ids that are not
    this customer's → NotFound (G-5)."""
    if everything:
        owed = for_customer(customer)
        return Selection(owed.invoices, owed.plan_payments, [])
    payable, settled = _invoice_selection(customer, raw_invoice_ids)
    plan_ids = _ids(raw_plan_ids)
    rows = list(db.session.scalars(
        select(PlanPayment).join(CustomerPlan, CustomerPlan.id == PlanPayment.plan_id)
        .where(PlanPayment.id.in_(plan_ids), CustomerPlan.customer_id == customer.id)
        .options(contains_eager(PlanPayment.plan)).order_by(PlanPayment.due_date, PlanPayment.id))) \
        if plan_ids else []
    if len(rows) != len(plan_ids):
        raise NotFound("Not found.")
    return Selection(payable, [r for r in rows if r.status in OUTSTANDING_PLAN], settled)


def _invoice_selection(customer: Customer, raw: str | None) -> tuple[list[Invoice], list[Invoice]]:
    ids = _ids(raw)
    if not ids:
        return [], []
    rows = list(db.session.scalars(select(Invoice).where(Invoice.id.in_(ids), Invoice.customer_id == customer.id,
                                                         Invoice.status != "draft").order_by(Invoice.id)))
    if len(rows) != len(ids):
        raise NotFound("Invoice not found.")
    payable = [i for i in rows if i.status in charges.PAYABLE_INVOICE and i.balance_cents > 0]
    return payable, [i for i in rows if i not in payable]


def pay_everything(customer: Customer, card: Card, chosen: Selection, *, seen_total_cents: int,
                   token: str | None) -> charges.Outcome:
    """One on-session card charge for the chosen invoices and plan payments. Credit on account goes to the
    invoices first; `seen_total_cents` is what the page showed, so a total that changed meanwhile charges nothing.
    Commits (the money path)."""
    if not chosen.invoices and not chosen.plan_payments:
        raise ValidationError("invoices", _("There is nothing left to pay on these invoices."))
    if credit.apply(customer, invoices=chosen.invoices):
        db.session.commit()
        for invoice in chosen.invoices:
            db.session.refresh(invoice)
    invoices = [i for i in chosen.invoices if i.status in charges.PAYABLE_INVOICE and i.balance_cents > 0]
    for plan_id in sorted({p.plan_id for p in chosen.plan_payments}):
        plan = plan_billing.lock_plan(plan_id)
        if plan_billing.open_charge(plan) is not None:
            raise ServiceError(_("A payment for this plan is being processed. Wait a minute and reload the page."))
    rows = list(db.session.scalars(select(PlanPayment).where(PlanPayment.id.in_([p.id for p in chosen.plan_payments]))
                                   .execution_options(populate_existing=True))) if chosen.plan_payments else []
    if any(r.status not in OUTSTANDING_PLAN for r in rows):
        raise ValidationError("invoices", _("The balances changed since you opened this page. Check the total "
                                            "and pay again."))
    plan_cents = sum(r.amount_cents for r in rows)
    total = sum(i.balance_cents for i in invoices) + plan_cents
    if total != seen_total_cents:
        raise ValidationError("invoices", _("The balances changed since you opened this page. Check the total "
                                            "and pay again."))
    if total == 0:
        raise ValidationError("invoices", _("Your credit on account paid these invoices; there is nothing left to "
                                            "pay."))
    if not rows:
        return charges.charge_card(customer, card, total, token=token, invoices=invoices, purpose="invoices",
                                   off_session=False, initiated_by="customer")
    return charges.charge_card(customer, card, total, token=token, invoices=invoices or None, purpose=PAY_ALL,
                               off_session=False, initiated_by="customer", plan_cents=plan_cents,
                               plan_payment_ids=[r.id for r in rows])
