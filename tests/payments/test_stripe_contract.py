"""PAY-3, PAY-6, PAY-7 contract tests: our charging code against Stripe's documented HTTP answers.

A local HTTP server (pytest-httpserver) plays Stripe: the app runs in "real Stripe" mode (a secret key is set)
with STRIPE_API_BASE pointed at that server, so the official `stripe` library builds the real requests
and parses the real error bodies. The crash test uses the localstripe sandbox instead.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from sqlalchemy import func, select
from werkzeug.wrappers import Request, Response

from portal.extensions import db
from portal.models import (
    ActivityEvent,
    Card,
    ChargeAttempt,
    Customer,
    Invoice,
    Payment,
    PaymentAllocation,
    QueuedEmail,
    StaffUser,
)
from portal.services.errors import ServiceError
from portal.services.payments import charges, declines
from portal.services.platform import mailer, scheduler
from tests.factories import make_card, make_customer, make_invoice, make_staff

PI_PATH = "/v1/payment_intents"
SEARCH_PATH = "/v1/payment_intents/search"
STRIPE_CONFIG = ("STRIPE_SECRET_KEY", "STRIPE_API_BASE", "STRIPE_MAX_NETWORK_RETRIES", "STRIPE_TIMEOUT_SECONDS")

# PAY-6 codes with the message Stripe documents for each. For these Stripe reports the decline reason as the
# error `code` too (test cards 4000000000000069/0127/0119 and off-session 3-D Secure), not only as `decline_code`.
DECLINES = {
    "generic_decline": "Your card was declined.",
    "insufficient_funds": "Your card has insufficient funds.",
    "lost_card": "Your card was declined.",
    "stolen_card": "Your card was declined.",
    "expired_card": "Your card has expired.",
    "incorrect_cvc": "Your card's security code is incorrect.",
    "processing_error": "An error occurred while processing your card. Try again in a little bit.",
    "do_not_honor": "Your card was declined.",
    "card_velocity_exceeded": "Your card was declined for making repeated attempts too frequently or exceeding "
                              "its amount limit.",
    "authentication_required": "Your card was declined. This transaction requires authentication.",
    "fraudulent": "Your card was declined.",
}
CODE_IS_DECLINE_CODE = {"authentication_required", "expired_card", "incorrect_cvc", "processing_error"}
API_ERROR = {"error": {"type": "api_error", "message": "An unknown error occurred"}}


# --- Fixtures and helpers -----------------------------------------------------------------------------------

@pytest.fixture
def stripe_api(app, httpserver):
    """Real-Stripe mode against the local server; the session app's config is restored afterwards."""
    saved = {key: app.config.get(key) for key in STRIPE_CONFIG}
    app.config.update(STRIPE_SECRET_KEY="sk_test_contract", STRIPE_API_BASE=httpserver.url_for("").rstrip("/"),
                      STRIPE_MAX_NETWORK_RETRIES=None, STRIPE_TIMEOUT_SECONDS=1)
    try:
        yield httpserver
    finally:
        app.config.update(saved)
        httpserver.clear()


@dataclass
class Setup:
    customer_id: int
    card_id: int
    invoice_id: int
    staff_id: int
    email: str


def arrange(total_cents: int = 10_000) -> Setup:
    """A customer with a Stripe customer id and a card on file, an open invoice and a staff member (no HTTP)."""
    staff = make_staff("office")
    c = make_customer("Ana")
    customer = db.session.get(Customer, c.id)
    customer.stripe_customer_id = "cus_test"
    card = Card(customer_id=c.id, stripe_payment_method_id="pm_test_x", brand="visa", last4="4242", exp_month=12,
                exp_year=2030, is_default=True)
    db.session.add(card)
    db.session.commit()
    invoice = make_invoice(c, total_cents)
    return Setup(c.id, card.id, invoice.id, staff.id, c.primary_email)


def charge(s: Setup, amount_cents: int, *, token: str | None = None, off_session: bool = True) -> charges.Outcome:
    return charges.charge_card(db.session.get(Customer, s.customer_id), db.session.get(Card, s.card_id),
                               amount_cents, token=token or charges.new_token(),
                               invoice=db.session.get(Invoice, s.invoice_id), off_session=off_session,
                               initiated_by="staff", actor=db.session.get(StaffUser, s.staff_id))


def intent_json(pi_id: str, amount: int, attempt_key: str, status: str = "succeeded") -> dict:
    return {"id": pi_id, "object": "payment_intent", "amount": amount, "amount_received": amount, "currency": "usd",
            "status": status, "customer": "cus_test", "payment_method": "pm_test_x", "livemode": False,
            "latest_charge": "ch_" + pi_id[3:], "metadata": {"attempt_key": attempt_key}}


