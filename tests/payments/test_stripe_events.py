"""Issue 14 (and issue 18, point 5): the webhook events real Stripe sends and the sandbox never does, and signed
bodies that are not events.

Each payload is shaped like Stripe's documented event (an `event` whose `data.object` is a Dispute, a
PaymentMethod or a Charge with the documented fields) and signed the way Stripe signs (`t=…,v1=HMAC-SHA256`).
The card payments, cards and refunds behind them are real ones in the sandbox (localstripe).
"""
from __future__ import annotations

import json
import secrets
import time

import requests
from sqlalchemy import select

from portal.extensions import db
from portal.models import Adjustment, Card, Dispute, Invoice, Payment, ProcessedWebhookEvent, Refund
from portal.services.payments import gateway
from portal.services.platform import mailer
from tests.factories import make_customer, make_paid_invoice, make_staff
from tests.payments.test_webhooks import _post, _secret, _sign


def _stripe_event(event_type: str, obj: dict, event_id: str | None = None) -> str:
    return json.dumps({"id": event_id or f"evt_{secrets.token_hex(12)}", "object": "event", "api_version": "2024-06-20",
                       "created": int(time.time()), "livemode": False, "pending_webhooks": 1,
                       "request": {"id": None, "idempotency_key": None}, "type": event_type,
                       "data": {"object": obj}})


def _send(app, client, event_type: str, obj: dict, event_id: str | None = None):
    payload = _stripe_event(event_type, obj, event_id)
    return _post(client, payload, _sign(payload, _secret(app)))


def _paid_card_payment(app, amount: int = 18_000):
    """A customer with staff to tell, and an invoice paid by a real sandbox card charge."""
    with app.app_context():
        owner = make_staff("admin", email="owner@brightair.test")
        customer = make_customer("Nina", "Park", email="nina@example.com")
        invoice, card, outcome = make_paid_invoice(customer, amount)
        payment = db.session.scalars(select(Payment).where(Payment.charge_attempt_id == outcome.attempt.id)).one()
        ids = {"customer": customer.id, "invoice": invoice.id, "card": card.id, "payment": payment.id,
               "pi": outcome.attempt.stripe_payment_intent_id, "pm": card.stripe_payment_method_id,
               "charge": outcome.attempt.stripe_charge_id, "owner": owner}
        mailer.deliver_pending()
        db.session.remove()
    return ids


def _dispute(ids: dict, status: str, amount: int, dispute_id: str = "du_1MtJUT2eZvKYlo2CNaw2HvEv") -> dict:
    """A Dispute object as Stripe documents it."""
    return {"id": dispute_id, "object": "dispute", "amount": amount, "balance_transactions": [],
            "charge": ids["charge"] or "ch_unknown", "created": int(time.time()), "currency": "usd",
            "evidence_details": {"due_by": int(time.time()) + 7 * 86400, "has_evidence": False, "past_due": False,
                                 "submission_count": 0},
            "is_charge_refundable": False, "livemode": False, "metadata": {}, "payment_intent": ids["pi"],
            "reason": "product_not_received", "status": status}


def test_a_dispute_shows_on_the_payment_emails_staff_and_a_lost_one_is_an_adjustment(app, client, stripe_sandbox,
                                                                                    smtp, login_staff):
    ids = _paid_card_payment(app)
    smtp.clear()

    r = _send(app, client, "charge.dispute.created", _dispute(ids, "needs_response", 18_000), "evt_dispute_open")
    assert r.status_code == 200 and r.get_json() == {"result": "processed"}
    again = _send(app, client, "charge.dispute.created", _dispute(ids, "needs_response", 18_000), "evt_dispute_open")
    assert again.get_json() == {"result": "duplicate"}

    opened = [m for m in smtp.to("owner@brightair.test") if "disputed" in m["Subject"]]
    assert len(opened) == 1 and "Nina Park" in opened[0]["Subject"]
    assert "$180.00" in smtp.text(opened[0]) and "product not received" in smtp.text(opened[0])
    login_staff(ids["owner"])
    page = client.get(f"/admin/payments/{ids['payment']}").get_data(True)
    assert 'data-dispute="needs_response"' in page and "Disputed" in page
    dashboard = client.get("/admin/").get_data(True)
    assert 'id="disputes"' in dashboard and f"P-{ids['payment']}</a> Nina Park · $180.00" in dashboard

    r = _send(app, client, "charge.dispute.closed", _dispute(ids, "lost", 18_000), "evt_dispute_lost")
    assert r.status_code == 200
    _send(app, client, "charge.dispute.created", _dispute(ids, "needs_response", 18_000))  # late: changes nothing
    with app.app_context():
        rows = db.session.scalars(select(Dispute)).all()
        assert [(d.status, d.amount_cents, d.closed_at is not None) for d in rows] == [("lost", 18_000, True)]
        adjustments = db.session.scalars(select(Adjustment).where(Adjustment.payment_id == ids["payment"])).all()
        assert [a.amount_cents for a in adjustments] == [-18_000]
        assert "Dispute lost" in adjustments[0].reason
    page = client.get(f"/admin/payments/{ids['payment']}").get_data(True)
    assert 'data-dispute="lost"' in page and "Dispute lost" in page and "-$180.00" in page
    assert 'id="disputes"' not in client.get("/admin/").get_data(True)
    closed = [m for m in smtp.to("owner@brightair.test") if "dispute lost" in m["Subject"]]
    assert len(closed) == 1 and "recorded as an adjustment" in smtp.text(closed[0])


