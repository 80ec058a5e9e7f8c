"""E2E: staff log in, create a customer, send the portal invitation; the customer opens the emailed link.

Covers S-1 (staff login), C-1 (new customer), A-1 (invitation email, text + HTML) and A-2/A-7
(the magic link logs the customer in and the token leaves the address bar).
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests import factories
from tests.helpers import close_checking_csp, staff_logs_in, wait_for_email, watch_csp

STAFF_EMAIL = "admin.e2e@brightair.test"
STAFF_NAME = "Erin Admin"
CUSTOMER_EMAIL = "ana.e2e@example.com"


@pytest.mark.e2e
def test_staff_invite_customer_opens_portal_link(app, smtp, live_server, page):
    with app.app_context():
        factories.make_staff(role="admin", email=STAFF_EMAIL, name=STAFF_NAME)

    # 1. Staff login → dashboard.
    staff_logs_in(page, live_server, STAFF_EMAIL)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Good day, {STAFF_NAME}")

    # 2. Customers → New customer → save.
    page.get_by_role("navigation", name="Staff").get_by_role("link", name="Customers").click()
    expect(page.get_by_role("heading", name="Customers", level=1)).to_be_visible()
    page.get_by_role("link", name="New customer").click()
    expect(page.get_by_role("heading", name="New customer", level=1)).to_be_visible()
    page.get_by_label("First name", exact=True).fill("Ana")
    page.get_by_label("Last name", exact=True).fill("Reyes")
    page.get_by_label("Primary email", exact=True).fill(CUSTOMER_EMAIL)
    page.get_by_role("button", name="Save customer").click()
    expect(page).to_have_url(re.compile(re.escape(live_server) + r"/admin/customers/\d+$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Ana Reyes")
    expect(page.get_by_role("status")).to_contain_text("Customer Ana Reyes created.")

    # 3. Send the portal invitation.
    page.get_by_role("button", name="Send portal invitation").click()
    expect(page.get_by_role("status")).to_have_text(f"Portal invitation sent to {CUSTOMER_EMAIL}.")

    # 4. The invitation email: text and HTML parts, a magic link to the live server.
    received = wait_for_email(smtp, CUSTOMER_EMAIL)
    assert len(received) == 1, [m["Subject"] for m in received]
    msg = received[0]
    assert msg["Subject"] == "Your customer portal at Bright Air"
    content_types = {part.get_content_type() for part in msg.walk()}
    assert {"text/plain", "text/html"} <= content_types, content_types
    text_body = smtp.text(msg)
    html_body = smtp.html(msg)
    assert "Hello Ana," in text_body
    links = re.findall(re.escape(live_server) + r"/portal/magic/[A-Za-z0-9._\-]+", text_body)
    assert len(links) == 1, text_body
    link = links[0]
    assert link in html_body, "the HTML part should carry the same link"

    # 5. The customer opens the link in their own browser context.
    customer_ctx = page.context.browser.new_context(viewport={"width": 1280, "height": 900})
    watch_csp(customer_ctx)
    try:
        customer_page = customer_ctx.new_page()
        customer_page.set_default_timeout(15_000)
        customer_page.goto(link)
        expect(customer_page).to_have_url(f"{live_server}/portal/")
        assert "/magic/" not in customer_page.url
        expect(customer_page.get_by_role("heading", level=1)).to_have_text("Hello, Ana")
    finally:
        close_checking_csp(customer_ctx)