def succeed(pi_id: str):
    """A handler answering the create call with a succeeded PaymentIntent for what was asked."""
    def handler(request: Request) -> Response:
        body = intent_json(pi_id, int(request.form["amount"]), request.form["metadata[attempt_key]"])
        return Response(json.dumps(body), status=200, content_type="application/json")
    return handler


def creates(httpserver) -> list[Request]:
    return [req for req, _ in httpserver.log if req.method == "POST" and req.path == PI_PATH]


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


class Unanswered:
    """Make the create call go unanswered: a 500 api_error, or a read timeout (the server charges but answers
    after STRIPE_TIMEOUT_SECONDS). `done()` lets a slow handler finish and waits until the server logged it."""

    def __init__(self, httpserver, kind: str):
        self.httpserver, self.kind = httpserver, kind
        self.release = threading.Event()
        if kind == "api_error":
            httpserver.expect_oneshot_request(PI_PATH, method="POST").respond_with_json(API_ERROR, status=500)
        else:
            answer = succeed("pi_charged_late")

            def slow(request: Request) -> Response:
                self.release.wait(5)  # far past the 1 s client timeout
                return answer(request)
            httpserver.expect_oneshot_request(PI_PATH, method="POST").respond_with_handler(slow)

    def done(self) -> None:
        self.release.set()
        deadline = time.monotonic() + 5
        while not creates(self.httpserver) and time.monotonic() < deadline:
            time.sleep(0.01)


@pytest.fixture
def unanswered(stripe_api):
    made = []

    def make(kind):
        made.append(Unanswered(stripe_api, kind))
        return made[-1]
    yield make
    for u in made:
        u.done()  # never leave the (single-threaded) server blocked for the next test


# --- 1. Declines (PAY-6, PAY-7) ---------------------------------------------------------------------------

@pytest.mark.parametrize("decline_code", list(DECLINES))
def test_decline_stores_code_and_message_and_explains_it_in_feed_and_email(app, stripe_api, smtp, client,
                                                                           decline_code):
    message = DECLINES[decline_code]
    pi_id = f"pi_declined_{decline_code}"
    stripe_api.expect_request(PI_PATH, method="POST").respond_with_json({"error": {
        "type": "card_error", "code": decline_code if decline_code in CODE_IS_DECLINE_CODE else "card_declined",
        "decline_code": decline_code, "message": message,
        "doc_url": f"https://stripe.com/docs/error-codes/{decline_code}",
        "payment_intent": {"id": pi_id, "object": "payment_intent", "status": "requires_payment_method"}}},
        status=402)
    explanation = declines.explain(decline_code)
    assert explanation.reason != str(declines.DEFAULT[0]), "PAY-6 code without its own explanation"

    with app.app_context():
        s = arrange(10_000)
        outcome = charge(s, 10_000, off_session=True)
        assert outcome.status == "failed"
        assert outcome.explanation.reason == explanation.reason
        attempt = db.session.scalars(select(ChargeAttempt)).one()
        assert (attempt.status, attempt.decline_code, attempt.failure_message) == ("failed", decline_code, message)
        assert attempt.stripe_payment_intent_id == pi_id and attempt.settled_at is not None
        assert count(Payment) == 0
        invoice = db.session.get(Invoice, s.invoice_id)
        assert (invoice.paid_cents, invoice.status) == (0, "open")
        feed = [e.summary for e in db.session.scalars(
            select(ActivityEvent).where(ActivityEvent.customer_id == s.customer_id,
                                        ActivityEvent.event_type == "failure"))]
        assert len(feed) == 1 and explanation.reason in feed[0]
        key = attempt.idempotency_key
        mailer.deliver_pending()

    # exactly one create (a decline is never retried), carrying the attempt's key
    (post,) = creates(stripe_api)
    assert post.headers["Idempotency-Key"] == key
    assert post.form["metadata[attempt_key]"] == key and post.form["off_session"] == "true"
    assert post.headers["Authorization"] == "Bearer sk_test_contract"

    # the off-session customer is told why, what to do, and gets a link to pay in the portal (PAY-7)
    (mail,) = [m for m in smtp.to(s.email) if "did not go through" in m["Subject"]]
    text = smtp.text(mail)
    assert explanation.reason in text and explanation.next_step in text
    link = next(word for word in text.split() if "/portal/magic/" in word)
    r = client.get(urlparse(link).path)
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/portal/invoices/{s.invoice_id}/pay")


def test_card_error_without_decline_code_stores_the_error_code(app, stripe_api):
    stripe_api.expect_request(PI_PATH, method="POST").respond_with_json({"error": {
        "type": "card_error", "code": "expired_card", "param": "exp_month", "message": "Your card has expired."}},
        status=402)
    with app.app_context():
        s = arrange()
        outcome = charge(s, 5_000, off_session=False)
        attempt = db.session.get(ChargeAttempt, outcome.attempt.id)
        assert (attempt.status, attempt.decline_code) == ("failed", "expired_card")
        assert outcome.explanation.reason == declines.explain("expired_card").reason
        assert db.session.scalar(select(func.count()).select_from(QueuedEmail)
                                 .where(QueuedEmail.template == "payment_failed")) == 0  # on-session: no email


