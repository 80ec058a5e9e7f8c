"""INV-3, INV-4, INV-7: the automatic-invoicing journey in headless Chromium against the live server, the SMTP
capture server and the localstripe sandbox.

1. Staff log in, open the client card and turn on MONTHLY automatic invoicing in the Financial section, then finish
   the customer's two jobs with the job pages' "Finish job" buttons.
2. The job runner runs on the next cadence date (the 1st of next month, 08:00 business time): the customer gets ONE
   email with the two invoices attached as separate PDFs (invoice-<number>.pdf, each naming its number).
3. The customer, in a fresh browser, clicks the email's "Pay all" link, sees both invoices and the total, pays with a
   NEW card typed into the Stripe.js card element and lands on the receipt listing both invoices.
4. One PaymentIntent of the sum reached the sandbox, both invoices are paid, and the client card (staff browser)
   shows no open invoices.
"""
from __future__ import annotations

import io
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from tests import factories
from tests.helpers import close_checking_csp, fill_card_element, sandbox_intents, staff_logs_in, watch_csp

LA = ZoneInfo("America/Los_Angeles")  # the business time zone (config default)
CARD_NUMBER = "4242424242424242"
STAFF_EMAIL = "admin.autoinv.e2e@brightair.test"
CUSTOMER_EMAIL = "ines.invoiced@example.com"


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages)


