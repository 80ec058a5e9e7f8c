"""R-1 … R-5 at the service level, against the localstripe sandbox (which itself would let a refund exceed
the charge: the rules are ours)."""
from __future__ import annotations

import threading
from datetime import date, timedelta
from types import SimpleNamespace

import pytest
import requests
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import (
    Adjustment,
    Customer,
    CustomerPlan,
    Invoice,
    Payment,
    PlanPayment,
    Refund,
    StaffUser,
)
from portal.services.errors import ServiceError, ValidationError
from portal.services.payments import charges, refunds
from portal.services.platform import mailer
from tests.factories import make_customer, make_invoice, make_paid_invoice, make_staff


def _stripe_refunds(stripe_sandbox, payment_intent_id: str | None = None) -> list[dict]:
    path = f"/v1/refunds?payment_intent={payment_intent_id}" if payment_intent_id else "/v1/refunds"
    r = requests.get(stripe_sandbox["url"] + path, headers={"Authorization": "Bearer sk_test_sandbox"}, timeout=5)
    r.raise_for_status()
    return r.json()["data"]


def _card_payment(amount: int = 12_000, email: str = "ana@example.com") -> SimpleNamespace:
    """A staff card charge paying a whole invoice. Call inside an app context."""
    staff = make_staff("admin")
    c = make_customer("Ana", "Diaz", email=email)
    invoice, _, ok = make_paid_invoice(c, amount, initiated_by="staff", actor=db.session.get(StaffUser, staff.id))
    return SimpleNamespace(staff_id=staff.id, customer_id=c.id, invoice_id=invoice.id, payment_id=ok.payment.id,
                           pi=ok.attempt.stripe_payment_intent_id, email=email, amount=amount)


def _payment(s) -> Payment:
    return db.session.get(Payment, s.payment_id)


def _staff(s) -> StaffUser:
    return db.session.get(StaffUser, s.staff_id)


def _refund_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Refund))


# --- 1. never more than was paid (R-1) -----------------------------------------------------------------

def test_over_refund_is_refused_and_says_what_can_still_be_refunded(app, stripe_sandbox):
    with app.app_context():
        s = _card_payment(12_000)

        with pytest.raises(ValidationError) as refused:
            refunds.refund(_payment(s), 12_001, "Too much", _staff(s), charges.new_token())
        db.session.rollback()

        assert refused.value.field == "amount"
        assert "$120.00 can still be refunded" in refused.value.message
        assert _refund_count() == 0
        payment = _payment(s)
        assert (payment.refunded_cents, payment.status) == (0, "succeeded")
        assert db.session.get(Invoice, s.invoice_id).paid_cents == 12_000
        assert _stripe_refunds(stripe_sandbox, s.pi) == []

        # After a partial refund the limit is what remains.
        first = refunds.refund(_payment(s), 2_000, "Goodwill", _staff(s), charges.new_token())
        assert first.status == "succeeded"
        with pytest.raises(ValidationError) as again:
            refunds.refund(_payment(s), 10_001, None, _staff(s), charges.new_token())
        db.session.rollback()
        assert "$100.00 can still be refunded" in again.value.message
        assert _refund_count() == 1
        assert _payment(s).refunded_cents == 2_000
    assert [r["amount"] for r in _stripe_refunds(stripe_sandbox, s.pi)] == [2_000]


# --- 2. the refund window (R-3) --------------------------------------------------------------------------

def test_refunds_close_90_days_after_the_payment(app, stripe_sandbox, frozen_clock):
    paid_at = frozen_clock.now()
    with app.app_context():
        s = _card_payment(12_000)
        assert _payment(s).received_at == paid_at

        frozen_clock.set(paid_at + timedelta(days=91))
        reason = refunds.why_not(_payment(s))
        assert reason and "90 days" in reason  # shown on the page before anyone tries
        with pytest.raises(ValidationError) as refused:
            refunds.refund(_payment(s), 5_000, "Late", _staff(s), charges.new_token())
        db.session.rollback()
        assert "90 days" in refused.value.message
        assert "2026-05-31" in refused.value.message  # when the window closed
        assert _refund_count() == 0 and _payment(s).refunded_cents == 0
        assert _stripe_refunds(stripe_sandbox, s.pi) == []

        frozen_clock.set(paid_at + timedelta(days=89))
        assert refunds.why_not(_payment(s)) is None
        row = refunds.refund(_payment(s), 5_000, "In time", _staff(s), charges.new_token())
        assert row.status == "succeeded" and row.stripe_refund_id
        assert _payment(s).refunded_cents == 5_000
    assert [r["amount"] for r in _stripe_refunds(stripe_sandbox, s.pi)] == [5_000]