# --- 2. No answer: unknown, never failed (PAY-3) ------------------------------------------------------------

@pytest.mark.parametrize("kind", ["api_error", "read_timeout"])
def test_no_answer_leaves_the_attempt_unknown_not_failed(app, stripe_api, unanswered, frozen_clock, kind):
    app.config["STRIPE_MAX_NETWORK_RETRIES"] = 0
    no_answer = unanswered(kind)
    with app.app_context():
        s = arrange(10_000)
        outcome = charge(s, 10_000, off_session=True)
        no_answer.done()
        assert outcome.status == "unknown"
        attempt = db.session.get(ChargeAttempt, outcome.attempt.id)
        assert attempt.status == "unknown" and attempt.settled_at is None
        assert attempt.decline_code == ("api_error" if kind == "api_error" else "network_error")
        assert count(Payment) == 0
        assert db.session.get(Invoice, s.invoice_id).paid_cents == 0
        # the customer is not told the payment failed: it may have gone through
        assert db.session.scalar(select(func.count()).select_from(QueuedEmail)
                                 .where(QueuedEmail.template == "payment_failed")) == 0

        # before STRIPE_RECONCILE_AFTER_MINUTES the reconciler leaves it alone and asks Stripe nothing
        frozen_clock.advance(minutes=4)
        assert charges.reconcile()["succeeded"] == 0
        assert db.session.get(ChargeAttempt, attempt.id).status == "unknown"
    assert [(r.method, r.path) for r, _ in stripe_api.log] == [("POST", PI_PATH)]


# --- 3. The reconciler settles it without a second create (PAY-3) -------------------------------------------

@pytest.mark.parametrize("kind", ["api_error", "read_timeout"])
def test_reconciler_finds_the_charge_by_metadata_and_never_creates_another(app, stripe_api, unanswered, smtp,
                                                                          frozen_clock, kind):
    app.config["STRIPE_MAX_NETWORK_RETRIES"] = 0
    no_answer = unanswered(kind)
    with app.app_context():
        s = arrange(10_000)
        outcome = charge(s, 10_000, off_session=True)
        no_answer.done()
        assert outcome.status == "unknown"
        key = outcome.attempt.idempotency_key

        stripe_api.expect_request(SEARCH_PATH, method="GET",
                                  query_string={"query": f"metadata['attempt_key']:'{key}'", "limit": "1"}
                                  ).respond_with_json({"object": "search_result", "url": SEARCH_PATH,
                                                       "has_more": False, "next_page": None,
                                                       "data": [intent_json("pi_found", 10_000, key)]})
        frozen_clock.advance(minutes=6)
        results = scheduler.run_due()  # what `flask jobs run` does
        assert results["charge_reconciler"]["succeeded"] == 1

        attempt = db.session.get(ChargeAttempt, outcome.attempt.id)
        assert (attempt.status, attempt.stripe_payment_intent_id) == ("succeeded", "pi_found")
        (payment,) = db.session.scalars(select(Payment)).all()
        assert (payment.amount_cents, payment.fee_cents, payment.net_cents) == (10_000, 325, 9_675)  # 2.95 % + 0.30
        assert payment.charge_attempt_id == attempt.id
        assert count(PaymentAllocation) == 1
        invoice = db.session.get(Invoice, s.invoice_id)
        assert (invoice.paid_cents, invoice.status) == (10_000, "paid")

        # a second run finds nothing open and asks Stripe nothing
        assert scheduler.run_due()["charge_reconciler"] == {"succeeded": 0, "failed": 0, "still_open": 0, "errors": 0}
        assert count(Payment) == 1
    calls = [(r.method, r.path) for r, _ in stripe_api.log]
    assert calls == [("POST", PI_PATH), ("GET", SEARCH_PATH)]  # exactly ONE create, then only the lookup
    assert sum("Payment receipt" in m["Subject"] for m in smtp.to(s.email)) == 1
    stripe_api.check_assertions()


# --- 4. Idempotency-Key on the wire (PAY-3) ------------------------------------------------------------------

