"""C-8, C-9, C-12: what the client card shows at a glance — money figures and the activity feed."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from portal.extensions import db
from portal.models import ActivityEvent, Customer, Invoice, Job, Payment
from portal.models.activity import ACTIVITY_TYPES
from portal.services.payments import charges
from portal.services.work import work_orders


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
    total = db.session.scalar(select(func.count()).select_from(q.subquery())) or 0
    pages = max((total + per_page - 1) // per_page, 1)
    page = min(max(page, 1), pages)
    events = db.session.scalars(q.options(selectinload(ActivityEvent.actor))
                                .order_by(ActivityEvent.created_at.desc(), ActivityEvent.id.desc())
                                .limit(per_page).offset((page - 1) * per_page)).all()
    return Feed(list(events), page, pages, total, event_type)
