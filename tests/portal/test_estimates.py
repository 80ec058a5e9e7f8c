"""P-5: approve with a typed name (time and IP kept) or decline; a deposit is paid together with the approval."""
from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from portal import clock
from portal.extensions import db
from portal.models import Card, ChargeAttempt, Estimate, Payment
from portal.services.platform import mailer, settings
from tests.factories import make_card, make_customer, make_estimate
from tests.helpers import csrf_token_from


def _page(client, estimate_id):
    html = client.get(f"/portal/estimates/{estimate_id}").get_data(True)
    return html, csrf_token_from(html)


def _approve(client, estimate_id, **data):
    html, csrf = _page(client, estimate_id)
    token = re.search(r'name="token" type="hidden" value="([^"]+)"', html)
    form = {"csrf_token": csrf, **({"token": token.group(1)} if token else {}), **data}
    return client.post(f"/portal/estimates/{estimate_id}/approve", data=form,
                       environ_base={"REMOTE_ADDR": "203.0.113.7"})


def test_approval_records_name_time_and_ip_and_emails_staff(app, client, login_customer, smtp, frozen_clock):
    with app.app_context():
        settings.ensure().email = "office@example.com"
        db.session.commit()
        c = make_customer("Ana", "Diaz")
        est = make_estimate(c)
    login_customer(c)
    when = frozen_clock.advance(hours=1)
    r = _approve(client, est.id, name="  Ana   Diaz ")
    assert r.status_code == 302
    page = client.get(r.headers["Location"]).get_data(True)
    assert "Approved by Ana Diaz" in page and 'name="name"' not in page  # no second approval form
    with app.app_context():
        e = db.session.get(Estimate, est.id)
        assert (e.status, e.approved_name, e.approved_ip) == ("approved", "Ana Diaz", "203.0.113.7")
        assert e.approved_at == when
        mailer.deliver_pending()
    [msg] = smtp.to("office@example.com")
    assert "approved" in msg["Subject"] and est.number in msg["Subject"]
    assert "Signed as: Ana Diaz" in smtp.text(msg) and "203.0.113.7" in smtp.text(msg)


def test_second_approval_is_refused_and_changes_nothing(app, client, login_customer):
    with app.app_context():
        c = make_customer()
        est = make_estimate(c)
    login_customer(c)
    html, csrf = _page(client, est.id)
    assert _approve(client, est.id, name="First Signer").status_code == 302
    again = client.post(f"/portal/estimates/{est.id}/approve", data={"csrf_token": csrf, "name": "Second Signer"})
    assert again.status_code == 409 and "already approved" in again.get_data(True)
    with app.app_context():
        assert db.session.get(Estimate, est.id).approved_name == "First Signer"


def test_declined_estimate_cannot_be_approved(app, client, login_customer, smtp):
    with app.app_context():
        settings.ensure().email = "office@example.com"
        db.session.commit()
        c = make_customer()
        est = make_estimate(c)
    login_customer(c)
    html, csrf = _page(client, est.id)
    r = client.post(f"/portal/estimates/{est.id}/decline", data={"csrf_token": csrf, "reason": "Too expensive"})
    assert r.status_code == 302
    r = client.post(f"/portal/estimates/{est.id}/approve", data={"csrf_token": csrf, "name": "Ana"})
    assert r.status_code == 409 and "declined" in r.get_data(True)
    with app.app_context():
        e = db.session.get(Estimate, est.id)
        assert (e.status, e.decline_reason, e.approved_name, e.approved_at) == ("declined", "Too expensive", None, None)
        mailer.deliver_pending()
    [msg] = smtp.to("office@example.com")
    assert "declined" in msg["Subject"] and "Too expensive" in smtp.text(msg)


def test_bad_input_gets_a_message_and_changes_nothing(app, client, login_customer):
    with app.app_context():
        c = make_customer()
        est = make_estimate(c)
        expired = make_estimate(c, valid_until=clock.today() - timedelta(days=1))
    login_customer(c)
    for name in ("", "   ", "x" * 161):
        r = _approve(client, est.id, name=name)
        assert r.status_code == 400, name
        assert "Type your full name" in r.get_data(True) or "under 160" in r.get_data(True)
    html, csrf = _page(client, est.id)
    r = client.post(f"/portal/estimates/{est.id}/decline", data={"csrf_token": csrf, "reason": "y" * 2001})
    assert r.status_code == 400 and "under 2000" in r.get_data(True)
    r = client.post(f"/portal/estimates/{expired.id}/approve", data={"csrf_token": csrf, "name": "Ana"})
    assert r.status_code == 409 and "expired" in r.get_data(True)
    r = client.post(f"/portal/estimates/{est.id}/approve", data={"name": "No Csrf"})
    assert r.status_code == 400
    with app.app_context():
        assert {e.status for e in db.session.scalars(select(Estimate))} == {"sent"}
        assert db.session.get(Estimate, est.id).approved_name is None


