"""PAY-8 end to end: the sandbox is registered to call our endpoint, and its signed events settle an
attempt our process never recorded."""
import time

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import ChargeAttempt, Customer, Invoice, Payment, ProcessedWebhookEvent
from portal.services.payments import charges
from portal.services.payments import gateway
from tests.factories import make_card, make_customer, make_invoice


@pytest.fixture
def sandbox_webhooks(app, live_server, stripe_sandbox):
    with app.app_context():
        gateway.register_sandbox_webhook(f"{live_server}/webhooks/stripe", gateway.webhook_secret())
    yield
    with app.app_context():  # point it nowhere so later tests get no stray events
        gateway.register_sandbox_webhook("http://127.0.0.1:9/nowhere", "whsec_unused")


def test_sandbox_event_settles_an_unrecorded_charge(app, sandbox_webhooks, smtp):
    with app.app_context():
        c = make_customer("Ana", "Diaz", email="ana@example.com")
        invoice = make_invoice(c, 7_500)
        card = make_card(c.id)
        customer = db.session.get(Customer, c.id)
        attempt = ChargeAttempt(idempotency_key="charge_" + charges.new_token(), customer_id=c.id, card_id=card.id,
                                amount_cents=7_500, currency="USD", status="pending", purpose="invoice",
                                off_session=True, invoice_id=invoice.id, initiated_by="system")
        db.session.add(attempt)
        db.session.commit()
        # Stripe charged, but our process died before writing down the answer:
        gateway.create_payment_intent(amount=7_500, currency="USD", stripe_customer_id=customer.stripe_customer_id,
                                      payment_method_id=card.stripe_payment_method_id, off_session=True,
                                      metadata={"attempt_key": attempt.idempotency_key},
                                      idempotency_key=attempt.idempotency_key)
        attempt_id = attempt.id
    deadline = time.monotonic() + 10
    status = "pending"
    while time.monotonic() < deadline and status == "pending":
        time.sleep(0.2)
        with app.app_context():
            status = db.session.get(ChargeAttempt, attempt_id).status
    with app.app_context():
        assert status == "succeeded"
        assert db.session.scalar(select(func.count()).select_from(Payment)) == 1
        assert db.session.get(Invoice, invoice.id).status == "paid"
        assert db.session.scalar(select(func.count()).select_from(ProcessedWebhookEvent)) >= 1
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not smtp.to("ana@example.com"):
        time.sleep(0.1)
    assert [m["Subject"] for m in smtp.to("ana@example.com")] == ["Payment receipt from Bright Air"]
