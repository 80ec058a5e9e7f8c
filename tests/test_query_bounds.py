"""Pages load their data in a bounded number of queries: more rows, not more queries."""
from __future__ import annotations

from contextlib import contextmanager
from datetime import date, timedelta

from sqlalchemy import event, select

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


# --- Issue 15: every listed page, admin and portal, in the same number of queries for 2 and 20 rows ------------

def _rows(customer_id: int, staff_id: int, n: int, start: int) -> None:
    """n more of everything that a list or report can grow with, for one customer (direct rows: fast)."""


    from portal import clock
    from portal.models import (
        ActivityEvent,
        Adjustment,
        Card,
        ChargeAttempt,
        CustomerPlan,
        Estimate,
        EstimateLineItem,
        Invoice,
        InvoiceLineItem,
        Job,
        MessageRequest,
        Payment,
        PlanPayment,
        PlanPaymentLine,
        QueuedEmail,
        Refund,
        Visit,
    )
    from portal.services.payments import charges

    now = clock.now()
    card = db.session.scalars(select(Card).where(Card.customer_id == customer_id)).first()
    if card is None:
        card = Card(customer_id=customer_id, stripe_payment_method_id=f"pm_q_{customer_id}", brand="visa",
                    last4="4242", exp_month=12, exp_year=2030, is_default=True)
        db.session.add(card)
    plan = db.session.scalars(select(CustomerPlan).where(CustomerPlan.customer_id == customer_id)).first()
    if plan is None:
        plan = CustomerPlan(customer_id=customer_id, name="Comfort Club", status="active", frequency="monthly",
                            price_cents=1999, price_monthly_cents=1999, payment_method="card",
                            start_date=date(2025, 1, 1), next_billing_date=date(2027, 1, 1))
        db.session.add(plan)
    db.session.flush()
    for k in range(start, start + n):
        when = now - timedelta(days=k % 25, hours=1)
        paid = Invoice(customer_id=customer_id, number=f"Q-{customer_id}-{k}", status="paid",
                       issue_date=when.date(), due_date=when.date(), subtotal_cents=5_000, total_cents=5_000,
                       paid_cents=5_000, sent_at=when)
        late = Invoice(customer_id=customer_id, number=f"L-{customer_id}-{k}", status="open",
                       issue_date=date(2025, 1, 1), due_date=date(2025, 1, 15) + timedelta(days=k),
                       subtotal_cents=7_000, total_cents=7_000, paid_cents=0, sent_at=when)
        for inv in (paid, late):
            inv.line_items.append(InvoiceLineItem(description="Service", quantity=1, unit_price_cents=inv.total_cents))
        payment = Payment(customer_id=customer_id, method="card", amount_cents=5_000, fee_cents=178, net_cents=4_822,
                          card_id=card.id, card_brand="visa", card_last4="4242", received_at=when)
        db.session.add_all([paid, late, payment])
        db.session.flush()
        charges.add_allocation(payment, 5_000, invoice_id=paid.id)
        refund = Refund(payment_id=payment.id, amount_cents=500, reason="goodwill", status="succeeded",
                        idempotency_key=f"rq_{payment.id}", created_at=when)
        db.session.add(refund)
        db.session.flush()
        db.session.add_all([
            Adjustment(customer_id=customer_id, payment_id=payment.id, refund_id=refund.id, amount_cents=100,
                       reason="correction", created_at=when),
            ChargeAttempt(idempotency_key=f"dq_{customer_id}_{k}", customer_id=customer_id, card_id=card.id,
                          amount_cents=8_700, status="failed", purpose="invoice", decline_code="insufficient_funds",
                          failure_message="Your card has insufficient funds.", created_at=when),
            MessageRequest(customer_id=customer_id, name="Maria", body=f"message {k}", status="new"),
            QueuedEmail(template="invoice_sent", to_address="q@example.com", subject=f"Invoice {k}", body_text="x",
                        body_html="<p>x</p>", customer_id=customer_id, status="sent", sent_at=when),
            ActivityEvent(customer_id=customer_id, event_type="note", summary=f"event {k}", actor_kind="staff",
                          actor_staff_id=staff_id),
        ])
        job = Job(customer_id=customer_id, number=f"JQ-{customer_id}-{k}", title=f"Job {k}", status="finished")
        job.visits.append(Visit(starts_at=when - timedelta(days=30), ends_at=when - timedelta(days=30, hours=-2),
                                status="completed"))
        estimate = Estimate(customer_id=customer_id, number=f"EQ-{customer_id}-{k}", title=f"Estimate {k}",
                            status="sent", sent_at=when)
        estimate.line_items.append(EstimateLineItem(description="Work", quantity=1, unit_price_cents=9_000))
        bill = PlanPayment(plan_id=plan.id, due_date=date(2024, 1, 1) + timedelta(days=30 * k), amount_cents=1999,
                           status="failed" if k % 2 else "paid", method="card",
                           failure_code="insufficient_funds" if k % 2 else None)
        bill.lines.append(PlanPaymentLine(description="Plan", amount_cents=1999))
        db.session.add_all([job, estimate, bill])
    db.session.commit()



PAGES_ADMIN = ("/admin/", "/admin/customers", "/admin/customers/{busy}", "/admin/invoices", "/admin/overdue",
               "/admin/reports/plans", "/admin/reports/transactions?from=2024-01-01&to={today}",
               "/admin/reports/transactions?from=2024-01-01&to={today}&format=csv", "/admin/messages",
               "/admin/outbox")
PAGES_PORTAL = ("/portal/", "/portal/invoices?show=all", "/portal/invoices/{invoice}", "/portal/invoices/{invoice}.pdf",
                "/portal/appointments", "/portal/estimates", "/portal/messages")


def test_every_listed_page_queries_the_same_for_2_and_20_rows(app, client, login_staff, login_customer):
    """Issue 15: the admin lists and reports, the client card, the dashboard and the portal lists load in a fixed
    number of queries: 2 rows of everything, then 20 (lists paged, sums in SQL) — the same counts."""
    from portal import clock
    from portal.models import Invoice

    with app.app_context():
        staff = make_staff("admin")
        busy, other = make_customer("Busy"), make_customer("Other")
        _rows(busy.id, staff.id, 2, 0)
        _rows(other.id, staff.id, 2, 0)
        invoice_id = db.session.scalars(select(Invoice.id).where(Invoice.customer_id == busy.id)
                                        .order_by(Invoice.id)).first()
    login_staff(staff)
    portal = app.test_client()
    login_customer(busy, c=portal)
    values = {"busy": busy.id, "invoice": invoice_id, "today": clock.today().isoformat()}

    def counts() -> dict[str, int]:
        out = {url: _queries(app, client, url.format(**values)) for url in PAGES_ADMIN}
        out.update({url: _queries(app, portal, url.format(**values)) for url in PAGES_PORTAL})
        return out

    few = counts()
    with app.app_context():
        _rows(busy.id, staff.id, 18, 2)
        _rows(other.id, staff.id, 18, 2)
        for i in range(6):
            _rows(make_customer(f"More{i}").id, staff.id, 3, 0)
    many = counts()
    assert many == few
    assert many["/admin/customers/{busy}"] <= 20, many
