"""E2E (Q-4 style): one office day for an admin, in headless Chromium at 1280 × 900, against the live server.

The admin logs in, creates a customer (C-1), works the client card (C-4 … C-7: a custom field, an internal
note, a logged call, a next-contact task), creates a job with one line (INV-1), schedules a visit, starts and
finishes the job, invoices it (INV-2) and sends the invoice. The customer gets the invoice email; its portal link
opened in a fresh browser context (no staff session, no cookies) logs the customer in on that very invoice.

A full-page screenshot of the finished client card goes to <repo>/test-artifacts/client-card.png.
"""
from __future__ import annotations

import re
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from tests import factories
from tests.helpers import close_checking_csp, staff_logs_in, wait_for_email, watch_csp

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"

STAFF_EMAIL = "owner.e2e@example.com"
STAFF_NAME = "Olivia Owner"
FIRST, LAST = "Jo", "Journey"
CUSTOMER_NAME = f"{FIRST} {LAST}"
CUSTOMER_EMAIL = "jo.e2e@example.com"
CUSTOMER_PHONE = "(555) 404-1212"
ADDRESS = {"Service address": "12 Elm Street", "City": "Springfield", "State / region": "CA", "Postal code": "90210"}
GATE_CODE = "#4512 then press bell"
NOTE = "Dog in the back yard: call before opening the side gate."
CONTACT_OUTCOME = "Called about the noisy condenser; wants a visit this week."
TASK_NOTE = "Confirm the visit window"
JOB_TITLE = "Condenser noise diagnosis"
LINE = "Diagnose and fix condenser fan"


def _render(app, source: str, **values) -> str:
    """Format a value with the app's own template filters (business time zone, English locale)."""
    from flask import render_template_string

    with app.test_request_context("/admin/", headers={"Accept-Language": "en-US"}):
        return render_template_string(source, **values)


def _flash(page, text: str) -> None:
    expect(page.get_by_role("status").filter(has_text=text)).to_be_visible()


