"""C-10, S-3: the staff dashboard's figures — my customers, my overdue tasks, today's visits, money owed,
open estimates and the counts in the header."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import selectinload

from portal import clock
from portal.extensions import db
from portal.models import (
    ContactTask,
    Customer,
    Estimate,
    Invoice,
    MessageRequest,
    PlanPayment,
    QueuedEmail,
    StaffUser,
    Visit,
)
from portal.services.overview import owed as owed_service
from portal.services.payments import charges, disputes, ledger
from portal.services.platform import mailer
from portal.services.work import work_orders


@dataclass
class Dashboard:
    my_customers: list[Customer]
    overdue_tasks: list[ContactTask]
    visits: list[Visit]
    counts: dict[str, int]
    money: dict | None  # None: the viewer may not see money


def for_staff(me: StaffUser, *, with_money: bool) -> Dashboard:
    my_customers = db.session.scalars(
        select(Customer).where(Customer.manager_id == me.id, Customer.status != "archived")
        .order_by(Customer.created_at.desc()).limit(10)).all()
    overdue_tasks = db.session.scalars(
        select(ContactTask).join(Customer, Customer.id == ContactTask.customer_id)
        .where(ContactTask.assignee_id == me.id, ContactTask.done_at.is_(None), ContactTask.due_at < clock.now(),
               Customer.status != "archived")
        .options(selectinload(ContactTask.customer)).order_by(ContactTask.due_at).limit(50)).all()
    visits = work_orders.visits_on(clock.today(), technician=me if me.role == "technician" else None)
    counts = {
        "customers": db.session.scalar(select(func.count()).select_from(Customer)
                                       .where(Customer.status != "archived")) or 0,
        "emails_waiting": db.session.scalar(select(func.count()).select_from(QueuedEmail)
                                            .where(QueuedEmail.status == "queued")) or 0,
        "emails_failed": mailer.failed_count(),  # issue 14: given up after their tries; staff retry them
        "messages_new": db.session.scalar(select(func.count()).select_from(MessageRequest)
                                          .where(MessageRequest.status == "new")) or 0,  # issue 19 point 8
    }
    return Dashboard(list(my_customers), list(overdue_tasks), visits, counts, money() if with_money else None)


def money() -> dict:
    """What is owed (all payable invoices, and those past due) and the estimates waiting for an answer."""
    payable = Invoice.status.in_(charges.PAYABLE_INVOICE)
    owed = func.coalesce(func.sum(Invoice.total_cents - Invoice.paid_cents), 0)
    late = Invoice.due_date < clock.today()
    # one pass over the payable invoices (partial covering index ix_invoices_payable_sums), not two full-table sums
    open_count, outstanding, overdue_count, overdue_cents = db.session.execute(select(
        func.count(), owed, func.count(case((late, 1))),
        func.coalesce(func.sum(case((late, Invoice.total_cents - Invoice.paid_cents), else_=0)), 0))
        .where(payable)).one()
    failed_count, failed_cents = db.session.execute(select(
        func.count(), func.coalesce(func.sum(PlanPayment.amount_cents), 0))
        .where(PlanPayment.status == "failed")).one()  # issue 19 point 8: failed plan payments, linked
    today = clock.today()
    _totals, _unit, days = ledger.money_by_day(today - timedelta(days=29), today)
    open_estimates = db.session.scalars(
        select(Estimate).where(Estimate.status == "sent",
                               Estimate.valid_until.is_(None) | (Estimate.valid_until >= clock.today()))
        .options(selectinload(Estimate.customer), selectinload(Estimate.line_items))
        .order_by(Estimate.sent_at.desc()).limit(10)).all()
    return {"outstanding_cents": int(outstanding or 0), "open_invoices": open_count or 0,
            "overdue_count": overdue_count or 0, "overdue_cents": int(overdue_cents or 0),
            "open_estimates": list(open_estimates), "failed_plan_payments": failed_count or 0,
            "failed_plan_cents": int(failed_cents or 0), "payments_30_days": days,
            "disputes": disputes.open_disputes(10),
            "owed": owed_service.business_totals()}  # issue 19: invoices and plan payments, by the portal's rules