@pytest.mark.e2e
def test_monthly_auto_invoicing_email_then_customer_pays_all_with_new_card(app, smtp, stripe_sandbox, live_server,
                                                                           page, browser, frozen_clock):
    from portal.extensions import db
    from portal.models import (
        ChargeAttempt,
        Customer,
        Invoice,
        Job,
        Payment,
        PaymentAllocation,
    )
    from portal.services.platform import scheduler

    frozen_clock.set(datetime(2026, 3, 2, 9, 0, tzinfo=LA))
    with app.app_context():
        factories.make_staff(role="admin", email=STAFF_EMAIL, name="Ivy Invoicer")
        customer = factories.make_customer("Ines", "Invoiced", email=CUSTOMER_EMAIL)
        job_a = factories.make_job(customer, "AC tune-up", visit_in_days=-1)
        job_b = factories.make_job(customer, "Duct cleaning", visit_in_days=-1)
        db.session.get(Job, job_b.id).line_items[0].unit_price_cents = 9_500  # two different amounts
        db.session.commit()
        db.session.remove()
    expected_total = 15_000 + 9_500

    # 1. Staff: log in, the client card, monthly automatic invoicing, then finish both jobs
    staff_logs_in(page, live_server, STAFF_EMAIL)

    card_url = f"{live_server}/admin/customers/{customer.id}"
    page.goto(card_url)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Ines Invoiced")
    financial = page.locator("section#financial")
    expect(financial.locator("[data-auto-invoicing]")).to_have_text("off")
    financial.get_by_label("Automatic invoicing").select_option(label="Monthly (on the 1st)")
    financial.locator("form", has=page.get_by_label("Automatic invoicing")).get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Automatic invoicing: monthly (on the 1st). "
                                                       "Next email on 2026-04-01")
    financial = page.locator("section#financial")
    expect(financial.locator("[data-auto-invoicing]")).to_contain_text("Monthly (on the 1st)")
    expect(financial.get_by_label("Automatic invoicing")).to_have_value("monthly")
    with app.app_context():
        row = db.session.get(Customer, customer.id)
        assert row.auto_invoice_cadence == "monthly" and row.auto_invoice_enabled_at is not None
        db.session.remove()

    frozen_clock.set(datetime(2026, 3, 5, 14, 0, tzinfo=LA))  # the work is done a few days later
    for job in (job_a, job_b):
        page.goto(card_url)
        page.locator("section#jobs").get_by_role("link", name=job.number, exact=True).click()
        expect(page).to_have_url(f"{live_server}/admin/jobs/{job.id}")
        page.get_by_role("button", name="Finish job").click()
        expect(page.get_by_role("status")).to_contain_text(f"Job {job.number} is now finished.")
        expect(page.get_by_role("heading", level=1)).to_contain_text("finished")
    with app.app_context():
        assert [db.session.get(Job, j.id).status for j in (job_a, job_b)] == ["finished", "finished"]
        assert db.session.scalars(select(Invoice).where(Invoice.customer_id == customer.id)).all() == []
        db.session.remove()
    assert smtp.messages == []  # nothing is emailed before the cadence date

    # 2. The job runner on the next cadence date: one email, both invoices attached
    with app.app_context():
        scheduler.run_due(datetime(2026, 3, 31, 8, 0, tzinfo=LA))  # the day before: not yet
        db.session.remove()
    assert smtp.messages == []
    with app.app_context():
        result = scheduler.run_due(datetime(2026, 4, 1, 8, 0, tzinfo=LA))
        assert result["auto_invoicing"] == {"sent": 1}, result
        db.session.remove()
    frozen_clock.set(datetime(2026, 4, 1, 8, 5, tzinfo=LA))  # the customer reads it a few minutes later
    with app.app_context():
        rows = db.session.scalars(select(Invoice).where(Invoice.customer_id == customer.id)
                                  .order_by(Invoice.id)).all()
        assert [(sorted(j.id for j in i.jobs), i.total_cents, i.status) for i in rows] == [
            ([job_a.id], 15_000, "open"), ([job_b.id], 9_500, "open")]
        numbers = [i.number for i in rows]
        invoice_ids = [i.id for i in rows]
        assert all(i.auto_invoiced_at is not None for i in rows)
        db.session.remove()

    received = smtp.to(CUSTOMER_EMAIL)
    assert len(received) == 1 and len(smtp.messages) == 1, [(str(m["To"]), str(m["Subject"])) for m in smtp.messages]
    email = received[0]
    assert str(email["Subject"]) == "Your invoices from Bright Air"
    body = smtp.text(email)
    for number in numbers:
        assert f"Invoice {number}" in body
    assert "$245.00" in body
    attachments = list(email.iter_attachments())
    assert sorted(a.get_filename() for a in attachments) == sorted(f"invoice-{n}.pdf" for n in numbers)
    for attachment in attachments:
        assert attachment.get_content_type() == "application/pdf"
        data = attachment.get_content()
        assert data.startswith(b"%PDF")
        number = attachment.get_filename()[len("invoice-"):-len(".pdf")]
        text = _pdf_text(data)
        assert number in text
        assert next(n for n in numbers if n != number) not in text  # each invoice in its own PDF

    # 3. The customer, in a browser of their own: the email's "Pay all" link, then a new card
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    watch_csp(context)
    try:
        customer_page = context.new_page()
        customer_page.set_default_timeout(15_000)
        customer_page.set_content(smtp.html(email))
        pay_all_link = customer_page.get_by_role("link", name="Pay all of them at once")
        assert pay_all_link.get_attribute("href").startswith(f"{live_server}/portal/magic/")
        pay_all_link.click()
        ids = ",".join(str(i) for i in invoice_ids)
        customer_page.wait_for_url(re.compile(re.escape(f"{live_server}/portal/invoices/pay-all?ids=") +
                                              re.escape(ids).replace(",", "(,|%2C)") + "$"))
        expect(customer_page.get_by_role("heading", level=1)).to_have_text("Pay all")
        expect(customer_page.get_by_role("heading", name="What you pay")).to_be_visible()
        for number, amount in zip(numbers, ("$150.00", "$95.00")):
            row = customer_page.locator(f'[data-invoice="{number}"]')
            expect(row).to_contain_text(number)
            expect(row).to_contain_text(amount)
        expect(customer_page.locator("[data-total]")).to_have_text("$245.00")

        form = customer_page.locator("form[data-card-form]")
        pay_with = form.get_by_role("group", name="Pay with")
        expect(pay_with.get_by_role("radio")).to_have_count(1)  # no card on file: only "A new card"
        expect(pay_with.get_by_role("radio", name="A new card")).to_be_checked()
        fill_card_element(form)
        form.get_by_role("button", name="Pay $245.00").click()

        customer_page.wait_for_url(re.compile(re.escape(live_server) + r"/portal/payments/\d+$"))
        expect(customer_page.get_by_role("status")).to_contain_text("Thank you! We received your payment of $245.00")
        payment_id = int(customer_page.url.rsplit("/", 1)[1])
        for number, amount in zip(numbers, ("$150.00", "$95.00")):
            line = customer_page.locator("dd", has=customer_page.get_by_role("link", name=number, exact=True))
            expect(line).to_contain_text(f"{number}: {amount}")
            expect(line).to_contain_text("balance left $0.00")
    finally:
        close_checking_csp(context)

    # 4. One charge of the sum; both invoices paid by that one payment
    intents = sandbox_intents(stripe_sandbox)
    assert [(pi["amount"], pi["status"]) for pi in intents] == [(expected_total, "succeeded")], intents
    with app.app_context():
        payment = db.session.get(Payment, payment_id)
        assert (payment.customer_id, payment.amount_cents, payment.card_last4) == (customer.id, expected_total, "4242")
        attempt = db.session.get(ChargeAttempt, payment.charge_attempt_id)
        assert (attempt.purpose, attempt.stripe_payment_intent_id) == ("invoices", intents[0]["id"])
        assert sorted((s.invoice_id, s.amount_cents) for s in attempt.invoice_shares) == list(
            zip(invoice_ids, (15_000, 9_500)))
        allocations = db.session.scalars(select(PaymentAllocation).where(PaymentAllocation.payment_id == payment_id)
                                         .order_by(PaymentAllocation.invoice_id)).all()
        assert [(a.invoice_id, a.amount_cents) for a in allocations] == list(zip(invoice_ids, (15_000, 9_500)))
        for invoice_id in invoice_ids:
            invoice = db.session.get(Invoice, invoice_id)
            assert (invoice.status, invoice.paid_cents, invoice.balance_cents) == ("paid", invoice.total_cents, 0)
        db.session.remove()

    # The client card in the staff browser: nothing open any more
    page.goto(card_url)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Ines Invoiced")
    expect(page.get_by_role("heading", name="Open invoices")).to_have_count(0)
    expect(page.locator("section#money input[name=invoice_id]")).to_have_count(0)
    outstanding = page.locator("section#financial dt", has_text="Outstanding").locator("xpath=following-sibling::dd[1]")
    expect(outstanding).to_have_text("$0.00")
    invoices = page.locator("section#invoices li")
    expect(invoices).to_have_count(2)
    for number in numbers:
        expect(invoices.filter(has_text=number)).to_contain_text("paid")
        expect(invoices.filter(has_text=number).locator(".status")).to_have_text("paid")
