"""E2E: a customer on a phone (375 × 812) goes through the portal with an emailed login link.

Covers A-5/A-2 (request a login link, open it from the email), P-2 (invoice detail and its PDF),
P-5 (approve an estimate without a deposit by typing a name), P-6 ("Send message" from the top bar,
staff notified by email), and the layout at phone and desktop widths: no horizontal scroll at 375 px,
full-page screenshots of the home page at 375 px and 1280 px in <repo>/test-artifacts/.
"""
from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from tests import factories
from tests.helpers import close_checking_csp, wait_for_email, watch_csp

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"

CUSTOMER_FIRST, CUSTOMER_LAST = "Nora", "Phoneby"
CUSTOMER_NAME = f"{CUSTOMER_FIRST} {CUSTOMER_LAST}"
CUSTOMER_EMAIL = "nora.phoneby@example.com"
CUSTOMER_PHONE = "(555) 301-7788"
STAFF_EMAIL = "admin.phone.e2e@brightair.test"
INVOICE_NUMBER = "INV-9001"
ESTIMATE_NUMBER = "E-9001"
ESTIMATE_TITLE = "Ductless mini-split install"
JOB_NUMBER = "J-9001"
JOB_TITLE = "Spring AC tune-up"
MESSAGE_BODY = "Could the technician call 20 minutes before arriving? The gate code is 4512."

PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 800}
NO_HORIZONTAL_SCROLL = "document.documentElement.scrollWidth <= window.innerWidth + 1"


def _wait_for_email(smtp, subject_start: str, address: str | None = None, timeout: float = 10.0):
    return [m for m in wait_for_email(smtp, address, subject_start, timeout)
            if str(m["Subject"]).startswith(subject_start)]


def _assert_no_horizontal_scroll(page, what: str) -> None:
    fits = page.evaluate(NO_HORIZONTAL_SCROLL)
    if not fits:
        widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        wide = page.evaluate("""() => [...document.querySelectorAll('body *')]
            .filter(el => el.getBoundingClientRect().right > window.innerWidth + 1)
            .slice(0, 8).map(el => el.tagName.toLowerCase() + (el.className ? '.' + el.className : ''))""")
        raise AssertionError(f"{what} scrolls sideways at {PHONE['width']} px: scrollWidth/innerWidth = {widths}; "
                             f"wider elements: {wide}")


def _screenshot(page, name: str) -> Path:
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    assert path.is_file() and path.stat().st_size > 0, path
    return path