# --- 3. two refunds at once; one form twice (R-1) --------------------------------------------------------

def test_two_concurrent_full_refunds_refund_once(app, stripe_sandbox):
    with app.app_context():
        s = _card_payment(12_000)
        db.session.remove()
    barrier = threading.Barrier(2)
    outcomes: list = []

    def submit(token: str):
        with app.app_context():
            try:
                payment, staff = _payment(s), _staff(s)  # both pages loaded before either submits
                barrier.wait(timeout=10)
                row = refunds.refund(payment, 12_000, "Cancelled job", staff, token)
                outcomes.append(("ok", row.id, row.status))
            except ServiceError as exc:
                db.session.rollback()
                outcomes.append(("refused", exc.message, None))
            except Exception as exc:  # noqa: BLE001 — reported below
                outcomes.append(("error", repr(exc), None))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=submit, args=(charges.new_token(),)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert sorted(o[0] for o in outcomes) == ["ok", "refused"], outcomes
    refused = next(o for o in outcomes if o[0] == "refused")
    assert "refund" in refused[1].lower()
    with app.app_context():
        rows = db.session.scalars(select(Refund)).all()
        assert [(r.amount_cents, r.status) for r in rows] == [(12_000, "succeeded")]
        payment = _payment(s)
        assert (payment.refunded_cents, payment.status) == (12_000, "refunded")
        invoice = db.session.get(Invoice, s.invoice_id)  # refunded once, and not owed again
        assert (invoice.refunded_cents, invoice.balance_cents, invoice.shown_status) == (12_000, 0, "refunded")
    assert [r["amount"] for r in _stripe_refunds(stripe_sandbox, s.pi)] == [12_000]


@pytest.mark.parametrize("amount", [12_000, 8_000], ids=["full", "more_than_half"])
def test_the_same_refund_form_submitted_twice_is_one_refund(app, stripe_sandbox, smtp, amount):
    """The resubmitted form gets its refund back, not "fully refunded" / "at most … can still be refunded"."""
    with app.app_context():
        s = _card_payment(12_000)
        token = charges.new_token()

        first = refunds.refund(_payment(s), amount, "Cancelled job", _staff(s), token)
        db.session.expire_all()
        again = refunds.refund(_payment(s), amount, "Cancelled job", _staff(s), token)  # double click / resend

        assert again.id == first.id and again.status == "succeeded"
        assert _refund_count() == 1
        assert _payment(s).refunded_cents == amount
        mailer.deliver_pending()
    assert [r["amount"] for r in _stripe_refunds(stripe_sandbox, s.pi)] == [amount]
    assert len([m for m in smtp.to(s.email) if "Refund" in m["Subject"]]) == 1


# --- 4. Stripe reports the refund failed (R-4) ------------------------------------------------------------

def test_a_failed_refund_becomes_an_adjustment_and_restores_the_balance(app, stripe_sandbox):
    with app.app_context():
        s = _card_payment(12_000)
        row = refunds.refund(_payment(s), 5_000, "Goodwill", _staff(s), charges.new_token())
        assert row.status == "succeeded"
        invoice = db.session.get(Invoice, s.invoice_id)  # given back, not owed again
        assert (invoice.paid_cents, invoice.refunded_cents, invoice.balance_cents) == (12_000, 5_000, 0)
        assert invoice.shown_status == "partially_refunded"
        assert (_payment(s).refunded_cents, _payment(s).status) == (5_000, "partially_refunded")

        assert refunds.fail(db.session.get(Refund, row.id), "closed card") is True
        db.session.commit()
        db.session.expire_all()

        row = db.session.get(Refund, row.id)
        assert (row.status, row.failure_reason) == ("failed", "closed card")
        adjustments = db.session.scalars(select(Adjustment)).all()
        assert [(a.amount_cents, a.refund_id, a.payment_id, a.invoice_id, a.customer_id) for a in adjustments] == [
            (5_000, row.id, s.payment_id, s.invoice_id, s.customer_id)]
        assert "closed card" in adjustments[0].reason
        invoice = db.session.get(Invoice, s.invoice_id)  # the money stayed; the invoice stays paid
        assert (invoice.paid_cents, invoice.refunded_cents, invoice.status) == (12_000, 0, "paid")
        assert invoice.shown_status == "paid"
        assert (_payment(s).refunded_cents, _payment(s).status) == (0, "succeeded")

        # Stripe telling us again (a repeated webhook) adds nothing.
        assert refunds.fail(db.session.get(Refund, row.id), "closed card") is False
        db.session.commit()
        assert db.session.scalar(select(func.count()).select_from(Adjustment)) == 1
        assert db.session.get(Invoice, s.invoice_id).paid_cents == 12_000
        # The money is refundable again.
        assert refunds.refundable_cents(_payment(s)) == 12_000


