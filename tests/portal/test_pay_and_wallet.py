"""P-3, P-7, W-1, W-3 through the portal pages (the browser's Stripe.js step done by tests.factories.sandbox_card)."""
import re

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Card, ChargeAttempt, Customer, Invoice, Payment
from tests.factories import make_card, make_customer, make_invoice, sandbox_card
from tests.helpers import csrf_token_from


def _pay_form(client, invoice_id):
    html = client.get(f"/portal/invoices/{invoice_id}/pay").get_data(True)
    token = re.search(r'name="token" type="hidden" value="([^"]+)"', html).group(1)
    return html, csrf_token_from(html), token


def test_pay_with_a_new_card_without_saving_it(app, client, login_customer, stripe_sandbox, smtp):
    with app.app_context():
        c = make_customer("Ana", "Diaz", email="ana@example.com")
        invoice = make_invoice(c, 25_000)
    login_customer(c)
    html, csrf, token = _pay_form(client, invoice.id)
    assert 'value="250.00"' in html and "A new card" in html and "data-card-element" in html
    with app.app_context():
        seti = sandbox_card(c.id, purpose="payment")
    r = client.post(f"/portal/invoices/{invoice.id}/pay", data={
        "csrf_token": csrf, "token": token, "amount": "100.00", "card_id": "new", "setup_intent": seti})
    assert r.status_code == 302 and "/portal/payments/" in r.headers["Location"]
    receipt = client.get(r.headers["Location"]).get_data(True)
    assert "Thank you! We received your payment of $100.00" in receipt and "balance left $150.00" in receipt
    with app.app_context():
        assert db.session.get(Invoice, invoice.id).status == "partially_paid"
        card = db.session.scalars(select(Card)).one()
        assert card.removed_at is not None and not card.is_default  # not saved: off file after paying
    assert any("Payment receipt" in m["Subject"] for m in smtp.to("ana@example.com"))
    wallet = client.get("/portal/wallet").get_data(True)
    assert "No cards on file yet" in wallet


def test_bad_input_charges_nothing(app, client, login_customer, stripe_sandbox):
    with app.app_context():
        a, b = make_customer("Ana", "Diaz"), make_customer("Bob", "Stone")
        invoice = make_invoice(a, 10_000)
        others_invoice = make_invoice(b, 10_000)
        mine = make_card(a.id)
        spare = make_card(a.id, "5555555555554444")
        theirs = make_card(b.id)
        from portal.services.payments import cards
        cards.remove(db.session.get(Customer, a.id), spare.id)
        db.session.commit()
    login_customer(a)
    html, csrf, token = _pay_form(client, invoice.id)
    cases = [("0.49", mine.id, "smallest card payment"), ("100.01", mine.id, "more than the balance"),
             ("ten", mine.id, "as a number"), ("-1", mine.id, "cannot be negative"),
             ("", mine.id, "Enter an amount"), ("10", theirs.id, "cards on file"),
             ("10", spare.id, "was removed"), ("10", "new", "Enter the card details")]
    for amount, card_id, message in cases:
        r = client.post(f"/portal/invoices/{invoice.id}/pay", data={"csrf_token": csrf, "token": token,
                                                                   "amount": amount, "card_id": card_id})
        assert r.status_code == 400 and message in r.get_data(True), (amount, card_id, r.get_data(True)[:300])
    assert client.get(f"/portal/invoices/{others_invoice.id}/pay").status_code == 404
    assert client.post(f"/portal/invoices/{others_invoice.id}/pay", data={
        "csrf_token": csrf, "token": token, "amount": "10", "card_id": mine.id}).status_code == 404
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ChargeAttempt)) == 0
        assert db.session.scalar(select(func.count()).select_from(Payment)) == 0


def test_a_declined_card_is_explained_on_the_page(app, client, login_customer, stripe_sandbox, smtp):
    with app.app_context():
        c = make_customer("Ana", "Diaz", email="ana@example.com")
        invoice = make_invoice(c, 10_000)
        card = make_card(c.id, "4000000000000341")
    login_customer(c)
    html, csrf, token = _pay_form(client, invoice.id)
    r = client.post(f"/portal/invoices/{invoice.id}/pay", data={"csrf_token": csrf, "token": token,
                                                               "amount": "100.00", "card_id": card.id})
    page = r.get_data(True)
    assert r.status_code == 402 and "The payment did not go through." in page
    assert "The bank declined the card" in page and "call the number on the back" in page.lower()
    new_token = re.search(r'name="token" type="hidden" value="([^"]+)"', page).group(1)
    assert new_token != token  # trying again is a new attempt, not a replay of the declined one
    with app.app_context():
        assert db.session.get(Invoice, invoice.id).balance_cents == 10_000
    assert not smtp.to("ana@example.com")  # the customer saw it on the page; no email for an on-session decline


def test_wallet_default_and_the_w3_guard(app, client, login_customer, stripe_sandbox):
    with app.app_context():
        c = make_customer(autopay_enabled=True)
        first = make_card(c.id)
    login_customer(c)
    page = client.get("/portal/wallet").get_data(True)
    assert "Visa •••• 4242" in page and "Default" in page
    csrf = csrf_token_from(page)
    r = client.post(f"/portal/wallet/cards/{first.id}/remove", data={"csrf_token": csrf}, follow_redirects=True)
    assert "cannot be removed here" in r.get_data(True) and "contact us" in r.get_data(True)
    with app.app_context():
        assert db.session.get(Card, first.id).removed_at is None
        seti = sandbox_card(c.id, "5555555555554444")
    r = client.post("/portal/wallet/cards", data={"csrf_token": csrf, "setup_intent": seti}, follow_redirects=True)
    assert "Card Visa •••• 4444 saved." in r.get_data(True)
    with app.app_context():
        second = db.session.scalars(select(Card).where(Card.last4 == "4444")).one()
    r = client.post(f"/portal/wallet/cards/{second.id}/default", data={"csrf_token": csrf}, follow_redirects=True)
    assert "is now your default card" in r.get_data(True)
    r = client.post(f"/portal/wallet/cards/{first.id}/remove", data={"csrf_token": csrf}, follow_redirects=True)
    assert "removed" in r.get_data(True)
    with app.app_context():
        assert [c.last4 for c in db.session.scalars(select(Card).where(Card.removed_at.is_(None)))] == ["4444"]
    # someone else's SetupIntent or a made-up one saves nothing
    with app.app_context():
        other = make_customer("Zed", "Other")
        foreign = sandbox_card(other.id)
    r = client.post("/portal/wallet/cards", data={"csrf_token": csrf, "setup_intent": foreign}, follow_redirects=True)
    assert "was not saved" in r.get_data(True)
    r = client.post("/portal/wallet/cards", data={"csrf_token": csrf, "setup_intent": "seti_madeup"},
                    follow_redirects=True)
    assert "was not saved" in r.get_data(True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Card).where(Card.customer_id == c.id)) == 2


def test_expiry_flags_in_the_wallet(app, client, login_customer, stripe_sandbox, frozen_clock):
    with app.app_context():
        c = make_customer()
        make_card(c.id, exp_month=3, exp_year=2026)  # the clock says March 2026
    login_customer(c)
    assert "Expires this month" in client.get("/portal/wallet").get_data(True)
    frozen_clock.advance(days=40)
    login_customer(c)
    assert "Expired" in client.get("/portal/wallet").get_data(True)
