"""C-10, S-3: the staff dashboard — my customers, my overdue tasks, today's visits, open estimates, money owed."""
from __future__ import annotations

from flask import render_template
from flask_login import current_user

from admin import allowed, bp
from portal import charts
from portal.money import format_money
from portal.services.overview import dashboard as figures


@bp.get("/")
def dashboard():
    board = figures.for_staff(current_user, with_money=allowed(current_user.role, "admin.invoice_list"))
    chart = None
    if board.money:
        days = board.money["payments_30_days"]
        received = sum(d.money_in for d in days)
        best = max(days, key=lambda d: d.money_in)
        chart = charts.bar_chart(
            "payments-chart", "Payments received, last 30 days",
            f"{format_money(received)} received in 30 days ({days[0].start:%b %-d} to {days[-1].start:%b %-d}); "
            f"the best day was {best.label} with {format_money(best.money_in)}.",
            ["Received"], [(d.label, (d.money_in,)) for d in days], format_money)
    return render_template("admin/dashboard.html", my_customers=board.my_customers, overdue_tasks=board.overdue_tasks,
                           counts=board.counts, visits=board.visits, money=board.money, chart=chart,
                           sees_messages=allowed(current_user.role, "admin.messages_inbox"))
