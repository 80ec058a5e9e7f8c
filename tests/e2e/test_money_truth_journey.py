"""Issue 19 in headless Chromium on a phone (375 × 812): a customer with a failed plan payment and an open invoice
sees one balance and one "Pay $X" on the home page, first tries a card that is declined (it does not stay in the
wallet nor at Stripe), then pays everything with a new card in one PaymentIntent; the home page, the client card
and the overdue dashboard then show nothing owed."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
import requests
from playwright.sync_api import expect
from sqlalchemy import select

from tests import factories
from tests.helpers import (
    close_checking_csp,
    fill_card_element,
    sandbox_intents,
    staff_logs_in,
    wait_for_email,
    watch_csp,
)

PHONE = {"width": 375, "height": 812}
DECLINED = "4000000000000341"  # attaches, then every charge is declined
STAFF_EMAIL = "admin.money.e2e@brightair.test"
FITS = "document.documentElement.scrollWidth <= window.innerWidth + 1"


def _setup(app) -> dict:
    from portal import clock

    with app.app_context():
        factories.make_staff(role="admin", email=STAFF_EMAIL, name="Mona Money")
        customer = factories.make_customer("Dora", "Debtless", email="dora.debtless@example.com")
        invoice = factories.make_invoice(customer, 8_700, number="INV-1987",
                                         due_date=clock.today() - timedelta(days=5))
        plan = factories.make_plan(customer, price_cents=1_999,
                                   payments=[(clock.today() - timedelta(days=3), "failed")])
        from portal.extensions import db
        from portal.models import PlanPayment

        row = db.session.scalars(select(PlanPayment).where(PlanPayment.plan_id == plan.id)).one()
        row.next_retry_at = clock.now() + timedelta(hours=20)  # dunning would try again tomorrow
        row.first_failed_at = clock.now() - timedelta(days=3)
        row.failure_code = "insufficient_funds"
        db.session.commit()
        ids = {"customer": customer.id, "invoice": invoice.id, "plan": plan.id, "row": row.id}
        db.session.remove()
    return ids


def _sandbox_cards(stripe_sandbox, stripe_customer: str) -> list[str]:
    r = requests.get(f"{stripe_sandbox['url']}/v1/payment_methods",
                     params={"customer": stripe_customer, "type": "card"},
                     headers={"Authorization": "Bearer sk_test_sandbox"}, timeout=10)
    r.raise_for_status()
    return [pm["card"]["last4"] for pm in r.json()["data"]]


@pytest.mark.e2e
def test_pay_everything_owed_with_one_tap_on_a_phone(app, smtp, stripe_sandbox, live_server, browser):
    from portal.extensions import db
    from portal.models import Card, Customer, Invoice, PlanPayment
    from portal.services.platform import magic_links

    ids = _setup(app)
    context = browser.new_context(viewport=PHONE)
    watch_csp(context)
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        with app.app_context():
            link = magic_links.portal_link(db.session.get(Customer, ids["customer"]))
            db.session.commit()
        page.goto(link)
        expect(page).to_have_url(f"{live_server}/portal/")

        # Home: one balance for the invoice and the failed plan payment, never "all paid up".
        balance = page.locator("section.balance")
        expect(balance.locator("[data-balance]")).to_have_text("$106.99")
        expect(page.get_by_text("You are all paid up")).to_have_count(0)
        past_due = page.locator("section", has=page.get_by_role("heading", name="Past due"))
        expect(past_due).to_contain_text("INV-1987")
        expect(past_due).to_contain_text("Comfort Club")
        assert page.evaluate(FITS), "the home page scrolls sideways at 375 px"
        balance.get_by_role("link", name="Pay $106.99").click()

        # Pay all: both lines, one total; a declined new card first.
        expect(page).to_have_url(f"{live_server}/portal/invoices/pay-all")
        expect(page.locator("[data-invoice='INV-1987']")).to_contain_text("$87.00")
        expect(page.locator("[data-invoice='INV-1987']")).to_contain_text("Overdue")
        expect(page.locator(f"[data-plan-payment='{ids['row']}']")).to_contain_text("$19.99")
        assert page.evaluate(FITS), "the pay-all page scrolls sideways at 375 px"
        form = page.locator("form[data-card-form]")
        expect(form.get_by_role("radio", name="A new card")).to_be_checked()
        button = form.get_by_role("button", name="Pay $106.99")
        # the card form's script has run (it mounts the card element, then takes over the submit): on a loaded
        # machine a click before that was a plain form post, and the sentence below never appeared
        expect(form.locator("[data-card-element]").get_by_placeholder("number", exact=True)).to_be_visible()
        button.click()  # nothing typed yet: a plain sentence, no JavaScript error, the button works again
        expect(form.locator("[data-card-errors]")).to_have_text(
            "Enter the card number, expiry date, security code and postal code.")
        expect(button).to_be_enabled()
        fill_card_element(form, number=DECLINED)
        expect(form.get_by_label("Save this card for future payments")).to_be_checked()
        button.click()
        expect(page.locator("[data-outcome=declined]")).to_be_visible()

        with app.app_context():
            customer = db.session.get(Customer, ids["customer"])
            stripe_customer = customer.stripe_customer_id
            kept = db.session.scalars(select(Card).where(Card.customer_id == customer.id,
                                                         Card.removed_at.is_(None))).all()
            assert kept == [], [(c.last4, c.added_by) for c in kept]  # not in the wallet, never the default
            db.session.remove()
        assert stripe_customer and _sandbox_cards(stripe_sandbox, stripe_customer) == []  # detached at Stripe

        # The good card pays everything in one charge.
        form = page.locator("form[data-card-form]")
        expect(form.get_by_role("radio")).to_have_count(1)  # the declined card is not offered
        fill_card_element(form)
        form.get_by_role("button", name="Pay $106.99").click()
        page.wait_for_url(re.compile(re.escape(live_server) + r"/portal/payments/\d+$"))
        receipt = page.locator("dl.facts")
        expect(receipt).to_contain_text("INV-1987")
        expect(receipt.locator("[data-plan-payment]")).to_contain_text("Comfort Club")
        expect(receipt.locator("[data-still-owed]")).to_contain_text("Nothing")
        assert page.evaluate(FITS), "the receipt scrolls sideways at 375 px"
        [email] = wait_for_email(smtp, "dora.debtless@example.com", "Payment receipt")
        assert "INV-1987" in smtp.text(email) and "Comfort Club" in smtp.text(email), smtp.text(email)

        page.goto(f"{live_server}/portal/")
        expect(page.locator("[data-balance]")).to_have_text("$0.00")
        expect(page.get_by_text("You are all paid up. Thank you!")).to_be_visible()
        expect(page.get_by_role("heading", name="Past due")).to_have_count(0)

        # Staff: no banner on the client card, nothing owed, nothing on the overdue dashboard.
        staff = context.new_page()
        staff.set_viewport_size({"width": 1280, "height": 900})
        staff_logs_in(staff, live_server, STAFF_EMAIL)
        staff.goto(f"{live_server}/admin/customers/{ids['customer']}")
        expect(staff.locator("#plan-banner")).to_have_count(0)
        expect(staff.locator("[data-owed-total]")).to_have_text("$0.00")
        staff.goto(f"{live_server}/admin/overdue")
        expect(staff.get_by_role("heading", level=1)).to_be_visible()
        expect(staff.locator("main")).not_to_contain_text("Debtless")
    finally:
        close_checking_csp(context)

    succeeded = [pi for pi in sandbox_intents(stripe_sandbox) if pi["status"] == "succeeded"]
    assert [pi["amount"] for pi in succeeded] == [10_699]
    with app.app_context():
        row = db.session.get(PlanPayment, ids["row"])
        assert (row.status, row.next_retry_at) == ("paid", None)  # its dunning is over
        assert db.session.get(Invoice, ids["invoice"]).status == "paid"
        [card] = db.session.scalars(select(Card).where(Card.customer_id == ids["customer"],
                                                       Card.removed_at.is_(None))).all()
        assert (card.last4, card.is_default) == ("4242", True)  # the card that paid is saved, as asked
        db.session.remove()
