"""E2E payment journeys in headless Chromium against the live server and the localstripe sandbox.

(a) W-1: a customer saves a card in the portal wallet through the Stripe.js card element.
(b) P-3: a customer pays an open invoice with a new card, keeps it on file, gets the receipt page and email.
(c) PAY-2, R-1: an admin charges a saved card from the client card, then refunds part of the payment.
"""
from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect
from sqlalchemy import select

from tests import factories
from tests.helpers import fill_card_element, staff_logs_in, wait_for_email

CARD_NUMBER = "4242424242424242"
STAFF_EMAIL = "admin.pay.e2e@brightair.test"


def _portal_login(app, page, live_server: str, customer_id: int) -> None:
    from portal.extensions import db
    from portal.models import Customer
    from portal.services.platform import magic_links

    with app.app_context():
        link = magic_links.portal_link(db.session.get(Customer, customer_id))
        db.session.commit()
    assert link.startswith(live_server), link
    page.goto(link)
    expect(page).to_have_url(f"{live_server}/portal/")


def _database_holds(app, needle: str) -> list[str]:
    """Every table.column whose stored value contains `needle` (the full card number must appear nowhere)."""
    from portal.extensions import db

    hits = []
    with app.app_context():
        for table in db.metadata.sorted_tables:
            for row in db.session.execute(select(table)).mappings():
                hits += [f"{table.name}.{col}" for col, value in row.items()
                         if value is not None and needle in str(value)]
        db.session.remove()
    return hits


@pytest.mark.e2e
def test_customer_saves_card_in_wallet(app, smtp, stripe_sandbox, live_server, page):
    from portal.extensions import db
    from portal.models import Card

    with app.app_context():
        customer = factories.make_customer("Wanda", "Wallet", email="wanda.wallet@example.com")

    _portal_login(app, page, live_server, customer.id)
    page.goto(f"{live_server}/portal/wallet")
    expect(page.get_by_role("heading", name="Wallet", level=1)).to_be_visible()
    expect(page.get_by_text("No cards on file yet.")).to_be_visible()

    form = page.locator("form[data-card-form]")
    fill_card_element(form)
    form.get_by_role("button", name="Save card").click()

    row = page.locator("li.card-row")
    expect(row).to_have_count(1)
    expect(row.locator(".card-name")).to_have_text("Visa •••• 4242")
    expect(row.get_by_text("Default", exact=True)).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Card Visa •••• 4242 saved.")
    expect(page).to_have_url(f"{live_server}/portal/wallet")

    with app.app_context():
        rows = db.session.scalars(select(Card).where(Card.customer_id == customer.id)).all()
        assert len(rows) == 1, rows
        card = rows[0]
        assert card.is_default and card.removed_at is None
        assert (card.brand, card.last4, card.exp_month, card.exp_year) == ("visa", "4242", 12, 2030)
        assert card.stripe_payment_method_id.startswith("pm_")
        db.session.remove()
    # G-4: only the last four digits reach our database, anywhere.
    assert _database_holds(app, CARD_NUMBER) == []