def test_a_card_updated_by_the_network_refreshes_the_card_and_its_expiry_warning(app, client, stripe_sandbox):
    ids = _paid_card_payment(app)
    with app.app_context():
        card = db.session.get(Card, ids["card"])
        card.expiry_warning_sent_at = card.created_at  # D-7 was sent for the old expiry
        db.session.commit()
        assert (card.last4, card.exp_month, card.exp_year) == ("4242", 12, 2030)
        # The network reissues the card: Stripe updates the PaymentMethod in place (same id, new expiry and last 4).
        base = gateway.sandbox_url()
        db.session.remove()
    pm = requests.get(f"{base}/v1/payment_methods/{ids['pm']}", headers={"Authorization": "Bearer sk_test_x"},
                      timeout=5).json()
    new_card = {**pm["card"], "exp_month": 3, "exp_year": 2033, "last4": "1881", "brand": "visa"}
    r = requests.post(f"{base}/v1/payment_methods/{ids['pm']}", headers={"Authorization": "Bearer sk_test_x"},
                      json={"card": new_card}, timeout=5)
    assert r.status_code == 200, r.text
    pm["card"] = new_card

    r = _send(app, client, "payment_method.automatically_updated", pm)

    assert r.status_code == 200 and r.get_json() == {"result": "processed"}
    with app.app_context():
        card = db.session.get(Card, ids["card"])
        assert (card.brand, card.last4, card.exp_month, card.exp_year) == ("visa", "1881", 3, 2033)
        assert card.expiry_warning_sent_at is None  # the new expiry gets its own warning
    # payment_method.updated (the customer changed it at their bank) is handled the same way
    r = _send(app, client, "payment_method.updated", pm)
    assert r.status_code == 200


def test_a_refund_made_in_the_stripe_dashboard_is_recorded_once(app, client, stripe_sandbox, smtp):
    ids = _paid_card_payment(app, 18_000)
    smtp.clear()
    with app.app_context():
        # Someone refunds 50.00 in the Stripe dashboard: no Refund row of ours, no metadata.
        outside = gateway.client().v1.refunds.create(params={"payment_intent": ids["pi"], "amount": 5_000})
        db.session.remove()
    charge = {"id": ids["charge"] or "ch_3MmlLrLkdIwHu7ix0snN0B15", "object": "charge", "amount": 18_000,
              "amount_captured": 18_000, "amount_refunded": 5_000, "captured": True, "currency": "usd",
              "paid": True, "payment_intent": ids["pi"], "payment_method": ids["pm"], "refunded": False,
              "status": "succeeded", "metadata": {}}

    first = _send(app, client, "charge.refunded", charge)
    second = _send(app, client, "charge.refunded", charge)  # another delivery of the news (a new event id)

    assert first.status_code == second.status_code == 200
    with app.app_context():
        rows = db.session.scalars(select(Refund)).all()
        assert [(r.amount_cents, r.status, r.stripe_refund_id) for r in rows] == [(5_000, "succeeded", outside.id)]
        payment = db.session.get(Payment, ids["payment"])
        assert (payment.refunded_cents, payment.status) == (5_000, "partially_refunded")
        invoice = db.session.get(Invoice, ids["invoice"])
        assert invoice.status == "paid"  # money given back does not reopen the debt
        assert len(db.session.scalars(select(ProcessedWebhookEvent)).all()) == 2
        mailer.deliver_pending()
    receipts = [m for m in smtp.to("nina@example.com") if "Refund" in m["Subject"]]
    assert len(receipts) == 1 and "$50.00" in smtp.text(receipts[0])


