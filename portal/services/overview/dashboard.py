"""C-10, S-3: the staff dashboard's figures — my customers, my overdue tasks, today's visits, money owed,
open estimates and the counts in the header."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache

from sqlalchemy import Date, Integer, bindparam, case, func, select, true
from sqlalchemy.orm import contains_eager, joinedload, selectinload

from portal import clock
from portal.extensions import db
from portal.models import (
    ContactTask,
    Customer,
    EmailStatus,
    Estimate,
    Invoice,
    MessageRequest,
    PlanPayment,
    QueuedEmail,
    StaffUser,
    Visit,
)
from portal.models.types import UTCDateTime
from portal.services.billing import credit
from portal.services.overview import owed as owed_service
from portal.services.payments import charges, disputes, ledger
from portal.services.work import work_orders


@dataclass
class Dashboard:
    my_customers: list[Customer]
    overdue_tasks: list[ContactTask]
    visits: list[Visit]
    counts: dict[str, int]
    money: dict | None  # None: the viewer may not see money


def for_staff(me: StaffUser, *, with_money: bool) -> Dashboard:
    my_customers = db.session.scalars(_my_customers_stmt(), {"me": me.id}).all()
    overdue_tasks = db.session.scalars(_overdue_tasks_stmt(), {"me": me.id, "now": clock.now()}).all()
    visits = work_orders.visits_on(clock.today(), technician=me if me.role == "technician" else None)
    today = clock.today()
    row = db.session.execute(_figures_stmt(with_money), {"today": today}).one()._mapping
    counts = {key: int(row[key] or 0) for key in COUNTS}
    return Dashboard(list(my_customers), list(overdue_tasks), visits, counts,
                     money(row, today) if with_money else None)


@lru_cache(maxsize=1)
def _my_customers_stmt():
    """The ten newest customers `me` manages (not archived), built once per process."""
    return (select(Customer).where(Customer.manager_id == bindparam("me", type_=Integer), Customer.status != "archived")
            .order_by(Customer.created_at.desc()).limit(10))


@lru_cache(maxsize=1)
def _overdue_tasks_stmt():
    """`me`'s open tasks past due (`now`) on customers not archived, with their customers; built once per process."""
    return (select(ContactTask).join(Customer, Customer.id == ContactTask.customer_id)
            .where(ContactTask.assignee_id == bindparam("me", type_=Integer), ContactTask.done_at.is_(None),
                   ContactTask.due_at < bindparam("now", type_=UTCDateTime()), Customer.status != "archived")
            .options(contains_eager(ContactTask.customer)).order_by(ContactTask.due_at).limit(50))


@lru_cache(maxsize=1)
def _open_estimates_stmt():
    """The ten newest sent estimates still valid on `today` (ix_estimates_sent), with their customers and lines;
    built once per process."""
    today = bindparam("today", type_=Date())
    return (select(Estimate).where(Estimate.status == "sent",
                                   Estimate.valid_until.is_(None) | (Estimate.valid_until >= today))
            .options(joinedload(Estimate.customer), selectinload(Estimate.line_items))
            .order_by(Estimate.sent_at.desc()).limit(10))


# the header's counts: not archived customers, emails waiting and given up after their tries (issue 14: staff retry
# them), new messages (issue 19 point 8)
COUNTS = ("customers", "emails_waiting", "emails_failed", "messages_new")


@lru_cache(maxsize=2)
def _figures_stmt(with_money: bool):
    """The dashboard's counts and, for those who see money, its sums, in one SELECT built once per process (`today`
    bound): one pass over the payable invoices (partial covering index ix_invoices_payable_sums) for what is owed
    and late and for `owed`'s invoice figure, one over the failed and overdue plan payments (partial index
    ix_plan_payments_outstanding), and the credit on account."""
    def count(model, *where):
        return select(func.count()).select_from(model).where(*where).scalar_subquery()

    columns = [count(Customer, Customer.status != "archived").label("customers"),
               count(QueuedEmail, QueuedEmail.status == EmailStatus.QUEUED).label("emails_waiting"),
               count(QueuedEmail, QueuedEmail.status == EmailStatus.FAILED).label("emails_failed"),
               count(MessageRequest, MessageRequest.status == "new").label("messages_new")]
    if not with_money:
        return select(*columns)
    balance = Invoice.total_cents - Invoice.paid_cents
    late = Invoice.due_date < bindparam("today", type_=Date())
    invoices = (select(func.count().label("open_invoices"), func.coalesce(func.sum(balance), 0).label("outstanding"),
                       func.count(case((late, 1))).label("overdue_count"),
                       func.coalesce(func.sum(case((late, balance), else_=0)), 0).label("overdue_cents"),
                       owed_service.invoices_owed_sum().label("owed_invoices"))
                .where(Invoice.status.in_(charges.PAYABLE_INVOICE)).subquery("invoice_sums"))
    failed = PlanPayment.status == "failed"
    plans = (select(func.count().label("plan_count"), func.coalesce(func.sum(PlanPayment.amount_cents), 0)
                    .label("plan_cents"),
                    func.count(case((failed, 1))).label("failed_count"),
                    func.coalesce(func.sum(case((failed, PlanPayment.amount_cents), else_=0)), 0)
                    .label("failed_cents"))
             .where(PlanPayment.status.in_(owed_service.OUTSTANDING_PLAN)).subquery("plan_sums"))
    return select(*columns, invoices, plans, credit.business_total_select().scalar_subquery().label("credit")) \
        .select_from(invoices).join(plans, true())


def money(row, today: date) -> dict:
    """What is owed (all payable invoices, and those past due), the failed plan payments (issue 19 point 8), the
    payments of the last 30 days and the estimates waiting for an answer; `row` is `_figures_stmt(True)`'s."""
    _totals, _unit, days = ledger.money_by_day(today - timedelta(days=29), today)
    open_estimates = db.session.scalars(_open_estimates_stmt(), {"today": today}).unique().all()
    return {"outstanding_cents": int(row["outstanding"]), "open_invoices": int(row["open_invoices"]),
            "overdue_count": int(row["overdue_count"]), "overdue_cents": int(row["overdue_cents"]),
            "open_estimates": list(open_estimates), "failed_plan_payments": int(row["failed_count"]),
            "failed_plan_cents": int(row["failed_cents"]), "payments_30_days": days,
            "disputes": disputes.open_disputes(10),
            # issue 19: invoices and plan payments, by the portal's rules (owed.business_totals)
            "owed": owed_service.BusinessOwed(int(row["owed_invoices"]), int(row["plan_cents"]),
                                              int(row["plan_count"]), int(row["credit"]))}
