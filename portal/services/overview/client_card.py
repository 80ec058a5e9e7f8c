"""C-8, C-9, C-12: what the client card shows at a glance — money figures and the activity feed."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from sqlalchemy import Integer, bindparam, func, select, true
from sqlalchemy.orm import joinedload, selectinload

from portal.extensions import db
from portal.models import ActivityEvent, Customer, CustomerPaymentSum, CustomerPlan, Estimate, Invoice, Job, Payment
from portal.models.activity import ACTIVITY_TYPES
from portal.models.ledger_sums import PAID_STATUSES
from portal.pagination import page_number, paginate
from portal.services.crm import records
from portal.services.payments import ledger
from portal.services.work import work_orders

MONEY_EVENTS = ("payment", "failure", "refund", "invoice", "estimate", "card")  # hidden from technicians


def recent_events(customer: Customer, *, with_money: bool, limit: int = 30) -> list[ActivityEvent]:
    """The newest activity on the card; without money events for those who may not see money."""
    return list(db.session.scalars(_events_stmt(with_money), {"customer_id": customer.id, "limit": limit}))


@cache
def _events_stmt(with_money: bool):
    where = [ActivityEvent.customer_id == bindparam("customer_id", type_=Integer)]
    if not with_money:
        where.append(ActivityEvent.event_type.not_in(MONEY_EVENTS))
    return (select(ActivityEvent).where(*where).options(joinedload(ActivityEvent.actor))
            .order_by(ActivityEvent.created_at.desc(), ActivityEvent.id.desc())
            .limit(bindparam("limit", type_=Integer)))


def plans(customer: Customer, limit: int = 10) -> list[CustomerPlan]:
    return list(db.session.scalars(_plans_stmt(), {"customer_id": customer.id, "limit": limit}))


@cache
def _plans_stmt():
    return (select(CustomerPlan).where(CustomerPlan.customer_id == bindparam("customer_id", type_=Integer))
            .order_by(CustomerPlan.created_at.desc()).limit(bindparam("limit", type_=Integer)))


@dataclass
class Financials:
    lifetime_paid_cents: int
    jobs: int
    invoiced_cents: int
    unbilled_jobs: int
    # the sizes of the card's paged lists (issue 15), from the same query
    invoice_count: int = 0
    history_count: int = 0
    job_count: int = 0
    estimate_count: int = 0
    has_records: bool = False  # payments, sent invoices, attempts, adjustments or plans: archive, never delete


def financials(customer: Customer) -> Financials:
    """The money figures and the card's list sizes: one query of indexed aggregates, whatever the history. (What
    the customer owes is `owed.for_customer`'s answer.)"""
    kept = db.session.get_bind().dialect.name == "postgresql"  # customer_payment_sums, kept by its triggers
    row = db.session.execute(_financials_stmt(kept), {"customer_id": customer.id}).one()
    paid, jobs, invoiced, invoice_count, history_count, job_count, estimate_count, unbilled = (
        int(v or 0) for v in row[:-1])
    return Financials(paid, jobs, invoiced, unbilled, invoice_count, history_count, job_count, estimate_count,
                      bool(row[-1]))