@pytest.mark.e2e
def test_customer_pays_invoice_with_new_card(app, smtp, stripe_sandbox, live_server, page):
    from portal.extensions import db
    from portal.models import Card, Invoice, Payment

    email = "paula.payer@example.com"
    with app.app_context():
        customer = factories.make_customer("Paula", "Payer", email=email)
        invoice = factories.make_invoice(customer, 25_000)

    _portal_login(app, page, live_server, customer.id)
    page.goto(f"{live_server}/portal/invoices/{invoice.id}/pay")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Pay invoice {invoice.number}")

    form = page.locator("form[data-card-form]")
    expect(form.get_by_label("Amount to pay")).to_have_value("250.00")
    pay_with = form.get_by_role("group", name="Pay with")
    expect(pay_with.get_by_role("radio")).to_have_count(1)  # no card on file: only "A new card"
    expect(pay_with.get_by_role("radio", name="A new card")).to_be_checked()
    fill_card_element(form)
    save = form.get_by_label("Save this card for future payments")
    expect(save).to_be_checked()
    form.get_by_role("button", name="Pay $250.00").click()

    page.wait_for_url(re.compile(re.escape(live_server) + r"/portal/payments/\d+$"))
    expect(page.get_by_text("Thank you! We received your payment of $250.00")).to_be_visible()
    payment_id = int(page.url.rsplit("/", 1)[1])

    received = wait_for_email(smtp, email, "Payment receipt")
    assert len(received) == 1, [str(m["Subject"]) for m in received]
    assert "250.00" in smtp.text(received[0])

    with app.app_context():
        inv = db.session.get(Invoice, invoice.id)
        assert inv.status == "paid" and inv.balance_cents == 0
        payment = db.session.get(Payment, payment_id)
        assert payment.customer_id == customer.id and payment.amount_cents == 25_000
        assert payment.card_last4 == "4242"
        cards = db.session.scalars(select(Card).where(Card.customer_id == customer.id)).all()
        assert len(cards) == 1, cards
        assert cards[0].removed_at is None and cards[0].last4 == "4242" and cards[0].is_default
        db.session.remove()
    assert _database_holds(app, CARD_NUMBER) == []


@pytest.mark.e2e
def test_admin_charges_saved_card_and_refunds_part(app, smtp, stripe_sandbox, live_server, page):
    from portal.extensions import db
    from portal.models import Invoice, Payment

    with app.app_context():
        factories.make_staff(role="admin", email=STAFF_EMAIL, name="Adam Admin")
        customer = factories.make_customer("Carl", "Charge", email="carl.charge@example.com")
        factories.make_card(customer.id)
        invoice = factories.make_invoice(customer, 30_000)

    staff_logs_in(page, live_server, STAFF_EMAIL)

    page.goto(f"{live_server}/admin/customers/{customer.id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Carl Charge")
    page.get_by_role("link", name="Charge card").click()
    expect(page).to_have_url(f"{live_server}/admin/customers/{customer.id}/charge")

    expect(page.get_by_label("Card", exact=True)).to_contain_text("Visa •••• 4242")
    expect(page.get_by_label("Apply to")).to_have_value(str(invoice.id))
    amount = page.get_by_label("Amount", exact=True)
    expect(amount).to_have_value("300.00")
    amount.fill("120.00")
    page.get_by_role("button", name="Charge card").click()

    page.wait_for_url(re.compile(re.escape(live_server) + r"/admin/payments/\d+$"))
    expect(page.get_by_role("status")).to_contain_text("Charged $120.00 to Visa •••• 4242")
    payment_id = int(page.url.rsplit("/", 1)[1])

    refund = page.locator("section", has=page.get_by_role("heading", name="Refund", exact=True))
    refund.get_by_label("Amount to refund").fill("20.00")
    refund.get_by_label("Reason").fill("Goodwill discount")
    refund.get_by_role("button", name="Refund").click()
    expect(page).to_have_url(f"{live_server}/admin/payments/{payment_id}")
    expect(page.get_by_role("status")).to_contain_text("Refunded $20.00")

    with app.app_context():
        payments = db.session.scalars(select(Payment).where(Payment.customer_id == customer.id)).all()
        assert [(p.id, p.amount_cents, p.refunded_cents) for p in payments] == [(payment_id, 12_000, 2_000)]
        invoice_row = db.session.get(Invoice, invoice.id)  # the refund is given back, not owed again
        assert (invoice_row.balance_cents, invoice_row.refunded_cents) == (18_000, 2_000)
        db.session.remove()

    r = requests.get(f"{stripe_sandbox['url']}/v1/refunds", headers={"Authorization": "Bearer sk_test_sandbox"},
                     timeout=10)
    r.raise_for_status()
    assert [x["amount"] for x in r.json()["data"]] == [2_000], r.json()
