"""PAY-3, W-1, R-1 against the localstripe sandbox: what we store matches Stripe's objects."""
import requests
from sqlalchemy import select

from portal.extensions import db
from portal.models import ActivityEvent, Card, ChargeAttempt, Customer, Invoice, Payment, Refund
from portal.services.payments import cards, charges, refunds
from portal.services.platform import mailer
from tests.factories import make_card, make_customer, make_invoice, make_staff
from tests.helpers import sandbox_intents


def _sandbox(stripe_sandbox, path):
    return requests.get(stripe_sandbox["url"] + path, headers={"Authorization": "Bearer sk_test_sandbox"},
                        timeout=5).json()


def test_save_charge_decline_and_refund_match_the_sandbox(app, stripe_sandbox, smtp):
    with app.app_context():
        staff = make_staff("admin")
        c = make_customer("Ana", "Diaz", email="ana@example.com")
        invoice = make_invoice(c, 20_000)
        good = make_card(c.id, "4242424242424242")
        assert good.is_default and good.last4 == "4242" and good.brand == "visa" and good.postal_code == "90210"
        bad = make_card(c.id, "4000000000000341")
        assert not bad.is_default  # the first card stays the default (W-1)
        customer = db.session.get(Customer, c.id)
        assert customer.stripe_customer_id  # created lazily, kept

        declined = charges.charge_card(customer, db.session.get(Card, bad.id), 5_000, token=charges.new_token(),
                                       invoice=db.session.get(Invoice, invoice.id), off_session=True,
                                       initiated_by="staff", actor=staff)
        assert declined.attempt.status == "failed" and declined.attempt.decline_code == "card_declined"
        assert "declined" in declined.explanation.reason

        ok = charges.charge_card(customer, db.session.get(Card, good.id), 12_000, token=charges.new_token(),
                                 invoice=db.session.get(Invoice, invoice.id), off_session=True,
                                 initiated_by="staff", actor=staff)
        assert ok.attempt.status == "succeeded"
        payment = ok.payment
        assert (payment.amount_cents, payment.fee_cents, payment.net_cents) == (12_000, 384, 11_616)  # 2.95 % + 0.30
        inv = db.session.get(Invoice, invoice.id)
        assert (inv.paid_cents, inv.balance_cents, inv.status) == (12_000, 8_000, "partially_paid")
        pi_id = ok.attempt.stripe_payment_intent_id

        r1 = refunds.refund(payment, 2_000, "Goodwill", staff, charges.new_token())
        assert r1.status == "succeeded" and r1.stripe_refund_id
        r2 = refunds.refund(db.session.get(Payment, payment.id), 10_000, "Job cancelled", staff, charges.new_token())
        assert r2.status == "succeeded"
        payment = db.session.get(Payment, payment.id)
        assert (payment.refunded_cents, payment.status) == (12_000, "refunded")
        invoice_row = db.session.get(Invoice, invoice.id)  # the refund is not owed again; the rest still is
        assert (invoice_row.paid_cents, invoice_row.refunded_cents, invoice_row.balance_cents) == (12_000, 12_000,
                                                                                                  8_000)
        assert invoice_row.shown_status == "partially_paid"
        attempts = [(a.status, a.idempotency_key) for a in
                    db.session.scalars(select(ChargeAttempt).order_by(ChargeAttempt.id))]
        our_refunds = sorted(r.amount_cents for r in db.session.scalars(select(Refund)))
        kinds = [e.event_type for e in db.session.scalars(select(ActivityEvent).where(ActivityEvent.customer_id == c.id))]
        mailer.deliver_pending()

    pi = _sandbox(stripe_sandbox, f"/v1/payment_intents/{pi_id}")
    assert pi["status"] == "succeeded" and pi["amount"] == 12_000 and pi["metadata"]["attempt_key"] == attempts[1][1]
    stripe_refunds = _sandbox(stripe_sandbox, f"/v1/refunds?payment_intent={pi_id}")["data"]
    assert sorted(r["amount"] for r in stripe_refunds) == our_refunds == [2_000, 10_000]
    assert [a[0] for a in attempts] == ["failed", "succeeded"]
    assert kinds.count("failure") == 1 and kinds.count("payment") == 1 and "refund" in kinds
    # the off-session decline emailed the customer the reason; the payment and refunds sent receipts
    subjects = [m["Subject"] for m in smtp.to("ana@example.com")]
    assert any("did not go through" in s for s in subjects)
    assert sum("Payment receipt" in s for s in subjects) == 1
    assert sum("Refund" in s for s in subjects) == 2
    assert "The bank declined the card" in smtp.text([m for m in smtp.to("ana@example.com")
                                                       if "did not go through" in m["Subject"]][0])


def test_the_same_form_submitted_twice_is_one_charge(app, stripe_sandbox):
    with app.app_context():
        c = make_customer()
        invoice = make_invoice(c, 9_000)
        card = make_card(c.id)
        customer = db.session.get(Customer, c.id)
        token = charges.new_token()
        first = charges.charge_card(customer, card, 3_000, token=token, invoice=db.session.get(Invoice, invoice.id),
                                    off_session=False, initiated_by="customer")
        again = charges.charge_card(customer, card, 3_000, token=token, invoice=db.session.get(Invoice, invoice.id),
                                    off_session=False, initiated_by="customer")
        assert again.duplicate and again.attempt.id == first.attempt.id
        assert db.session.scalar(select(db.func.count()).select_from(Payment)) == 1
        assert db.session.get(Invoice, invoice.id).paid_cents == 3_000
        pi_count = len(sandbox_intents(stripe_sandbox))
    assert pi_count == 1


def test_removing_cards_and_the_w3_guard(app, stripe_sandbox):
    with app.app_context():
        staff = make_staff("office")
        c = make_customer(autopay_enabled=True)
        first = make_card(c.id, "4242424242424242")
        second = make_card(c.id, "5555555555554444")
        customer = db.session.get(Customer, c.id)
        cards.set_default(customer, second.id)
        db.session.commit()
        assert cards.default_card(customer).id == second.id
        cards.remove(customer, second.id)  # another card remains: fine, and it becomes default
        db.session.commit()
        assert cards.default_card(customer).id == first.id
        try:
            cards.remove(customer, first.id)  # the only card and it backs AutoPay
        except Exception as exc:  # noqa: BLE001
            assert "contact us" in exc.message
        else:
            raise AssertionError("the only AutoPay card was removed from the portal")
        db.session.rollback()
        cards.remove(db.session.get(Customer, c.id), first.id, actor=staff, confirmed=True)
        db.session.commit()
        customer = db.session.get(Customer, c.id)
        assert customer.autopay_enabled is False and cards.active_cards(customer) == []
        pm = _sandbox(stripe_sandbox, f"/v1/payment_methods/{first.stripe_payment_method_id}")
    assert pm["customer"] is None  # detached at Stripe too