def test_retry_after_500_resends_the_same_idempotency_key_and_charges_once(app, stripe_api):
    app.config["STRIPE_MAX_NETWORK_RETRIES"] = 1
    stripe_api.expect_ordered_request(PI_PATH, method="POST").respond_with_json(API_ERROR, status=500)
    stripe_api.expect_ordered_request(PI_PATH, method="POST").respond_with_handler(succeed("pi_retried"))
    with app.app_context():
        s = arrange(10_000)
        token = charges.new_token()
        outcome = charge(s, 10_000, token=token)
        assert outcome.status == "succeeded"
        attempt = db.session.scalars(select(ChargeAttempt)).one()  # one attempt, not one per HTTP try
        assert attempt.idempotency_key == f"charge_{token}"
        assert (attempt.status, attempt.stripe_payment_intent_id) == ("succeeded", "pi_retried")
        assert count(Payment) == 1
        assert db.session.get(Invoice, s.invoice_id).status == "paid"
        key = attempt.idempotency_key
    first, second = creates(stripe_api)
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"] == key
    assert parse_qs(first.get_data(as_text=True)) == parse_qs(second.get_data(as_text=True))
    assert not stripe_api.ordered_handlers
    stripe_api.check_assertions()


# --- 5. Crash after Stripe answered, before our commit (PAY-3, sandbox) --------------------------------------

def test_crash_between_stripe_and_commit_is_reconciled_into_one_payment(app, stripe_sandbox, frozen_clock,
                                                                        monkeypatch):
    assert not app.config.get("STRIPE_SECRET_KEY") and not app.config.get("STRIPE_API_BASE")  # sandbox mode

    def die(*args, **kwargs):
        raise RuntimeError("process died after Stripe answered")

    with app.app_context():
        c = make_customer()
        invoice = make_invoice(c, 7_500)
        card = make_card(c.id)
        monkeypatch.setattr(charges, "record_intent", die)
        with pytest.raises(RuntimeError):
            charges.charge_card(db.session.get(Customer, c.id), db.session.get(Card, card.id), 7_500,
                                token=charges.new_token(), invoice=db.session.get(Invoice, invoice.id),
                                off_session=True, initiated_by="system")
        db.session.rollback()
        db.session.remove()
        monkeypatch.undo()  # the reconciler uses the real record_intent

        attempt = db.session.scalars(select(ChargeAttempt)).one()
        assert attempt.status == "pending"  # committed before Stripe was called
        assert attempt.stripe_payment_intent_id is None and count(Payment) == 0

        frozen_clock.advance(minutes=6)
        assert charges.reconcile()["succeeded"] == 1
        attempt = db.session.get(ChargeAttempt, attempt.id)
        assert attempt.status == "succeeded" and attempt.stripe_payment_intent_id
        (payment,) = db.session.scalars(select(Payment)).all()
        assert payment.amount_cents == 7_500
        inv = db.session.get(Invoice, invoice.id)
        assert (inv.paid_cents, inv.status) == (7_500, "paid")
        assert charges.reconcile()["succeeded"] == 0
        assert db.session.get(Invoice, invoice.id).paid_cents == 7_500
        pi_id, key = attempt.stripe_payment_intent_id, attempt.idempotency_key

    intents = requests.get(stripe_sandbox["url"] + PI_PATH, headers={"Authorization": "Bearer sk_test_sandbox"},
                           timeout=5).json()["data"]
    assert [(pi["id"], pi["status"], pi["amount"], pi["metadata"]["attempt_key"]) for pi in intents] == [
        (pi_id, "succeeded", 7_500, key)]


# --- 6. Nothing charges an invoice again while an attempt is open (PAY-3) ------------------------------------

@pytest.mark.parametrize("open_status", ["pending", "unknown"])
def test_no_second_charge_while_an_attempt_is_open(app, stripe_api, monkeypatch, open_status):
    app.config["STRIPE_MAX_NETWORK_RETRIES"] = 0
    with app.app_context():
        s = arrange(10_000)
        if open_status == "pending":
            def die(**kwargs):
                raise RuntimeError("process died while calling Stripe")
            monkeypatch.setattr(charges.gateway, "create_payment_intent", die)
            with pytest.raises(RuntimeError):
                charge(s, 10_000)
            db.session.rollback()
            monkeypatch.undo()
        else:
            stripe_api.expect_oneshot_request(PI_PATH, method="POST").respond_with_json(API_ERROR, status=500)
            assert charge(s, 10_000).status == "unknown"
        first = db.session.scalars(select(ChargeAttempt)).one()
        assert first.status == open_status
        calls_before = len(stripe_api.log)

        stripe_api.expect_request(PI_PATH, method="POST").respond_with_handler(succeed("pi_second"))
        with pytest.raises(ServiceError) as refused:
            charge(s, 10_000, token=charges.new_token())
        assert "already being processed" in refused.value.message
        db.session.rollback()
        assert len(stripe_api.log) == calls_before  # no HTTP call at all
        assert [a.status for a in db.session.scalars(select(ChargeAttempt))] == [open_status]
        assert count(Payment) == 0 and db.session.get(Invoice, s.invoice_id).paid_cents == 0
