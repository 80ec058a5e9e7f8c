"""C-10, S-3: the staff dashboard — my customers, my overdue tasks, today's visits, open estimates, money owed."""
from __future__ import annotations

from flask import render_template
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from admin import allowed, bp
from portal import clock
from portal.extensions import db
from portal.models import ContactTask, Customer, Estimate, Invoice, QueuedEmail
from portal.services.payments import charges
from portal.services.work import work_orders


@bp.get("/")
def dashboard():
    me = current_user
    my_customers = db.session.scalars(
        select(Customer).where(Customer.manager_id == me.id, Customer.status != "archived")
        .order_by(Customer.created_at.desc()).limit(10)).all()
    overdue_tasks = db.session.scalars(
        select(ContactTask).join(Customer, Customer.id == ContactTask.customer_id)
        .where(ContactTask.assignee_id == me.id, ContactTask.done_at.is_(None), ContactTask.due_at < clock.now(),
               Customer.status != "archived")
        .options(selectinload(ContactTask.customer)).order_by(ContactTask.due_at).limit(50)).all()
    visits = work_orders.visits_on(clock.today(), technician=me if me.role == "technician" else None)
    money = None
    if allowed(me.role, "admin.invoice_list"):
        open_q = select(Invoice).where(Invoice.status.in_(charges.PAYABLE_INVOICE))
        outstanding = db.session.scalar(select(func.coalesce(func.sum(Invoice.total_cents - Invoice.paid_cents), 0))
                                        .where(Invoice.status.in_(charges.PAYABLE_INVOICE))) or 0
        overdue = db.session.execute(
            select(func.count(), func.coalesce(func.sum(Invoice.total_cents - Invoice.paid_cents), 0))
            .where(Invoice.status.in_(charges.PAYABLE_INVOICE), Invoice.due_date < clock.today())).one()
        money = {"outstanding_cents": int(outstanding), "open_invoices": db.session.scalar(
            select(func.count()).select_from(open_q.subquery())) or 0,
            "overdue_count": overdue[0], "overdue_cents": int(overdue[1]),
            "open_estimates": db.session.scalars(select(Estimate).where(
                Estimate.status == "sent", Estimate.valid_until.is_(None) | (Estimate.valid_until >= clock.today()))
                                                 .options(selectinload(Estimate.customer),
                                                          selectinload(Estimate.line_items))
                                                 .order_by(Estimate.sent_at.desc()).limit(10)).all()}
    counts = {
        "customers": db.session.scalar(select(func.count()).select_from(Customer)
                                       .where(Customer.status != "archived")) or 0,
        "emails_waiting": db.session.scalar(select(func.count()).select_from(QueuedEmail)
                                            .where(QueuedEmail.status == "queued")) or 0,
    }
    return render_template("admin/dashboard.html", my_customers=my_customers, overdue_tasks=overdue_tasks,
                           counts=counts, visits=visits, money=money)
