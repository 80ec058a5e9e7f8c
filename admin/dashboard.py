"""The staff dashboard shell."""
from __future__ import annotations

from flask import render_template
from flask_login import current_user
from sqlalchemy import func, select

from admin import bp
from portal.extensions import db
from portal.models import ContactTask, Customer, QueuedEmail
from portal import clock


@bp.get("/")
def dashboard():
    my_customers = db.session.scalars(
        select(Customer).where(Customer.manager_id == current_user.id, Customer.status != "archived")
        .order_by(Customer.created_at.desc()).limit(10)).all()
    overdue_tasks = db.session.scalars(
        select(ContactTask).where(ContactTask.assignee_id == current_user.id, ContactTask.done_at.is_(None),
                                  ContactTask.due_at < clock.now()).order_by(ContactTask.due_at).limit(20)).all()
    counts = {
        "customers": db.session.scalar(select(func.count()).select_from(Customer)
                                       .where(Customer.status != "archived")) or 0,
        "emails_waiting": db.session.scalar(select(func.count()).select_from(QueuedEmail)
                                            .where(QueuedEmail.status == "queued")) or 0,
    }
    return render_template("admin/dashboard.html", my_customers=my_customers, overdue_tasks=overdue_tasks,
                           counts=counts)
