"""C-10, S-3: the staff dashboard — my customers, my overdue tasks, today's visits, open estimates, money owed."""
from __future__ import annotations

from flask import render_template
from flask_login import current_user

from admin import allowed, bp
from portal.services.overview import dashboard as figures


@bp.get("/")
def dashboard():
    board = figures.for_staff(current_user, with_money=allowed(current_user.role, "admin.invoice_list"))
    return render_template("admin/dashboard.html", my_customers=board.my_customers, overdue_tasks=board.overdue_tasks,
                           counts=board.counts, visits=board.visits, money=board.money)