# --- 5. cash and plan payments (R-5) ----------------------------------------------------------------------

def test_a_cash_payment_is_refunded_by_hand(app, stripe_sandbox, smtp):
    with app.app_context():
        staff = make_staff("admin")
        c = make_customer("Cy", "Ro", email="cy@example.com")
        invoice = make_invoice(c, 10_000)
        payment = charges.record_manual(db.session.get(Customer, c.id), method="cash", amount_cents=10_000,
                                        reference=None, actor=db.session.get(StaffUser, staff.id),
                                        invoice=db.session.get(Invoice, invoice.id))

        row = refunds.refund(payment, 4_000, "Overcharged", db.session.get(StaffUser, staff.id),
                             charges.new_token())

        assert (row.method, row.status, row.amount_cents, row.stripe_refund_id) == ("cash", "succeeded", 4_000, None)
        payment = db.session.get(Payment, payment.id)
        assert (payment.refunded_cents, payment.status) == (4_000, "partially_refunded")
        inv = db.session.get(Invoice, invoice.id)  # given back, not owed again
        assert (inv.paid_cents, inv.refunded_cents, inv.balance_cents) == (10_000, 4_000, 0)
        mailer.deliver_pending()
    assert _stripe_refunds(stripe_sandbox) == []  # no Stripe call
    assert len([m for m in smtp.to("cy@example.com") if "Refund" in m["Subject"]]) == 1


def test_a_cash_payment_of_a_plan_cannot_be_refunded_through_the_plan(app, stripe_sandbox):
    with app.app_context():
        staff = make_staff("admin")
        c = make_customer("Di", "Vo", email="di@example.com")
        plan = CustomerPlan(customer_id=c.id, name="Comfort Club", status="active", offered_frequencies="monthly",
                            frequency="monthly", price_cents=3_000, payment_method="cash",
                            start_date=date(2026, 3, 1), next_billing_date=date(2026, 4, 1))
        db.session.add(plan)
        db.session.flush()
        plan_payment = PlanPayment(plan_id=plan.id, due_date=date(2026, 3, 1), amount_cents=3_000, status="paid",
                                   method="cash")
        db.session.add(plan_payment)
        db.session.commit()
        payment = charges.record_manual(db.session.get(Customer, c.id), method="cash", amount_cents=3_000,
                                        reference=None, actor=db.session.get(StaffUser, staff.id))
        charges.add_allocation(payment, 3_000, plan_payment_id=plan_payment.id)
        plan_payment.payment_id = payment.id
        db.session.commit()
        payment = db.session.get(Payment, payment.id)

        reason = refunds.why_not(payment)
        assert reason and "cannot be refunded through the plan" in reason and "Cancel the plan" in reason
        with pytest.raises(ValidationError) as refused:
            refunds.refund(payment, 3_000, "Moving away", db.session.get(StaffUser, staff.id), charges.new_token())
        db.session.rollback()

        assert "Cancel the plan" in refused.value.message
        assert _refund_count() == 0
        payment = db.session.get(Payment, payment.id)
        assert (payment.refunded_cents, payment.status) == (0, "succeeded")
        assert db.session.get(PlanPayment, plan_payment.id).status == "paid"
    assert _stripe_refunds(stripe_sandbox) == []
