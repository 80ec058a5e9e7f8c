"""Edge cases of the money path: a late success, cash during an unsettled charge, the card webhook racing a form."""
import hashlib
import hmac
import json
import time

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Card, ChargeAttempt, Customer, Invoice, Payment
from portal.services.errors import ValidationError
from portal.services.payments import cards, charges, gateway
from tests.factories import make_card, make_customer, make_invoice, make_staff, make_unrecorded_charge, sandbox_card


def _deliver(client, app, event_type, object_id):
    with app.app_context():
        secret = gateway.webhook_secret()
    t = int(time.time())
    payload = json.dumps({"id": f"evt_{object_id}_{event_type}", "object": "event", "type": event_type, "created": t,
                          "data": {"object": {"id": object_id, "object": event_type.split(".")[0]}}})
    sig = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return client.post("/webhooks/stripe", data=payload, headers={"Stripe-Signature": f"t={t},v1={sig}",
                                                                  "Content-Type": "application/json"})


def test_a_charge_recorded_as_failed_that_stripe_says_succeeded_is_recorded(app, client, stripe_sandbox):
    with app.app_context():
        c = make_customer()
        invoice = make_invoice(c, 4_000)
        card = make_card(c.id)
        _, pi = make_unrecorded_charge(c.id, invoice.id, card, 4_000, status="failed", decline_code="not_submitted",
                                       initiated_by="system")
    assert _deliver(client, app, "payment_intent.succeeded", pi.id).status_code == 200
    with app.app_context():
        assert db.session.scalars(select(ChargeAttempt)).one().status == "succeeded"
        assert db.session.scalar(select(func.count()).select_from(Payment)) == 1
        assert db.session.get(Invoice, invoice.id).status == "paid"


def test_cash_cannot_be_recorded_while_a_card_charge_is_unsettled(app, stripe_sandbox):
    with app.app_context():
        staff = make_staff("office")
        c = make_customer()
        invoice = make_invoice(c, 10_000)
        card = make_card(c.id)
        db.session.add(ChargeAttempt(idempotency_key="charge_" + charges.new_token(), customer_id=c.id,
                                     card_id=card.id, amount_cents=10_000, currency="USD", status="unknown",
                                     purpose="invoice", off_session=True, invoice_id=invoice.id,
                                     initiated_by="staff"))
        db.session.commit()
        try:
            charges.record_manual(db.session.get(Customer, c.id), method="cash", amount_cents=10_000, reference=None,
                                  actor=staff, invoice=db.session.get(Invoice, invoice.id))
        except ValidationError as exc:
            assert "still being confirmed" in exc.message
        else:
            raise AssertionError("cash was recorded over an unsettled card charge")
        db.session.rollback()
        assert db.session.scalar(select(func.count()).select_from(Payment)) == 0


def test_staff_card_details_apply_even_if_the_card_was_saved_first(app, stripe_sandbox):
    with app.app_context():
        staff = make_staff("office")
        c = make_customer()
        make_card(c.id)
        seti = sandbox_card(c.id, "5555555555554444", purpose="staff")
        customer = db.session.get(Customer, c.id)
        cards.save_from_setup_intent(customer, seti, added_by="customer")  # e.g. a webhook got there first
        db.session.commit()
        card = cards.save_from_setup_intent(customer, seti, added_by="staff", actor=staff, kind="hsa_fsa",
                                            nickname="Clinic HSA", make_default=True)
        db.session.commit()
        card = db.session.get(Card, card.id)
        assert (card.nickname, card.kind, card.is_default) == ("Clinic HSA", "hsa_fsa", True)
        assert db.session.scalar(select(func.count()).select_from(Card).where(Card.is_default.is_(True))) == 1