@cache
def _financials_stmt(kept_sums: bool):
    """The figures' SELECT with the customer as a parameter, built once per process. Each table is read once: a
    customer's payments give lifetime paid and their number (`kept_sums`, PostgreSQL: the few rows of
    customer_payment_sums its triggers keep; else from ix_payments_customer_sums alone, every payment), invoices
    and jobs each give a count and a filtered sum or count."""
    cid = bindparam("customer_id", type_=Integer)
    if kept_sums:
        s = CustomerPaymentSum
        pay = select(func.coalesce(func.sum(s.n), 0).label("n"), func.coalesce(func.sum(s.paid_cents), 0)
                     .label("paid")).where(s.customer_id == cid).subquery("pay")
    else:
        pay = select(func.count().label("n"), func.coalesce(
            func.sum(Payment.amount_cents - Payment.refunded_cents)
            .filter(Payment.status.in_(PAID_STATUSES)), 0).label("paid")) \
            .where(Payment.customer_id == cid).subquery("pay")
    inv = select(func.count().label("n"), func.coalesce(
        func.sum(Invoice.total_cents).filter(Invoice.status.not_in(("draft", "void"))), 0).label("invoiced")) \
        .where(Invoice.customer_id == cid).subquery("inv")
    job = select(func.count().label("n"), func.count().filter(Job.status != "cancelled").label("active")) \
        .where(Job.customer_id == cid).subquery("job")
    return select(
        pay.c.paid, job.c.active, inv.c.invoiced, inv.c.n,
        ledger.customer_history_count(cid, payment_count=pay.c.n).correlate(pay).scalar_subquery(),
        job.c.n,
        select(func.count()).select_from(Estimate).where(Estimate.customer_id == cid).scalar_subquery(),
        work_orders.uninvoiced_finished_count(cid).scalar_subquery(),
        records.financial_records_exist(cid),
    ).select_from(pay.join(inv, true()).join(job, true()))


@dataclass
class Paged:
    """One page of a list on the card (the pager macro reads .page and .pages)."""
    items: list
    page: int
    pages: int
    total: int


def paged(stmt, total: int, page, per_page: int, **params) -> Paged:
    """A page of `stmt` (built with `_paged`: the page's size and offset are parameters; `params` are the others)
    whose row count is already known (counted with the card's other figures)."""
    pages = max(1, -(-total // per_page))
    number = min(page_number(page), pages)
    rows = db.session.scalars(stmt, {**params, "per_page": per_page, "skip": (number - 1) * per_page})
    return Paged(list(rows.unique()), number, pages, total)


def _paged(stmt):
    return stmt.limit(bindparam("per_page", type_=Integer)).offset(bindparam("skip", type_=Integer))


@cache
def _list_stmt(kind: str):
    """A paged list of the card with the customer and the page as parameters, built once per process."""
    cid = bindparam("customer_id", type_=Integer)
    if kind == "invoices":
        return _paged(select(Invoice).where(Invoice.customer_id == cid)
                      .order_by(Invoice.issue_date.desc(), Invoice.id.desc()))
    if kind == "jobs":
        return _paged(select(Job).where(Job.customer_id == cid).options(joinedload(Job.visits))
                      .order_by(Job.created_at.desc(), Job.id.desc()))
    assert kind == "estimates"
    return _paged(select(Estimate).where(Estimate.customer_id == cid).options(joinedload(Estimate.line_items))
                  .order_by(Estimate.created_at.desc(), Estimate.id.desc()))


def invoice_page(customer: Customer, total: int, page, per_page: int = 10) -> Paged:
    return paged(_list_stmt("invoices"), total, page, per_page, customer_id=customer.id)


def job_page(customer: Customer, total: int, page, per_page: int = 10) -> Paged:
    return paged(_list_stmt("jobs"), total, page, per_page, customer_id=customer.id)


def estimate_page(customer: Customer, total: int, page, per_page: int = 10) -> Paged:
    return paged(_list_stmt("estimates"), total, page, per_page, customer_id=customer.id)


def history_page(customer: Customer, total: int, page, per_page: int = 10) -> Paged:
    pages = max(1, -(-total // per_page))
    number = min(page_number(page), pages)
    return Paged(ledger.customer_history_page(customer.id, number, per_page), number, pages, total)


@dataclass
class Feed:
    events: list[ActivityEvent]
    page: int
    pages: int
    total: int
    event_type: str | None


def feed(customer: Customer, *, event_type: str | None = None, page: int = 1, per_page: int = 50) -> Feed:
    q = select(ActivityEvent).where(ActivityEvent.customer_id == customer.id)
    if event_type in ACTIVITY_TYPES:
        q = q.where(ActivityEvent.event_type == event_type)
    else:
        event_type = None
    result = paginate(q.options(selectinload(ActivityEvent.actor))
                      .order_by(ActivityEvent.created_at.desc(), ActivityEvent.id.desc()), page, per_page)
    return Feed(list(result.items), result.page, max(result.pages, 1), result.total, event_type)
