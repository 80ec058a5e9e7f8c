"""Pages load their data in a bounded number of queries: more rows, not more queries."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import date, timedelta

from sqlalchemy import event

from portal.extensions import db
from portal.models import Customer, StaffUser
from portal.services.crm import records
from portal.services.work import work_orders
from tests.factories import make_customer, make_estimate, make_invoice, make_job, make_plan, make_staff


@contextmanager
def counting(app):
    counter = {"n": 0}

    def count(*_args, **_kwargs):
        counter["n"] += 1

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield counter
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _grow(customer_id: int, staff_ids: list[int], n: int) -> None:
    """n of everything: jobs with visits, invoices, estimates, notes and contacts by different staff."""
    customer = db.session.get(Customer, customer_id)
    for i in range(n):
        staff = db.session.get(StaffUser, staff_ids[i % len(staff_ids)])
        job = make_job(customer, f"Job {i}", visit_in_days=i + 1, technician=staff)
        make_invoice(customer, 1_000 + i)
        make_estimate(customer)
        records.add_note(customer, staff, f"note {i}")
        records.log_contact(customer, staff, channel="call", outcome=f"call {i}", contacted_at=None)
        if i % 2:
            work_orders.set_status(db.session.get(type(job), job.id), staff, "finished")
        db.session.commit()


def _queries(app, client, url: str) -> int:
    with counting(app) as counter:
        assert client.get(url).status_code == 200
    return counter["n"]


def test_client_card_and_portal_pages_do_not_grow_with_rows(app, client, login_staff, login_customer):
    with app.app_context():
        staff = [make_staff("office") for _ in range(4)]
        small, big = make_customer("Small"), make_customer("Big")
        for c in (small, big):
            make_plan(c, payments=[(date(2026, 1, 1) + timedelta(days=30 * k), "paid") for k in range(3)])
        _grow(small.id, [s.id for s in staff], 2)
        _grow(big.id, [s.id for s in staff], 12)
    login_staff(staff[0])
    assert _queries(app, client, f"/admin/customers/{big.id}") == _queries(app, client, f"/admin/customers/{small.id}")
    assert _queries(app, client, "/admin/") <= 20
    staff_client, portal_small, portal_big = client, app.test_client(), app.test_client()
    login_customer(small, c=portal_small)
    login_customer(big, c=portal_big)
    for url in ("/portal/", "/portal/invoices?show=all", "/portal/appointments", "/portal/estimates",
                "/portal/plans", "/portal/invoices/pay-all"):
        assert _queries(app, portal_big, url) == _queries(app, portal_small, url), url
    assert staff_client is client


def _owing_plans(customer, n: int, staff_id: int) -> int:
    """A plan with n payments of every kind (paid, failed with attempts, overdue, marked paid) and n add-ons."""
    from portal.models import ChargeAttempt, PlanAddon, PlanPayment, PlanPaymentLine

    plan = make_plan(customer, payments=[])
    start = date(2025, 1, 5)
    for k in range(n):
        for j, status in enumerate(("paid", "failed", "overdue", "marked_paid")):
            row = PlanPayment(plan_id=plan.id, due_date=start + timedelta(days=120 * k + j), amount_cents=1999,
                              status=status, method="cash" if status == "overdue" else "card",
                              marked_paid_by_id=staff_id if status == "marked_paid" else None,
                              failure_message="declined" if status == "failed" else None)
            row.lines.append(PlanPaymentLine(description="Plan", amount_cents=1999))
            db.session.add(row)
            db.session.flush()
            if status == "failed":
                db.session.add(ChargeAttempt(idempotency_key=f"q_{row.id}", customer_id=customer.id, amount_cents=1999,
                                             status="failed", purpose="plan_payment", plan_id=plan.id,
                                             plan_payment_id=row.id, plan_payment_ids=str(row.id)))
        db.session.add(PlanAddon(plan_id=plan.id, customer_id=customer.id, name=f"Filter {k}", amount_cents=500,
                                 payment_plan="recurring", status="active"))
    db.session.commit()
    return plan.id


def test_plan_page_and_overdue_dashboard_do_not_grow_with_rows(app, client, login_staff):
    with app.app_context():
        staff = make_staff("admin")
        small_plan = _owing_plans(make_customer("Small"), 2, staff.id)
        big_plan = _owing_plans(make_customer("Big"), 12, staff.id)
        make_invoice(make_customer("Inv"), 1_000, due_date=date(2025, 1, 1))
    login_staff(staff)
    assert _queries(app, client, f"/admin/plans/{small_plan}") == _queries(app, client, f"/admin/plans/{big_plan}")
    few = _queries(app, client, "/admin/overdue")
    report = _queries(app, client, "/admin/reports/plans")
    with app.app_context():
        for i in range(6):
            _owing_plans(make_customer(f"More{i}"), 2, staff.id)
            make_invoice(make_customer(f"Inv{i}"), 1_000, due_date=date(2025, 1, 1))
    assert _queries(app, client, "/admin/overdue") == few
    assert _queries(app, client, "/admin/reports/plans") == report