def test_deposit_estimate_is_approved_only_with_the_paid_deposit(app, client, login_customer, stripe_sandbox):
    with app.app_context():
        c = make_customer("Ana", "Diaz")
        est = make_estimate(c, deposit_cents=20_000)
        declining = make_card(c.id, "4000000000000341")
        good = make_card(c.id, "4242424242424242")
    login_customer(c)
    html, _ = _page(client, est.id)
    assert "Pay $200.00 deposit and approve" in html and "$200.00" in html
    # without a deposit the approval does not happen through the plain path either
    r = _approve(client, est.id, name="Ana Diaz", card_id=str(declining.id))
    assert r.status_code == 402 and "not approved yet" in r.get_data(True)
    with app.app_context():
        assert db.session.get(Estimate, est.id).status == "sent"
    r = _approve(client, est.id, name="Ana Diaz", card_id=str(good.id))
    assert r.status_code == 302
    with app.app_context():
        e = db.session.get(Estimate, est.id)
        assert (e.status, e.approved_name, e.approved_ip) == ("approved", "Ana Diaz", "203.0.113.7")
        deposit = db.session.get(Payment, e.deposit_payment_id)
        assert (deposit.kind, deposit.amount_cents, deposit.card_last4) == ("deposit", 20_000, "4242")
        attempts = db.session.scalars(select(ChargeAttempt).order_by(ChargeAttempt.id)).all()
        assert [(a.status, a.estimate_id) for a in attempts] == [("failed", est.id), ("succeeded", est.id)]
    page = client.get(f"/portal/estimates/{est.id}").get_data(True)
    assert "Deposit receipt" in page


def test_required_card_on_file_shows_consent_and_keeps_the_card(app, client, login_customer, stripe_sandbox):
    from tests.factories import sandbox_card

    with app.app_context():
        settings.ensure().require_card_for_deposits = True
        db.session.commit()
        c = make_customer()
        est = make_estimate(c, deposit_cents=5_000)
    login_customer(c)
    html, _ = _page(client, est.id)
    assert "data-consent" in html and "keep this card on file" in html
    assert 'name="save_card"' not in html  # consent text instead of a checkbox (W-6)
    with app.app_context():
        seti = sandbox_card(c.id, purpose="payment")
    r = _approve(client, est.id, name="Maria Lopez", card_id="new", setup_intent=seti)  # no save_card sent
    assert r.status_code == 302, r.get_data(True)
    with app.app_context():
        [card] = db.session.scalars(select(Card).where(Card.customer_id == c.id)).all()
        assert card.removed_at is None and card.added_by != "customer_once"
        assert db.session.get(Estimate, est.id).status == "approved"


def test_missing_name_refused_before_any_card_is_saved(app, client, login_customer, stripe_sandbox):
    from tests.factories import sandbox_card

    with app.app_context():
        c = make_customer()
        est = make_estimate(c, deposit_cents=5_000)
        seti = sandbox_card(c.id, purpose="payment")
    login_customer(c)
    r = _approve(client, est.id, name="", card_id="new", setup_intent=seti)
    assert r.status_code == 400 and "Type your full name" in r.get_data(True)
    with app.app_context():
        assert db.session.scalars(select(Card)).all() == []
        assert db.session.scalars(select(ChargeAttempt)).all() == []


def test_deposit_settled_later_by_the_webhook_or_reconciler_approves_once(app, stripe_sandbox, smtp):
    """The charge's outcome was unknown in the request; when it settles later, the approval happens then."""
    from portal.services.payments import charges

    class _Intent(dict):  # what the library returns: attribute and item access
        __getattr__ = dict.__getitem__

    with app.app_context():
        settings.ensure().email = "office@example.com"
        db.session.commit()
        c = make_customer("Ana", "Diaz")
        est = make_estimate(c, deposit_cents=5_000)
        card = make_card(c.id)
        e = db.session.get(Estimate, est.id)
        e.approved_name, e.approved_ip = "Ana Diaz", "198.51.100.4"  # waiting on the estimate while the card is charged
        attempt = ChargeAttempt(idempotency_key="charge_later_deposit_0001", customer_id=c.id, card_id=card.id,
                                amount_cents=5_000, status="unknown", purpose="deposit", estimate_id=est.id,
                                initiated_by="customer")
        db.session.add(attempt)
        db.session.commit()
        intent = _Intent(id="pi_later", amount=5_000, latest_charge="ch_later", status="succeeded")
        payment = charges.settle_succeeded(attempt, intent)
        db.session.commit()
        assert payment is not None
        assert charges.settle_succeeded(attempt, intent) is None  # a second settler (webhook after reconciler)
        db.session.commit()
        e = db.session.get(Estimate, est.id)
        assert (e.status, e.approved_name, e.deposit_payment_id) == ("approved", "Ana Diaz", payment.id)
        assert e.approved_at is not None
        mailer.deliver_pending()
    assert len([m for m in smtp.to("office@example.com") if "approved" in m["Subject"]]) == 1
