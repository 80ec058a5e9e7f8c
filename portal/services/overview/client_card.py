"""C-8, C-9, C-12: what the client card shows at a glance — money figures and the activity feed."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from portal.extensions import db
from portal.models import ActivityEvent, Customer, CustomerPlan, Invoice, Job, Payment
from portal.models.activity import ACTIVITY_TYPES
from portal.pagination import paginate
from portal.services.payments import charges
from portal.services.work import work_orders

MONEY_EVENTS = ("payment", "failure", "refund", "invoice", "estimate", "card")  # hidden from technicians


def recent_events(customer: Customer, *, with_money: bool, limit: int = 30) -> list[ActivityEvent]:
    """The newest activity on the card; without money events for those who may not see money."""
    where = [ActivityEvent.customer_id == customer.id]
    if not with_money:
        where.append(ActivityEvent.event_type.not_in(MONEY_EVENTS))
    return list(db.session.scalars(select(ActivityEvent).where(*where).options(selectinload(ActivityEvent.actor))
                                   .order_by(ActivityEvent.created_at.desc(), ActivityEvent.id.desc()).limit(limit)))


def invoices(customer: Customer, limit: int = 20) -> list[Invoice]:
    return list(db.session.scalars(select(Invoice).where(Invoice.customer_id == customer.id)
                                   .order_by(Invoice.issue_date.desc(), Invoice.id.desc()).limit(limit)))


def plans(customer: Customer, limit: int = 10) -> list[CustomerPlan]:
    return list(db.session.scalars(select(CustomerPlan).where(CustomerPlan.customer_id == customer.id)
                                   .order_by(CustomerPlan.created_at.desc()).limit(limit)))


@dataclass
class Financials:
    lifetime_paid_cents: int
    jobs: int
    invoiced_cents: int
    outstanding_cents: int
    unbilled_jobs: int


def financials(customer: Customer) -> Financials:
    paid = db.session.scalar(select(func.coalesce(func.sum(Payment.amount_cents - Payment.refunded_cents), 0))
                             .where(Payment.customer_id == customer.id, Payment.status.in_(
                                 ("succeeded", "refunded", "partially_refunded")))) or 0
    jobs = db.session.scalar(select(func.count()).select_from(Job).where(Job.customer_id == customer.id,
                                                                         Job.status != "cancelled")) or 0
    invoiced = db.session.scalar(select(func.coalesce(func.sum(Invoice.total_cents), 0))
                                 .where(Invoice.customer_id == customer.id,
                                        Invoice.status.not_in(("draft", "void")))) or 0
    outstanding = db.session.scalar(select(func.coalesce(func.sum(Invoice.total_cents - Invoice.paid_cents), 0))
                                    .where(Invoice.customer_id == customer.id,
                                           Invoice.status.in_(charges.PAYABLE_INVOICE))) or 0
    unbilled = work_orders.count_uninvoiced_finished(customer)
    return Financials(int(paid), int(jobs), int(invoiced), int(outstanding), unbilled)


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