@pytest.mark.e2e
def test_staff_journey_from_new_customer_to_invoice_in_portal(app, smtp, live_server, page, browser):
    from portal import clock
    from portal.extensions import db
    from portal.models import ContactLog, ContactTask, Customer, CustomerNote, CustomFieldValue, Invoice, Job, StaffUser
    from portal.services.crm import custom_fields

    ARTIFACTS.mkdir(exist_ok=True)

    # 1. An admin and one custom field, "Gate code" (text), defined in the app.
    with app.app_context():
        staff = factories.make_staff("admin", email=STAFF_EMAIL, name=STAFF_NAME)
        gate = custom_fields.define(label="Gate code", field_type="text", required=False, options=None,
                                    staff=db.session.get(StaffUser, staff.id))
        db.session.commit()
        gate_id = gate.id
        tz = clock.business_tz()
        local_now = clock.local_now(tz)
        task_local = (local_now + timedelta(days=1)).replace(hour=10, minute=30, second=0, microsecond=0)
        visit_day = clock.today(tz) + timedelta(days=2)
        db.session.remove()
    task_value = task_local.strftime("%Y-%m-%dT%H:%M")
    task_shown = _render(app, "{{ v|localdt('short') }}", v=task_local)
    visit_shown = _render(app, "{{ d|localdate('full') }}", d=visit_day)

    # 2. Staff login.
    staff_logs_in(page, live_server, STAFF_EMAIL)

    # 3. Customers → New customer → the form.
    page.get_by_role("navigation", name="Staff").get_by_role("link", name="Customers").click()
    page.get_by_role("link", name="New customer").click()
    expect(page).to_have_url(f"{live_server}/admin/customers/new")
    expect(page.get_by_role("heading", level=1)).to_have_text("New customer")
    page.get_by_label("First name").fill(FIRST)
    page.get_by_label("Last name").fill(LAST)
    page.get_by_label("Primary email").fill(CUSTOMER_EMAIL)
    page.get_by_label("Mobile phone").fill(CUSTOMER_PHONE)
    for label, value in ADDRESS.items():
        page.get_by_label(label, exact=True).fill(value)
    expect(page.get_by_label("Manager")).to_have_value(str(staff.id))  # the creator, by default
    page.get_by_role("button", name="Save customer").click()

    page.wait_for_url(re.compile(re.escape(live_server) + r"/admin/customers/\d+$"))
    customer_id = int(page.url.rsplit("/", 1)[1])
    card_url = f"{live_server}/admin/customers/{customer_id}"
    _flash(page, f"Customer {CUSTOMER_NAME} created.")
    expect(page.get_by_role("heading", level=1)).to_contain_text(CUSTOMER_NAME)
    general = page.locator("section", has=page.get_by_role("heading", name="General", exact=True))
    expect(general).to_contain_text(CUSTOMER_EMAIL)
    expect(general).to_contain_text(CUSTOMER_PHONE)
    expect(general).to_contain_text("12 Elm Street")

    # 4a. Custom field "Gate code".
    fields = page.get_by_role("region", name="Custom fields")
    fields.get_by_label("Gate code").fill(GATE_CODE)
    fields.get_by_role("button", name="Save fields").click()
    expect(page).to_have_url(f"{card_url}#fields")
    _flash(page, "Fields saved.")
    expect(page.get_by_role("region", name="Custom fields").get_by_label("Gate code")).to_have_value(GATE_CODE)

    # 4b. Internal note.
    notes = page.get_by_role("region", name="Internal notes")
    notes.get_by_label("New note").fill(NOTE)
    notes.get_by_role("button", name="Add note").click()
    expect(page).to_have_url(f"{card_url}#notes")
    _flash(page, "Note added.")
    expect(page.get_by_role("region", name="Internal notes").locator("li")).to_have_count(1)
    expect(page.get_by_role("region", name="Internal notes").locator("li")).to_contain_text(NOTE)
    expect(page.locator("#pinned-note")).to_contain_text(NOTE)  # the newest note is pinned on top

    # 4c. Contact log: a call with its outcome ("When" left empty: now).
    contacts = page.get_by_role("region", name="Contact log")
    contacts.get_by_label("How").select_option(label="Call")
    contacts.get_by_label("Outcome").fill(CONTACT_OUTCOME)
    contacts.get_by_role("button", name="Log contact").click()
    expect(page).to_have_url(f"{card_url}#contacts")
    _flash(page, "Contact logged.")
    logged = page.get_by_role("region", name="Contact log").locator("li")
    expect(logged).to_have_count(1)
    expect(logged).to_contain_text(f"call · {STAFF_NAME}")
    expect(logged).to_contain_text(CONTACT_OUTCOME)

    # 4d. Next-contact task, tomorrow 10:30 business time.
    task = page.get_by_role("region", name="Next contact")
    expect(task.get_by_text("No next contact scheduled.")).to_be_visible()
    task.get_by_label("When").fill(task_value)
    expect(task.get_by_label("When")).to_have_value(task_value)
    task.get_by_label("What about").fill(TASK_NOTE)
    task.get_by_role("button", name="Schedule").click()
    expect(page).to_have_url(f"{card_url}#task")
    _flash(page, "Next contact scheduled.")
    task = page.get_by_role("region", name="Next contact")
    expect(task).to_contain_text(task_shown)
    expect(task).to_contain_text(TASK_NOTE)
    expect(task.get_by_role("button", name="Replace task")).to_be_visible()
    expect(page.locator("#task-banner")).to_contain_text(f"Next contact {task_shown} · {STAFF_NAME} — {TASK_NOTE}")
    expect(page.locator("#task-banner")).not_to_have_attribute("data-overdue", "")

    with app.app_context():
        customer = db.session.get(Customer, customer_id)
        assert (customer.first_name, customer.last_name, customer.primary_email) == (FIRST, LAST, CUSTOMER_EMAIL)
        assert customer.manager_id == staff.id
        assert db.session.scalars(select(CustomFieldValue.value).where(
            CustomFieldValue.customer_id == customer_id, CustomFieldValue.field_id == gate_id)).all() == [GATE_CODE]
        assert [n.body for n in db.session.scalars(select(CustomerNote)
                                                   .where(CustomerNote.customer_id == customer_id))] == [NOTE]
        assert [(c.channel, c.outcome, c.staff_id) for c in db.session.scalars(
            select(ContactLog).where(ContactLog.customer_id == customer_id))] == [("call", CONTACT_OUTCOME, staff.id)]
        tasks = db.session.scalars(select(ContactTask).where(ContactTask.customer_id == customer_id)).all()
        assert [(t.note, t.assignee_id, t.done_at) for t in tasks] == [(TASK_NOTE, staff.id, None)]
        due = tasks[0].due_at
        due = due if due.tzinfo else due.replace(tzinfo=UTC)  # SQLite hands back naive UTC
        assert due == clock.to_utc(task_local), (due, task_local)
        db.session.remove()

    # 5. New job with one line.
    page.locator(".page-head").get_by_role("link", name="New job").click()
    expect(page).to_have_url(f"{live_server}/admin/customers/{customer_id}/jobs/new")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"New job for {CUSTOMER_NAME}")
    expect(page.get_by_label("Address", exact=True)).to_have_value(re.compile(r"^12 Elm Street"))
    page.get_by_label("Title", exact=True).fill(JOB_TITLE)
    page.get_by_label("Line 1 description").fill(LINE)
    page.get_by_label("Line 1 quantity").fill("1")
    page.get_by_label("Line 1 unit price").fill("180.00")
    page.get_by_role("button", name="Save job").click()

    page.wait_for_url(re.compile(re.escape(live_server) + r"/admin/jobs/\d+$"))
    job_id = int(page.url.rsplit("/", 1)[1])
    job_url = f"{live_server}/admin/jobs/{job_id}"
    _flash(page, "created. Schedule its visits below.")
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_contain_text(JOB_TITLE)
    expect(heading).to_contain_text("scheduled")
    expect(page.get_by_role("row", name=re.compile(re.escape(LINE)))).to_contain_text("$180.00")

    # The visit: two days ahead, 09:00–11:00.
    visit_form = page.locator("form", has=page.get_by_role("heading", name="Schedule a visit"))
    visit_form.get_by_label("Date").fill(visit_day.isoformat())
    visit_form.get_by_label("From (HH:MM)").fill("09:00")
    visit_form.get_by_label("To (HH:MM)").fill("11:00")
    visit_form.get_by_role("button", name="Add visit").click()
    expect(page).to_have_url(job_url)
    _flash(page, "Visit scheduled.")
    visits = page.locator("ul.visits > li")
    expect(visits).to_have_count(1)
    expect(visits).to_contain_text(visit_shown)
    expect(visits).to_contain_text("9:00")
    expect(visits).to_contain_text("11:00")

    # Start, then Finish (the job's buttons in the page head, not the visit's own "Start").
    head = page.locator(".page-head")
    head.get_by_role("button", name="Start job", exact=True).click()
    expect(page).to_have_url(job_url)
    _flash(page, "is now in progress.")
    expect(page.get_by_role("heading", level=1)).to_contain_text("in progress")
    head.get_by_role("button", name="Finish job", exact=True).click()
    _flash(page, "is now finished.")
    expect(page.get_by_role("heading", level=1)).to_contain_text("finished")
    expect(page.get_by_role("heading", name="Schedule a visit")).to_have_count(0)

    head.get_by_role("button", name="Invoice this job").click()
    page.wait_for_url(re.compile(re.escape(live_server) + r"/admin/invoices/\d+$"))
    invoice_id = int(page.url.rsplit("/", 1)[1])
    invoice_heading = page.get_by_role("heading", level=1)
    expect(invoice_heading).to_contain_text("draft")
    number = re.match(r"Invoice (\S+)", invoice_heading.inner_text()).group(1)
    _flash(page, f"Invoice {number} created from job")
    expect(page.get_by_role("row", name=re.compile(re.escape(LINE)))).to_contain_text("$180.00")
    expect(page.locator("dl.facts")).to_contain_text("$180.00")
    expect(page.get_by_role("row", name=re.compile(r"^Total"))).to_contain_text("$180.00")

    page.get_by_role("button", name="Send to customer").click()
    expect(page).to_have_url(f"{live_server}/admin/invoices/{invoice_id}")
    _flash(page, f"Invoice {number} sent to {CUSTOMER_EMAIL}.")
    expect(page.get_by_role("heading", level=1)).to_contain_text("open")
    expect(page.get_by_role("button", name="Resend to customer")).to_be_visible()

    with app.app_context():
        job = db.session.get(Job, job_id)
        assert (job.status, job.customer_id, [li.unit_price_cents for li in job.line_items]) == (
            "finished", customer_id, [18_000])
        assert len(job.visits) == 1
        invoice = db.session.get(Invoice, invoice_id)
        assert (invoice.number, invoice.status, invoice.total_cents, invoice.customer_id) == (
            number, "open", 18_000, customer_id)
        assert [j.id for j in invoice.jobs] == [job_id]
        db.session.remove()

    # Back on the client card: the job and the invoice are listed; the screenshot of the whole card.
    page.get_by_role("link", name=CUSTOMER_NAME).click()
    expect(page).to_have_url(card_url)
    expect(page.get_by_role("region", name="Jobs")).to_contain_text(JOB_TITLE)
    expect(page.get_by_role("region", name="Invoices")).to_contain_text(number)
    expect(page.get_by_role("region", name="Invoices")).to_contain_text("$180.00")
    shot = ARTIFACTS / "client-card.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.is_file() and shot.stat().st_size > 0

    # 6. The email, and its link in a fresh browser (the customer's).
    received = wait_for_email(smtp, CUSTOMER_EMAIL, number)
    assert [str(m["Subject"]) for m in received] == [f"Invoice {number} from Bright Air"]
    body = smtp.text(received[0])
    assert "$180.00" in body, body
    links = re.findall(re.escape(live_server) + r"/portal/magic/[A-Za-z0-9._\-]+", body)
    assert len(links) == 1, body

    customer_context = browser.new_context(viewport={"width": 1280, "height": 900})
    watch_csp(customer_context)
    try:
        customer_page = customer_context.new_page()
        customer_page.set_default_timeout(15_000)
        customer_page.goto(links[0])
        expect(customer_page).to_have_url(f"{live_server}/portal/invoices/{invoice_id}")
        expect(customer_page.get_by_role("heading", level=1)).to_contain_text(f"Invoice {number}")
        expect(customer_page.get_by_role("cell", name=LINE)).to_be_visible()
        expect(customer_page.get_by_role("row", name=re.compile(r"^Total"))).to_contain_text("$180.00")
        expect(customer_page.get_by_role("link", name="Pay $180.00")).to_be_visible()
    finally:
        close_checking_csp(customer_context)
