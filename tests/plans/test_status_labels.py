"""Status words by kind: a plan's "pending" waits for acceptance; a pending charge or refund on the plan page does not."""
from __future__ import annotations

import re
from datetime import date

import pytest
from flask_babel import force_locale

from portal import clock
from portal.extensions import db
from portal.labels import label
from portal.models import (
    ChargeAttempt,
    ChargeAttemptStatus,
    Payment,
    PlanPayment,
    PlanPaymentStatus,
    PlanStatus,
    Refund,
    RefundStatus,
)
from tests.factories import make_customer, make_plan, make_staff


def test_the_same_code_is_worded_by_its_kind(app):
    with app.test_request_context():
        assert label(PlanStatus.PENDING) == "Waiting for acceptance"
        assert label(ChargeAttemptStatus.PENDING) == "Processing"
        assert label(ChargeAttemptStatus.UNKNOWN) == "Processing"
        assert label(RefundStatus.PENDING) == "Pending"
        assert label(PlanPaymentStatus.MARKED_PAID) == "Paid"
        # Plain strings name their kind; codes that are not statuses need none.
        assert label("pending", "plan") == "Waiting for acceptance"
        assert label("pending", RefundStatus) == "Pending"
        assert label("answered", "message") == "Answered"
        assert label("monthly") == "Monthly"
        assert label(None) == ""
        with pytest.raises(ValueError):
            label("pending", "no_such_kind")
        with force_locale("es"):
            assert label(PlanStatus.PENDING) == "Pendiente de aceptación"
            assert label(ChargeAttemptStatus.PENDING) == "En proceso"
            assert label(RefundStatus.PENDING) == "Pendiente"
        with force_locale("ru"):
            assert label(RefundStatus.PENDING) == "Ожидает"


def test_plan_page_shows_a_pending_charge_and_a_pending_refund_as_such(app, client, login_staff):
    with app.app_context():
        staff = make_staff()
        customer = make_customer()
        plan = make_plan(customer, status="active", price_cents=2_500,
                         payments=[(date(2026, 2, 2), "paid"), (date(2026, 3, 2), "failed")])
        paid, failed = db.session.query(PlanPayment).filter_by(plan_id=plan.id).order_by(PlanPayment.due_date).all()
        payment = Payment(customer_id=customer.id, kind="payment", method="card", status="succeeded",
                          amount_cents=2_500, fee_cents=0, net_cents=2_500, received_at=clock.now())
        db.session.add(payment)
        db.session.flush()
        paid.payment_id = payment.id
        db.session.add(Refund(payment_id=payment.id, amount_cents=1_000, method="card", status="pending",
                              idempotency_key="refund_status_labels_1", reason="Goodwill"))
        db.session.add(ChargeAttempt(idempotency_key="charge_status_labels_1", customer_id=customer.id,
                                     amount_cents=2_500, status="pending", purpose="plan_payment", plan_id=plan.id,
                                     plan_payment_ids=str(failed.id), off_session=True, initiated_by="system"))
        db.session.commit()
        assert isinstance(failed.status, PlanPaymentStatus) and failed.status == "failed"

    login_staff(staff)
    html = client.get(f"/admin/plans/{plan.id}").get_data(True)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
    assert "Waiting for acceptance" not in text
    assert re.search(r"\$25\.00 · card · Processing", text), "the pending charge attempt reads as processing"
    assert "Refund $10.00 · Pending · Goodwill" in text
    assert "Active" in text and "Failed" in text and "Paid" in text
