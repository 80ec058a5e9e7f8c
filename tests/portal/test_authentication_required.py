"""PAY-7: a charge the bank wants the cardholder to confirm (3-D Secure)."""
import re

import requests
from sqlalchemy import select

from portal.extensions import db
from portal.models import ChargeAttempt, Customer, Invoice
from portal.services.payments import charges
from tests.factories import make_card, make_customer, make_invoice
from tests.helpers import csrf_token_from, sandbox_intents

NEEDS_3DS = "4000002500003155"


def test_off_session_charge_needing_authentication_fails_and_emails_a_portal_link(app, client, stripe_sandbox, smtp):
    with app.app_context():
        c = make_customer("Ana", "Diaz", email="ana@example.com")
        invoice = make_invoice(c, 6_000)
        card = make_card(c.id, NEEDS_3DS)
        outcome = charges.charge_card(db.session.get(Customer, c.id), card, 6_000, token=None,
                                      invoice=db.session.get(Invoice, invoice.id), off_session=True,
                                      initiated_by="system")
        assert outcome.attempt.status == "failed" and outcome.attempt.decline_code == "authentication_required"
        from portal.services.platform import mailer
        mailer.deliver_pending()
    [msg] = smtp.to("ana@example.com")
    text = smtp.text(msg)
    assert "confirm this payment" in text and "did not go through" in msg["Subject"]
    link = re.search(r"(http://portal\.test/portal/magic/\S+)", text).group(1)
    r = client.get(link.replace("http://portal.test", ""))
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/portal/invoices/{invoice.id}/pay")


def test_on_session_payment_is_confirmed_with_the_bank_in_the_portal(app, client, login_customer, stripe_sandbox):
    with app.app_context():
        c = make_customer("Ana", "Diaz", email="ana@example.com")
        invoice = make_invoice(c, 6_000)
        card = make_card(c.id, NEEDS_3DS)
    login_customer(c)
    html = client.get(f"/portal/invoices/{invoice.id}/pay").get_data(True)
    token = re.search(r'name="token" type="hidden" value="([^"]+)"', html).group(1)
    r = client.post(f"/portal/invoices/{invoice.id}/pay", data={"csrf_token": csrf_token_from(html), "token": token,
                                                               "amount": "60.00", "card_id": card.id})
    page = r.get_data(True)
    assert r.status_code == 200 and "Confirm the payment with your bank" in page
    secret = re.search(r'data-client-secret="([^"]+)"', page).group(1)
    action = re.search(r'action="([^"]+/confirm)"', page).group(1)
    # what the bank's window does through Stripe.js:
    pi = secret.split("_secret_")[0]
    ok = requests.post(f"{stripe_sandbox['url']}/v1/payment_intents/{pi}/_authenticate?success=true",
                       json={"key": "pk_test_sandbox", "client_secret": secret}, timeout=5)
    assert ok.status_code == 200
    done = client.post(action, data={"csrf_token": csrf_token_from(page)})
    assert done.status_code == 302 and "/portal/payments/" in done.headers["Location"]
    with app.app_context():
        assert db.session.get(Invoice, invoice.id).status == "paid"
        assert db.session.scalars(select(ChargeAttempt)).one().status == "succeeded"


def test_on_session_payment_not_confirmed_is_failed_not_left_hanging(app, client, login_customer, stripe_sandbox):
    with app.app_context():
        c = make_customer()
        invoice = make_invoice(c, 6_000)
        card = make_card(c.id, NEEDS_3DS)
    login_customer(c)
    html = client.get(f"/portal/invoices/{invoice.id}/pay").get_data(True)
    token = re.search(r'name="token" type="hidden" value="([^"]+)"', html).group(1)
    page = client.post(f"/portal/invoices/{invoice.id}/pay", data={"csrf_token": csrf_token_from(html),
                                                                  "token": token, "amount": "60.00",
                                                                  "card_id": card.id}).get_data(True)
    action = re.search(r'action="([^"]+/confirm)"', page).group(1)
    r = client.post(action, data={"csrf_token": csrf_token_from(page)})
    assert r.status_code == 402 and "confirm this payment" in r.get_data(True)
    with app.app_context():
        attempt = db.session.scalars(select(ChargeAttempt)).one()
        assert (attempt.status, attempt.decline_code) == ("failed", "authentication_required")
        assert db.session.get(Invoice, invoice.id).balance_cents == 6_000


def test_an_abandoned_confirmation_does_not_block_paying_again(app, client, login_customer, stripe_sandbox):
    with app.app_context():
        c = make_customer()
        invoice = make_invoice(c, 6_000)
        needs = make_card(c.id, NEEDS_3DS)
        plain = make_card(c.id, "4242424242424242")
    login_customer(c)
    html = client.get(f"/portal/invoices/{invoice.id}/pay").get_data(True)
    token = re.search(r'name="token" type="hidden" value="([^"]+)"', html).group(1)
    page = client.post(f"/portal/invoices/{invoice.id}/pay", data={"csrf_token": csrf_token_from(html),
                                                                  "token": token, "amount": "60.00",
                                                                  "card_id": needs.id}).get_data(True)
    assert "Confirm the payment with your bank" in page  # ... and the customer closes the bank's window
    html = client.get(f"/portal/invoices/{invoice.id}/pay").get_data(True)
    token = re.search(r'name="token" type="hidden" value="([^"]+)"', html).group(1)
    r = client.post(f"/portal/invoices/{invoice.id}/pay", data={"csrf_token": csrf_token_from(html),
                                                               "token": token, "amount": "60.00",
                                                               "card_id": plain.id})
    assert r.status_code == 302 and "/portal/payments/" in r.headers["Location"]
    with app.app_context():
        statuses = [a.status for a in db.session.scalars(select(ChargeAttempt).order_by(ChargeAttempt.id))]
        assert statuses == ["failed", "succeeded"]
        assert db.session.get(Invoice, invoice.id).paid_cents == 6_000
    pis = sandbox_intents(stripe_sandbox)
    assert sorted(p["status"] for p in pis) == ["canceled", "succeeded"]
