"""PAY-8 end to end: the sandbox is registered to call our endpoint, and its signed events settle an
attempt our process never recorded."""
import time

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import ChargeAttempt, Invoice, Payment, ProcessedWebhookEvent
from portal.services.payments import gateway
from tests.factories import make_card, make_customer, make_invoice, make_unrecorded_charge
from tests.helpers import wait_for_email


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
        # Stripe charged, but our process died before writing down the answer:
        attempt, _ = make_unrecorded_charge(c.id, invoice.id, card, 7_500, initiated_by="system")
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
    wait_for_email(smtp, "ana@example.com", timeout=5)
    assert [m["Subject"] for m in smtp.to("ana@example.com")] == ["Payment receipt from Bright Air"]