def test_signed_bodies_that_are_not_events_get_400_and_a_huge_body_413(app, client, stripe_sandbox):
    secret = _secret(app)
    no_type = json.dumps({"id": "evt_no_type", "object": "event", "data": {"object": {"id": "pi_1"}}})
    no_object = json.dumps({"id": "evt_no_obj", "object": "event", "type": "payment_intent.succeeded", "data": {}})
    dispute_without_fields = _stripe_event("charge.dispute.closed", {"id": "du_x", "object": "dispute",
                                                                      "payment_intent": {"nested": ["odd"]}})
    bodies = {
        "no type": no_type,
        "no data.object": no_object,
        "a JSON list": json.dumps([{"id": "evt_1", "type": "payment_intent.succeeded"}]),
        "a JSON string": json.dumps("evt_1"),
        "not JSON": "id=evt_1&type=charge.refunded",
    }
    for why, body in bodies.items():
        r = _post(client, body, _sign(body, secret))
        assert r.status_code == 400, (why, r.status_code, r.get_data(True)[:300])
    odd = _post(client, dispute_without_fields, _sign(dispute_without_fields, secret))
    assert odd.status_code == 200, odd.status_code  # an event about a payment that is not ours: nothing to do

    huge = json.dumps({"id": "evt_huge", "object": "event", "type": "charge.refunded",
                       "data": {"object": {"id": "ch_1", "padding": "x" * (2 * 1024 * 1024)}}})
    r = _post(client, huge, _sign(huge, secret))
    assert r.status_code == 413
    with app.app_context():
        stored = db.session.scalars(select(ProcessedWebhookEvent.event_type)).all()
        assert stored == ["charge.dispute.closed"]  # only the real event; the refused bodies left nothing
        assert db.session.scalars(select(Dispute)).all() == []


# --- flask stripe-check ------------------------------------------------------------------------------------------

def test_stripe_check_reports_the_account_and_what_the_webhook_endpoint_lacks(app, runner, httpserver, monkeypatch):
    """A local HTTP server answers as Stripe documents GET /v1/account and GET /v1/webhook_endpoints."""
    for key, value in {"STRIPE_SECRET_KEY": "sk_live_51Hx", "STRIPE_PUBLISHABLE_KEY": "pk_live_51Hx",
                       "STRIPE_WEBHOOK_SECRET": "whsec_abc", "STRIPE_API_BASE": httpserver.url_for("").rstrip("/"),
                       "STRIPE_MAX_NETWORK_RETRIES": 0, "BASE_URL": "https://portal.brightair.test"}.items():
        monkeypatch.setitem(app.config, key, value)
    httpserver.expect_request("/v1/account").respond_with_json({
        "id": "acct_1Nv0FGQ9RKHgCVdK", "object": "account", "email": "office@brightair.test",
        "business_profile": {"name": "Bright Air LLC"}, "settings": {"dashboard": {"display_name": "Bright Air"}},
        "charges_enabled": True})
    endpoint = {"id": "we_1Mr5jULkdIwHu7ix1ibLTM0x", "object": "webhook_endpoint", "api_version": None,
                "application": None, "created": 1680122196, "description": None,
                "enabled_events": ["payment_intent.succeeded", "payment_intent.payment_failed", "charge.refunded"],
                "livemode": True, "metadata": {}, "status": "enabled",
                "url": "https://portal.brightair.test/webhooks/stripe"}
    httpserver.expect_request("/v1/webhook_endpoints").respond_with_json(
        {"object": "list", "url": "/v1/webhook_endpoints", "has_more": False, "data": [endpoint]})

    result = runner.invoke(args=["stripe-check"])

    assert result.exit_code == 1, result.output
    assert "ok       Stripe account: Bright Air (acct_1Nv0FGQ9RKHgCVdK), live mode" in result.output
    [missing] = [line for line in result.output.splitlines() if line.startswith("MISSING")]
    assert "does not send: payment_intent.canceled, charge.refund.updated" in missing
    assert "charge.dispute.created" in missing and "payment_method.automatically_updated" in missing

    httpserver.clear()
    httpserver.expect_request("/v1/account").respond_with_json({"id": "acct_1", "object": "account",
                                                                 "settings": {"dashboard": {"display_name": "Bright Air"}}})
    httpserver.expect_request("/v1/webhook_endpoints").respond_with_json(
        {"object": "list", "url": "/v1/webhook_endpoints", "has_more": False,
         "data": [{**endpoint, "enabled_events": ["*"]}]})
    result = runner.invoke(args=["stripe-check"])
    assert result.exit_code == 0, result.output
    assert "sends every event the app handles" in result.output and "Stripe is ready." in result.output

    monkeypatch.setitem(app.config, "STRIPE_SECRET_KEY", None)
    result = runner.invoke(args=["stripe-check"])
    assert result.exit_code == 1 and "MISSING  STRIPE_SECRET_KEY is not set" in result.output
