"""PAY-8: POST /webhooks/stripe against the localstripe sandbox, signed the way Stripe signs.

Verified by signature (400 and nothing changes otherwise), stored by event id in the same transaction as
the effect, processed once (also when delivered twice at the same moment), and reconciling an attempt our
process did not record by re-fetching the PaymentIntent, so a late or out-of-order event cannot undo a
settled payment.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from types import SimpleNamespace

import stripe
from sqlalchemy import func, select

from portal import clock
from portal.extensions import db
from portal.models import ChargeAttempt, Invoice, Payment, ProcessedWebhookEvent
from portal.services.payments import gateway
from portal.services.platform import mailer
from tests.factories import make_card, make_customer, make_invoice, make_paid_invoice, make_unrecorded_charge
from tests.helpers import csrf_token_from

URL = "/webhooks/stripe"


# --- helpers -----------------------------------------------------------------------------------------

def _secret(app) -> str:
    with app.app_context():
        return gateway.webhook_secret()


def _event(event_type: str, object_id: str, obj: str = "payment_intent", event_id: str | None = None) -> str:
    return json.dumps({"id": event_id or f"evt_{secrets.token_hex(8)}", "object": "event", "type": event_type,
                       "created": int(time.time()), "data": {"object": {"id": object_id, "object": obj}}})


def _sign(payload: str, secret: str, t: int | None = None) -> str:
    t = int(time.time()) if t is None else t
    sig = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={sig}"


def _post(client, payload: str, signature: str | None):
    headers = {"Stripe-Signature": signature} if signature is not None else {}
    return client.post(URL, data=payload, headers=headers, content_type="application/json")


def _unrecorded_attempt(app, amount: int = 12_000, email: str = "ana@example.com") -> SimpleNamespace:
    """A pending attempt whose PaymentIntent succeeded at Stripe but whose outcome we never recorded
    (the process died between Stripe's answer and our commit)."""
    with app.app_context():
        c = make_customer("Ana", "Diaz", email=email)
        invoice = make_invoice(c, amount)
        card = make_card(c.id)
        attempt, intent = make_unrecorded_charge(c.id, invoice.id, card, amount, currency="usd",
                                                 initiated_by="customer", created_at=clock.now())
        assert intent.status == "succeeded"
        state = SimpleNamespace(attempt_id=attempt.id, invoice_id=invoice.id, customer_id=c.id, pi=intent.id,
                                email=email, amount=amount)
        db.session.remove()
    return state


def _state(app, s: SimpleNamespace) -> dict:
    with app.app_context():
        attempt = db.session.get(ChargeAttempt, s.attempt_id)
        invoice = db.session.get(Invoice, s.invoice_id)
        payments = db.session.scalars(select(Payment).where(Payment.customer_id == s.customer_id)).all()
        out = {
            "attempt": attempt.status,
            "attempt_pi": attempt.stripe_payment_intent_id,
            "payments": [(p.amount_cents, p.status, p.charge_attempt_id) for p in payments],
            "invoice": (invoice.status, invoice.paid_cents),
            "events": db.session.scalars(select(ProcessedWebhookEvent.stripe_event_id)).all(),
        }
        db.session.remove()
    return out


def _receipts(smtp, address: str) -> list:
    return [m for m in smtp.to(address) if "Payment receipt" in m["Subject"]]


def _flush_outbox(app) -> None:
    """Send anything still queued, so a counted email cannot hide in the outbox."""
    with app.app_context():
        mailer.deliver_pending()
        db.session.remove()


# --- 1. signatures -----------------------------------------------------------------------------------

def test_unverified_deliveries_are_rejected_and_change_nothing(app, client, stripe_sandbox, smtp):
    s = _unrecorded_attempt(app)
    secret = _secret(app)
    payload = _event("payment_intent.succeeded", s.pi)
    now = int(time.time())
    wrong_secret = "whsec_" + secrets.token_hex(24)
    tampered = payload.replace('"payment_intent.succeeded"', '"payment_intent.succeeded" ')
    attempts = {
        "garbage signature": _sign(payload, secret).split(",v1=")[0] + ",v1=" + "0" * 64,
        "wrong secret": _sign(payload, wrong_secret),
        "stale timestamp": _sign(payload, secret, t=now - 600),
        "no header": None,
        "unparseable header": "not-a-signature",
    }
    for why, header in attempts.items():
        r = _post(client, payload, header)
        assert r.status_code == 400, (why, r.status_code, r.get_data(True))
    r = _post(client, tampered, _sign(payload, secret))  # body changed after signing
    assert r.status_code == 400

    _flush_outbox(app)
    st = _state(app, s)
    assert st["events"] == []
    assert st["attempt"] == "pending" and st["attempt_pi"] is None
    assert st["payments"] == []
    assert st["invoice"] == ("open", 0)
    assert _receipts(smtp, s.email) == []

    # The same event correctly signed and fresh is accepted: the refusals above were the signature's doing.
    assert _post(client, payload, _sign(payload, secret)).status_code == 200
    assert _state(app, s)["attempt"] == "succeeded"


# --- 2. reconciling an unrecorded attempt ------------------------------------------------------------

def test_payment_intent_succeeded_settles_an_attempt_we_did_not_record(app, client, stripe_sandbox, smtp):
    s = _unrecorded_attempt(app, amount=12_000)
    payload = _event("payment_intent.succeeded", s.pi, event_id="evt_settles_unrecorded")

    r = _post(client, payload, _sign(payload, _secret(app)))

    assert r.status_code == 200 and r.get_json() == {"result": "processed"}
    st = _state(app, s)
    assert st["attempt"] == "succeeded" and st["attempt_pi"] == s.pi  # found by metadata attempt_key
    assert st["payments"] == [(12_000, "succeeded", s.attempt_id)]
    assert st["invoice"] == ("paid", 12_000)
    assert st["events"] == ["evt_settles_unrecorded"]
    receipts = _receipts(smtp, s.email)  # sent after the response, through SMTP
    assert len(receipts) == 1
    assert "120.00" in smtp.text(receipts[0])


# --- 3. the same event twice ---------------------------------------------------------------------------

def test_the_same_event_delivered_twice_is_processed_once(app, client, stripe_sandbox, smtp):
    s = _unrecorded_attempt(app)
    payload = _event("payment_intent.succeeded", s.pi, event_id="evt_delivered_twice")
    secret = _secret(app)

    first = _post(client, payload, _sign(payload, secret))
    second = _post(client, payload, _sign(payload, secret))  # Stripe retries with a fresh signature

    assert first.status_code == 200 and first.get_json() == {"result": "processed"}
    assert second.status_code == 200 and second.get_json() == {"result": "duplicate"}
    _flush_outbox(app)
    st = _state(app, s)
    assert len(st["payments"]) == 1
    assert st["invoice"] == ("paid", s.amount)
    assert st["events"] == ["evt_delivered_twice"]
    assert len(_receipts(smtp, s.email)) == 1


# --- 4. the same event twice at the same moment ------------------------------------------------------

def test_the_same_event_delivered_concurrently_is_processed_once(app, stripe_sandbox, smtp):
    s = _unrecorded_attempt(app)
    payload = _event("payment_intent.succeeded", s.pi, event_id="evt_concurrent")
    signature = _sign(payload, _secret(app))
    barrier = threading.Barrier(2)
    answers: list = []
    errors: list = []

    def deliver():
        try:
            c = app.test_client()
            barrier.wait(timeout=10)
            r = _post(c, payload, signature)
            answers.append((r.status_code, r.get_json()))
        except Exception as exc:  # noqa: BLE001 — reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    assert errors == []
    assert [code for code, _ in answers] == [200, 200]
    assert sorted(body["result"] for _, body in answers) == ["duplicate", "processed"]
    _flush_outbox(app)
    st = _state(app, s)
    assert st["attempt"] == "succeeded"
    assert len(st["payments"]) == 1
    assert st["invoice"] == ("paid", s.amount)
    assert st["events"] == ["evt_concurrent"]
    assert len(_receipts(smtp, s.email)) == 1


# --- stored in the same transaction as the effect -------------------------------------------------------

def test_when_stripe_cannot_be_reached_the_event_is_not_stored_and_a_redelivery_settles(app, client, stripe_sandbox,
                                                                                        smtp, monkeypatch):
    s = _unrecorded_attempt(app)
    payload = _event("payment_intent.succeeded", s.pi, event_id="evt_retry_later")
    secret = _secret(app)
    real_retrieve = gateway.retrieve_payment_intent

    def unreachable(payment_intent_id):
        raise stripe.APIConnectionError("connection refused")

    monkeypatch.setattr(gateway, "retrieve_payment_intent", unreachable)
    r = _post(client, payload, _sign(payload, secret))

    assert r.status_code == 503  # Stripe delivers it again later
    st = _state(app, s)
    assert st["events"] == [] and st["attempt"] == "pending" and st["payments"] == []

    monkeypatch.setattr(gateway, "retrieve_payment_intent", real_retrieve)
    r = _post(client, payload, _sign(payload, secret))

    assert r.status_code == 200 and r.get_json() == {"result": "processed"}
    st = _state(app, s)
    assert st["events"] == ["evt_retry_later"] and st["attempt"] == "succeeded" and len(st["payments"]) == 1
    assert len(_receipts(smtp, s.email)) == 1


# --- 5. out of order -----------------------------------------------------------------------------------

def test_a_late_payment_failed_event_cannot_undo_a_settled_payment(app, client, stripe_sandbox, smtp):
    s = _unrecorded_attempt(app)
    secret = _secret(app)
    succeeded = _event("payment_intent.succeeded", s.pi, event_id="evt_ok")
    assert _post(client, succeeded, _sign(succeeded, secret)).get_json() == {"result": "processed"}
    before = _state(app, s)
    assert before["attempt"] == "succeeded" and len(before["payments"]) == 1

    late = _event("payment_intent.payment_failed", s.pi, event_id="evt_late_failure")
    r = _post(client, late, _sign(late, secret))

    assert r.status_code == 200 and r.get_json() == {"result": "processed"}
    _flush_outbox(app)
    after = _state(app, s)
    assert after["attempt"] == "succeeded"
    assert after["payments"] == before["payments"] == [(s.amount, "succeeded", s.attempt_id)]
    assert after["invoice"] == ("paid", s.amount)
    assert sorted(after["events"]) == ["evt_late_failure", "evt_ok"]
    assert not [m for m in smtp.to(s.email) if "did not go through" in m["Subject"]]
    assert len(_receipts(smtp, s.email)) == 1


def test_a_late_payment_failed_event_after_a_charge_recorded_by_the_request(app, client, stripe_sandbox, smtp):
    """The usual order: the staff charge recorded success itself; Stripe's failure event for the same
    PaymentIntent (out of order, e.g. an earlier attempt's) changes nothing."""
    with app.app_context():
        c = make_customer("Bo", "Ng", email="bo@example.com")
        invoice, _, ok = make_paid_invoice(c, 5_000, initiated_by="system")
        s = SimpleNamespace(attempt_id=ok.attempt.id, invoice_id=invoice.id, customer_id=c.id,
                            pi=ok.attempt.stripe_payment_intent_id, email="bo@example.com", amount=5_000)
        db.session.remove()
    late = _event("payment_intent.payment_failed", s.pi)

    r = _post(client, late, _sign(late, _secret(app)))

    assert r.status_code == 200
    st = _state(app, s)
    assert st["attempt"] == "succeeded"
    assert st["payments"] == [(5_000, "succeeded", s.attempt_id)]
    assert st["invoice"] == ("paid", 5_000)
    assert len(st["events"]) == 1


# --- 6. CSRF -------------------------------------------------------------------------------------------

def test_the_endpoint_is_exempt_from_csrf_but_not_from_the_signature(app, client, stripe_sandbox, smtp):
    # CSRF protection is on in this app: a form post without its token is refused …
    assert client.post("/admin/login", data={"email": "x@example.com", "password": "x"}).status_code == 400
    assert csrf_token_from(client.get("/admin/login").get_data(True))  # … and forms carry one
    s = _unrecorded_attempt(app)
    payload = _event("payment_intent.succeeded", s.pi)

    # … while Stripe's POST, which has no CSRF token, passes on its signature alone,
    assert _post(client, payload, None).status_code == 400
    r = _post(client, payload, _sign(payload, _secret(app)))

    assert r.status_code == 200 and r.get_json() == {"result": "processed"}
    st = _state(app, s)
    assert st["attempt"] == "succeeded" and len(st["payments"]) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ProcessedWebhookEvent)) == 1