def _setup(app):
    """A customer with an open invoice, one upcoming visit and a sent estimate without a deposit."""
    from portal import clock
    from portal.extensions import db
    from portal.models import Estimate, EstimateLineItem, Job, JobLineItem, Visit

    with app.app_context():
        customer = factories.make_customer(CUSTOMER_FIRST, CUSTOMER_LAST, email=CUSTOMER_EMAIL, phone=CUSTOMER_PHONE)
        invoice = factories.make_invoice(customer, number=INVOICE_NUMBER,
                                         lines=[("Diagnostic visit", 8_900), ("Capacitor replacement", 16_500)])
        now = clock.now()
        start = (now + timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
        job = Job(customer_id=customer.id, number=JOB_NUMBER, title=JOB_TITLE, status="scheduled",
                  address="1 Oak St, Springfield")
        job.line_items.append(JobLineItem(description=JOB_TITLE, quantity=1, unit_price_cents=12_900))
        job.visits.append(Visit(starts_at=start, ends_at=start + timedelta(hours=2), status="scheduled"))
        estimate = Estimate(customer_id=customer.id, number=ESTIMATE_NUMBER, title=ESTIMATE_TITLE, status="sent",
                            sent_at=now - timedelta(days=1), deposit_cents=0,
                            valid_until=clock.today() + timedelta(days=30))
        estimate.line_items.append(EstimateLineItem(description="Mini-split, 18k BTU, installed", quantity=1,
                                                    unit_price_cents=389_000, position=0))
        estimate.line_items.append(EstimateLineItem(description="Line set cover", quantity=2,
                                                    unit_price_cents=6_500, position=1))
        db.session.add_all([job, estimate])
        db.session.commit()
        ids = {"customer": customer.id, "invoice": invoice.id, "estimate": estimate.id}
        db.session.remove()
    return ids


@pytest.mark.e2e
def test_customer_portal_journey_on_a_phone(app, smtp, live_server, browser):
    from portal.extensions import db
    from portal.models import Customer, Estimate, MessageRequest
    from portal.services.crm import messages

    ARTIFACTS.mkdir(exist_ok=True)
    ids = _setup(app)

    context = browser.new_context(viewport=PHONE, accept_downloads=True)
    watch_csp(context)
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)

        # 1. Ask for a login link; open the one that arrives by email.
        page.goto(f"{live_server}/portal/login")
        page.get_by_label("Email address").fill(CUSTOMER_EMAIL)
        page.get_by_role("button", name="Email me a login link").click()
        expect(page).to_have_url(f"{live_server}/portal/login/sent")
        expect(page.get_by_role("heading", level=1)).to_have_text("Check your email")

        received = _wait_for_email(smtp, "Your login link", CUSTOMER_EMAIL)
        assert len(received) == 1, [str(m["Subject"]) for m in received]
        links = re.findall(re.escape(live_server) + r"/portal/magic/[A-Za-z0-9._\-]+", smtp.text(received[0]))
        assert len(links) == 1, smtp.text(received[0])
        page.goto(links[0])
        expect(page).to_have_url(f"{live_server}/portal/")
        expect(page.get_by_role("heading", level=1)).to_have_text(f"Hello, {CUSTOMER_FIRST}")

        # The home page shows what was set up, fits the phone, and gets a screenshot.
        expect(page.locator("[data-balance]")).to_have_text("$254.00")
        visit_card = page.locator("section", has=page.get_by_role("heading", name="Next appointment"))
        expect(visit_card).to_contain_text(JOB_TITLE)
        estimates_card = page.locator("section", has=page.get_by_role("heading", name="Open estimates"))
        expect(estimates_card.get_by_role("link", name=ESTIMATE_TITLE)).to_be_visible()
        _assert_no_horizontal_scroll(page, "the home page")
        _screenshot(page, "portal-home-375.png")
        # The same page at desktop width, then back to the phone.
        page.set_viewport_size(DESKTOP)
        expect(page.locator("nav.sidenav ul")).to_have_css("display", "block")  # the wide layout is in effect
        _screenshot(page, "portal-home-1280.png")
        page.set_viewport_size(PHONE)
        expect(page.locator("nav.sidenav ul")).to_have_css("display", "flex")

        nav = page.get_by_role("navigation", name="Portal")

        # 2. Invoices → the invoice → its PDF.
        nav.get_by_role("link", name="Invoices").click()
        expect(page).to_have_url(re.compile(re.escape(live_server) + r"/portal/invoices(\?.*)?$"))
        page.get_by_role("link", name=f"Invoice {INVOICE_NUMBER}", exact=True).click()
        expect(page).to_have_url(f"{live_server}/portal/invoices/{ids['invoice']}")
        expect(page.get_by_role("heading", level=1)).to_contain_text(f"Invoice {INVOICE_NUMBER}")
        expect(page.get_by_role("cell", name="Capacitor replacement")).to_be_visible()
        _assert_no_horizontal_scroll(page, "the invoice page")

        with page.expect_download() as download_info:
            page.get_by_role("link", name="Download PDF").click()
        download = download_info.value
        assert download.suggested_filename == f"invoice-{INVOICE_NUMBER}.pdf", download.suggested_filename
        pdf_path = ARTIFACTS / f"invoice-{INVOICE_NUMBER}.pdf"
        download.save_as(str(pdf_path))
        data = pdf_path.read_bytes()
        assert data.startswith(b"%PDF"), data[:20]
        from pypdf import PdfReader

        pdf_text = "\n".join(p.extract_text() or "" for p in PdfReader(str(pdf_path)).pages)
        assert INVOICE_NUMBER in pdf_text, pdf_text[:1000]

        # 3. Estimates → the estimate → approve it with a typed name.
        nav.get_by_role("link", name="Estimates").click()
        expect(page).to_have_url(f"{live_server}/portal/estimates")
        page.get_by_role("link", name=f"{ESTIMATE_NUMBER} · {ESTIMATE_TITLE}").click()
        expect(page).to_have_url(f"{live_server}/portal/estimates/{ids['estimate']}")
        expect(page.get_by_role("heading", level=1)).to_contain_text(f"Estimate {ESTIMATE_NUMBER}")
        _assert_no_horizontal_scroll(page, "the estimate page")

        page.get_by_label("Type your full name to sign").fill(CUSTOMER_NAME)
        page.get_by_role("button", name="Approve estimate").click()
        expect(page).to_have_url(f"{live_server}/portal/estimates/{ids['estimate']}")
        expect(page.locator("[data-estimate=approved]")).to_contain_text(f"Approved by {CUSTOMER_NAME}")
        expect(page.get_by_role("button", name="Approve estimate")).to_have_count(0)
        _assert_no_horizontal_scroll(page, "the approved estimate page")

        with app.app_context():
            estimate = db.session.get(Estimate, ids["estimate"])
            assert estimate.status == "approved", estimate.status
            assert estimate.approved_name == CUSTOMER_NAME
            assert estimate.approved_ip == "127.0.0.1"
            assert estimate.approved_at is not None
            db.session.remove()

        # 4. "Send message" in the top bar: name and phone prefilled; staff get an email.
        with app.app_context():
            factories.make_staff(role="admin", email=STAFF_EMAIL, name="Adele Admin")
            # The customer has no manager and the test business has no email: the admins are told.
            recipients = messages.staff_recipients(db.session.get(Customer, ids["customer"]))
            db.session.remove()
        assert recipients == [STAFF_EMAIL], recipients

        page.locator("header.topbar").get_by_role("link", name="Send message").click()
        expect(page).to_have_url(f"{live_server}/portal/messages/new")
        expect(page.get_by_label("Your name")).to_have_value(CUSTOMER_NAME)
        expect(page.get_by_label("Phone (optional)")).to_have_value(CUSTOMER_PHONE)
        page.get_by_label("Message", exact=True).fill(MESSAGE_BODY)
        page.locator("main").get_by_role("button", name="Send message").click()

        expect(page).to_have_url(f"{live_server}/portal/messages")
        expect(page.get_by_role("status")).to_contain_text("Your message was sent")
        expect(page.locator("ul.messages > li")).to_have_count(1)
        expect(page.locator("ul.messages .message-body")).to_have_text(MESSAGE_BODY)
        _assert_no_horizontal_scroll(page, "the messages page")

        with app.app_context():
            rows = db.session.scalars(select(MessageRequest)
                                      .where(MessageRequest.customer_id == ids["customer"])).all()
            assert [(m.kind, m.name, m.phone, m.body, m.status) for m in rows] == [
                ("message", CUSTOMER_NAME, CUSTOMER_PHONE, MESSAGE_BODY, "new")]
            db.session.remove()

        subject = f"New message from {CUSTOMER_NAME}"
        for address in recipients:
            notified = _wait_for_email(smtp, "New message from", address)
            assert [str(m["Subject"]) for m in notified] == [subject]
            assert MESSAGE_BODY in smtp.text(notified[0])
    finally:
        close_checking_csp(context)
