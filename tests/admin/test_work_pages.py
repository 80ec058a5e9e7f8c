"""INV-1, INV-2, INV-7, P-5 (staff side): jobs and visits, estimates, invoices through the admin pages.

Everything goes through the real pages (CSRF included), the database and the SMTP capture.
"""
from __future__ import annotations

import html as htmllib
import re
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import event, func, select

from portal import clock
from portal.extensions import db
from portal.models import Estimate, Invoice, Job, Visit
from tests.factories import make_customer, make_invoice, make_job, make_staff
from tests.helpers import csrf_token_from

MAGIC = re.compile(r"http://portal\.test(/portal/magic/[A-Za-z0-9_.\-]+)")


# --- helpers ---------------------------------------------------------------------------------------------

def _text(response) -> str:
    return htmllib.unescape(response.get_data(True))


def _csrf(client, url: str) -> tuple[str, str]:
    r = client.get(url)
    assert r.status_code == 200, (url, r.status_code, r.get_data(True)[:500])
    page = r.get_data(True)
    return htmllib.unescape(page), csrf_token_from(page)


def _lines(*rows) -> dict:
    data = {}
    for n, (description, quantity, price) in enumerate(rows):
        data[f"line-{n}-description"] = description
        data[f"line-{n}-quantity"] = quantity
        data[f"line-{n}-price"] = price
    return data


def _count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def _utc(value: datetime) -> datetime:
    """Stored datetimes as aware UTC, whatever the backend hands back."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _staff(app):
    with app.app_context():
        return make_staff("admin", email=f"boss{next(_n)}@example.com", name="Olga Boss")


_n = iter(range(1, 10_000))


def _set_terms(app, *, due_days: int = 21, tax_bp: int = 0) -> None:
    from portal.services.platform import settings

    with app.app_context():
        row = settings.ensure()
        row.invoice_due_days, row.default_tax_bp = due_days, tax_bp
        db.session.commit()


def _magic_path(smtp, address: str, subject_start: str | None = None) -> tuple[object, str]:
    mails = smtp.to(address)
    if subject_start:
        mails = [m for m in mails if str(m["Subject"]).startswith(subject_start)]
    assert mails, [str(m["Subject"]) for m in smtp.messages]
    msg = mails[-1]
    m = MAGIC.search(smtp.text(msg))
    assert m, smtp.text(msg)
    assert m.group(1) in smtp.html(msg)  # the HTML part carries the same link
    return msg, m.group(1)


# --- 1. Jobs and visits (INV-1) ---------------------------------------------------------------------------

def test_job_created_with_lines_visits_in_business_time_and_status_flow(app, client, login_staff, frozen_clock):
    staff = _staff(app)
    with app.app_context():
        customer = make_customer("Ana", "Diaz", email="ana.diaz@example.com")
        tech = make_staff("technician", email="tech1@example.com", name="Tomas Tech")
    login_staff(staff)

    page, csrf = _csrf(client, f"/admin/customers/{customer.id}/jobs/new")
    assert "Oak St" in page  # the service address is filled in
    r = client.post(f"/admin/customers/{customer.id}/jobs/new", data={
        "csrf_token": csrf, "title": "Replace condenser fan", "description": "Noisy fan", "address": "12 Oak St",
        "technician_id": str(tech.id), **_lines(("Fan motor", "1", "189.90"), ("Labor", "2", "85"))})
    assert r.status_code == 302, _text(r)[:1500]
    job_url = urlsplit(r.headers["Location"]).path
    with app.app_context():
        job = db.session.scalars(select(Job)).one()
        job_id = job.id
        assert job_url == f"/admin/jobs/{job_id}"
        assert (job.title, job.status, job.customer_id, job.technician_id) == \
            ("Replace condenser fan", "scheduled", customer.id, tech.id)
        assert [(li.description, li.quantity, li.unit_price_cents) for li in job.line_items] == \
            [("Fan motor", 1, 18_990), ("Labor", 2, 8_500)]
        assert job.total_cents == 35_990
        tz = clock.business_tz()
    page = _text(client.get(job_url))
    assert "Replace condenser fan" in page and "$359.90" in page and "No visits yet." in page

    # A visit typed in the business's local time is stored in UTC.
    r = client.post(f"{job_url}/visits", data={"csrf_token": csrf, "day": "2026-03-10", "start": "09:30",
                                               "end": "11:15", "technician_id": ""})
    assert r.status_code == 302, _text(r)[:1500]
    with app.app_context():
        visit = db.session.scalars(select(Visit)).one()
        visit_id = visit.id
        expected_start = datetime(2026, 3, 10, 9, 30, tzinfo=tz).astimezone(UTC)
        assert _utc(visit.starts_at) == expected_start
        assert _utc(visit.ends_at) == datetime(2026, 3, 10, 11, 15, tzinfo=tz).astimezone(UTC)
        assert str(tz) == "UTC" or _utc(visit.starts_at).hour != 9  # converted, not stored as typed
        assert visit.status == "scheduled" and visit.technician_id == tech.id  # the job's technician by default
    page = _text(client.get(job_url))
    assert "9:30" in page and "Tomas Tech" in page

    # Bad windows: a message on the form, nothing saved.
    for data, message in [({"day": "2026-03-11", "start": "11:00", "end": "09:00"}, "The window must end after it starts."),
                          ({"day": "2026-03-11", "start": "9am", "end": "11:00"}, "Enter the time window as HH:MM"),
                          ({"day": "2026-02-20", "start": "09:00", "end": "11:00"}, "That date is in the past."),
                          ({"day": "not-a-date", "start": "09:00", "end": "11:00"}, "Not a valid date value.")]:
        r = client.post(f"{job_url}/visits", data={"csrf_token": csrf, "technician_id": "", **data})
        assert r.status_code == 400, (data, r.status_code)
        assert message in _text(r), (data, _text(r)[-3000:])
    assert _count(app, Visit) == 1

    # start → in progress; the visit too
    r = client.post(f"{job_url}/status", data={"csrf_token": csrf, "status": "in_progress"}, follow_redirects=True)
    assert "is now in progress" in _text(r)
    r = client.post(f"/admin/visits/{visit_id}/status", data={"csrf_token": csrf, "status": "in_progress"})
    assert r.status_code == 302
    r = client.post(f"/admin/visits/{visit_id}/status", data={"csrf_token": csrf, "status": "completed"})
    r = client.post(f"/admin/visits/{visit_id}/status", data={"csrf_token": csrf, "status": "in_progress"},
                    follow_redirects=True)
    assert "A completed visit cannot become in progress." in _text(r)
    with app.app_context():
        assert db.session.get(Visit, visit_id).status == "completed"
        assert db.session.get(Job, job_id).status == "in_progress"

    # finish sets finished_at
    frozen_clock.advance(hours=3)
    finished_when = frozen_clock.now()
    r = client.post(f"{job_url}/status", data={"csrf_token": csrf, "status": "finished"}, follow_redirects=True)
    assert "is now finished" in _text(r)
    with app.app_context():
        job = db.session.get(Job, job_id)
        assert job.status == "finished" and _utc(job.finished_at) == finished_when

    # a finished job is not cancelled directly, and gets no new visits
    r = client.post(f"{job_url}/status", data={"csrf_token": csrf, "status": "cancelled"}, follow_redirects=True)
    assert "A finished job cannot become cancelled." in _text(r)
    r = client.post(f"{job_url}/visits", data={"csrf_token": csrf, "day": "2026-03-12", "start": "09:00",
                                               "end": "10:00", "technician_id": ""}, follow_redirects=True)
    assert "A finished job gets no new visits." in _text(r)
    with app.app_context():
        job = db.session.get(Job, job_id)
        assert job.status == "finished" and _utc(job.finished_at) == finished_when
        assert db.session.scalar(select(func.count()).select_from(Visit)) == 1

    # reopened, then it can be cancelled
    r = client.post(f"{job_url}/status", data={"csrf_token": csrf, "status": "in_progress"})
    with app.app_context():
        job = db.session.get(Job, job_id)
        assert job.status == "in_progress" and job.finished_at is None
    r = client.post(f"{job_url}/status", data={"csrf_token": csrf, "status": "cancelled"}, follow_redirects=True)
    assert "is now cancelled" in _text(r)
    # invalid transitions: a message, nothing changed
    for bad in ("finished", "in_progress", "bogus", ""):
        r = client.post(f"{job_url}/status", data={"csrf_token": csrf, "status": bad}, follow_redirects=True)
        assert r.status_code == 200
        assert "A cancelled job cannot become" in _text(r), bad
    with app.app_context():
        assert db.session.get(Job, job_id).status == "cancelled"


def test_cancelling_a_scheduled_job_cancels_its_scheduled_visits(app, client, login_staff, frozen_clock):
    staff = _staff(app)
    with app.app_context():
        customer = make_customer(email="bo.li@example.com")
        job = make_job(customer, visit_in_days=2)
    login_staff(staff)
    _, csrf = _csrf(client, f"/admin/jobs/{job.id}")
    r = client.post(f"/admin/jobs/{job.id}/visits", data={"csrf_token": csrf, "day": "2026-03-20", "start": "13:00",
                                                         "end": "15:00", "technician_id": ""})
    assert r.status_code == 302
    r = client.post(f"/admin/jobs/{job.id}/visits", data={"csrf_token": csrf, "day": "2026-03-21", "start": "13:00",
                                                         "end": "15:00", "technician_id": ""})
    with app.app_context():
        ids = db.session.scalars(select(Visit.id).where(Visit.job_id == job.id).order_by(Visit.id)).all()
    assert len(ids) == 3
    client.post(f"/admin/visits/{ids[2]}/status", data={"csrf_token": csrf, "status": "completed"})
    r = client.post(f"/admin/jobs/{job.id}/status", data={"csrf_token": csrf, "status": "cancelled"})
    assert r.status_code == 302
    with app.app_context():
        assert db.session.get(Job, job.id).status == "cancelled"
        statuses = [db.session.get(Visit, i).status for i in ids]
    assert statuses == ["cancelled", "cancelled", "completed"]


# --- 2. Estimates, staff side (P-5) -----------------------------------------------------------------------

def test_estimate_create_send_in_spanish_customer_approves_then_convert_once(app, client, login_staff, smtp,
                                                                             frozen_clock):
    staff = _staff(app)
    with app.app_context():
        customer = make_customer("Lucia", "Garcia", email="lucia.garcia@example.com", language="es")
    login_staff(staff)
    new_url = f"/admin/customers/{customer.id}/estimates/new"
    _, csrf = _csrf(client, new_url)
    lines = _lines(("Heat pump, installed", "1", "4,800.00"), ("Permit", "1", "150"))
    for deposit, message in [("5000", "The deposit must be between 0 and the estimate's total."),
                             ("-5", "The amount cannot be negative."),
                             ("abc", "Enter an amount as a number")]:
        r = client.post(new_url, data={"csrf_token": csrf, "title": "Heat pump", "message": "", "deposit": deposit,
                                       **lines})
        assert r.status_code == 400, (deposit, r.status_code)
        page = _text(r)
        assert message in page, (deposit, page[-2500:])
        assert 'value="Heat pump, installed"' in page  # the typed lines come back
    assert _count(app, Estimate) == 0

    r = client.post(new_url, data={"csrf_token": csrf, "title": "Heat pump", "message": "Two-day install",
                                   "deposit": "250.00", **lines})
    assert r.status_code == 302, _text(r)[-2500:]
    est_url = urlsplit(r.headers["Location"]).path
    with app.app_context():
        estimate = db.session.scalars(select(Estimate)).one()
        estimate_id = estimate.id
        assert est_url == f"/admin/estimates/{estimate_id}"
        assert (estimate.status, estimate.deposit_cents, estimate.total_cents) == ("draft", 25_000, 495_000)
        assert [(li.description, li.quantity, li.unit_price_cents) for li in estimate.line_items] == \
            [("Heat pump, installed", 1, 480_000), ("Permit", 1, 15_000)]
        number = estimate.number
    page = _text(client.get(est_url))
    assert "$4,950.00" in page and "$250.00" in page and "Send to customer" in page

    # approving with a deposit needs a card; drop it so the customer approves by name
    r = client.post(f"{est_url}/edit", data={"csrf_token": csrf, "title": "Heat pump", "message": "Two-day install",
                                             "deposit": "0", **lines})
    assert r.status_code == 302, _text(r)[-2500:]

    r = client.post(f"{est_url}/send", data={"csrf_token": csrf}, follow_redirects=True)
    assert "emailed to lucia.garcia@example.com" in _text(r)
    with app.app_context():
        estimate = db.session.get(Estimate, estimate_id)
        assert estimate.status == "sent" and _utc(estimate.sent_at) == frozen_clock.now()
    msg, path = _magic_path(smtp, "lucia.garcia@example.com")
    assert str(msg["Subject"]).startswith("Presupuesto"), msg["Subject"]
    assert number in str(msg["Subject"])

    # the link logs the customer in on that estimate
    portal = app.test_client()
    r = portal.get(path)
    assert r.status_code == 302 and urlsplit(r.headers["Location"]).path == f"/portal/estimates/{estimate_id}"
    r = portal.get(path, follow_redirects=True)
    assert r.status_code == 200 and r.request.path == f"/portal/estimates/{estimate_id}"
    page = r.get_data(True)
    assert "Heat pump" in page and number in page
    r = portal.post(f"/portal/estimates/{estimate_id}/approve",
                    data={"csrf_token": csrf_token_from(page), "name": "Lucia Garcia"},
                    environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert r.status_code == 302, _text(r)[-2000:]

    page = _text(client.get(est_url))
    assert "status-approved" in page
    assert re.search(r"<dt>Approved</dt><dd>[^<]*“Lucia Garcia” from IP 203\.0\.113\.7", page), page[-3000:]
    assert "Convert to job" in page

    r = client.post(f"{est_url}/convert", data={"csrf_token": csrf})
    assert r.status_code == 302
    with app.app_context():
        job = db.session.scalars(select(Job)).one()
        assert urlsplit(r.headers["Location"]).path == f"/admin/jobs/{job.id}"
        estimate = db.session.get(Estimate, estimate_id)
        assert estimate.status == "converted" and estimate.job_id == job.id
        assert (job.customer_id, job.title, job.status) == (customer.id, "Heat pump", "scheduled")
        assert [(li.description, li.quantity, li.unit_price_cents) for li in job.line_items] == \
            [("Heat pump, installed", 1, 480_000), ("Permit", 1, 15_000)]
        job_number = job.number
    page = _text(client.get(est_url))
    assert job_number in page and "Convert to job" not in page

    r = client.post(f"{est_url}/convert", data={"csrf_token": csrf}, follow_redirects=True)
    assert "This estimate is already a job." in _text(r)
    assert _count(app, Job) == 1


# --- 3. Invoices (INV-2, INV-7) ---------------------------------------------------------------------------

def test_invoice_by_hand_discount_tax_terms_send_and_resend(app, client, login_staff, smtp, frozen_clock):
    staff = _staff(app)
    _set_terms(app, due_days=21)
    with app.app_context():
        customer = make_customer("Ruth", "Kim", email="ruth.kim@example.com", discount_bp=1000)
    login_staff(staff)
    new_url = f"/admin/customers/{customer.id}/invoices/new"
    page, csrf = _csrf(client, new_url)
    assert re.search(r'name="discount_percent"[^>]*value="10"', page), page[-3000:]  # the personal discount
    assert re.search(r'name="issue_date"[^>]*value="2026-03-02"', page)  # today in the business time zone

    # 124.46 + 3 × 33.33 = 224.45; discount 10 % = 22.445 → 22.45 (half up); net 202.00;
    # tax 8.25 % of 202.00 = 16.665 → 16.67 (half up); total 218.67
    r = client.post(new_url, data={"csrf_token": csrf, "discount_percent": "10", "tax_percent": "8.25",
                                   "issue_date": "2026-03-04", "due_date": "", "notes": "Thanks!",
                                   **_lines(("Compressor", "1", "124.46"), ("Labor", "3", "33.33"))})
    assert r.status_code == 302, _text(r)[-2500:]
    with app.app_context():
        invoice = db.session.scalars(select(Invoice)).one()
        invoice_id, number = invoice.id, invoice.number
        assert urlsplit(r.headers["Location"]).path == f"/admin/invoices/{invoice_id}"
        assert invoice.status == "draft" and invoice.customer_id == customer.id
        assert (invoice.discount_bp, invoice.tax_bp) == (1000, 825)
        assert (invoice.subtotal_cents, invoice.discount_cents, invoice.tax_cents, invoice.total_cents) == \
            (22_445, 2_245, 1_667, 21_867)
        assert invoice.issue_date == date(2026, 3, 4)
        assert invoice.due_date == date(2026, 3, 25)  # issue + the business's 21 days
        assert invoice.balance_cents == 21_867 and invoice.sent_at is None
    page = _text(client.get(f"/admin/invoices/{invoice_id}"))
    assert "−$22.45" in page and "$16.67" in page and "$218.67" in page and "Discount 10 %" in page

    # send: draft → open, email with a link that opens the invoice in the portal
    sent_when = frozen_clock.now()
    r = client.post(f"/admin/invoices/{invoice_id}/send", data={"csrf_token": csrf}, follow_redirects=True)
    assert f"Invoice {number} sent to ruth.kim@example.com" in _text(r)
    with app.app_context():
        invoice = db.session.get(Invoice, invoice_id)
        assert invoice.status == "open"
        assert _utc(invoice.sent_at) == sent_when and _utc(invoice.last_sent_at) == sent_when
        assert invoice.reminder_anchor_date == invoice.due_date
    msg, path = _magic_path(smtp, "ruth.kim@example.com")
    assert number in str(msg["Subject"]) and "$218.67" in smtp.text(msg)
    portal = app.test_client()
    r = portal.get(path)
    assert r.status_code == 302 and urlsplit(r.headers["Location"]).path == f"/portal/invoices/{invoice_id}"
    r = portal.get(path, follow_redirects=True)
    assert r.status_code == 200 and r.request.path == f"/portal/invoices/{invoice_id}"
    assert number in r.get_data(True)

    # resend two days later: sent_at kept, last_sent_at moves, reminders restart today
    frozen_clock.advance(days=2)
    smtp.clear()
    r = client.post(f"/admin/invoices/{invoice_id}/send", data={"csrf_token": csrf}, follow_redirects=True)
    assert f"Invoice {number} resent to" in _text(r)
    with app.app_context():
        invoice = db.session.get(Invoice, invoice_id)
        assert invoice.status == "open"
        assert _utc(invoice.sent_at) == sent_when
        assert _utc(invoice.last_sent_at) == frozen_clock.now()
        # INV-5: a resend restarts reminders from the resend date, but never before the due date has passed
        assert clock.today() == date(2026, 3, 4) and invoice.reminder_anchor_date == invoice.due_date
    assert len(smtp.to("ruth.kim@example.com")) == 1
    frozen_clock.set(datetime(2026, 3, 30, 17, 0, tzinfo=UTC))  # after the due date (3/25)
    r = client.post(f"/admin/invoices/{invoice_id}/send", data={"csrf_token": csrf}, follow_redirects=True)
    assert f"Invoice {number} resent to" in _text(r)
    with app.app_context():
        assert db.session.get(Invoice, invoice_id).reminder_anchor_date == date(2026, 3, 30) == clock.today()


def test_invoice_statuses_follow_payments_void_edit_list_and_pdf(app, client, login_staff, smtp, frozen_clock):
    from portal.models import Customer, StaffUser
    from portal.services.payments import charges

    staff = _staff(app)
    with app.app_context():
        customer = make_customer("Sam", "Ortiz", email="sam.ortiz@example.com")
        other = make_customer("Vera", "Novak", email="vera.novak@example.com")
        paid_one = make_invoice(customer, 20_000, number="INV-7001")
        spare = make_invoice(other, 9_900, number="INV-7002")
        draft = make_invoice(other, 4_400, number="INV-7003", status="draft")
    login_staff(staff)
    _, csrf = _csrf(client, f"/admin/invoices/{paid_one.id}")

    def record(invoice_id, cents):
        with app.app_context():
            charges.record_manual(db.session.get(Customer, customer.id), method="cash", amount_cents=cents,
                                  reference=None, actor=db.session.get(StaffUser, staff.id),
                                  invoice=db.session.get(Invoice, invoice_id))

    def state(invoice_id):
        with app.app_context():
            i = db.session.get(Invoice, invoice_id)
            return i.status, i.paid_cents, i.balance_cents

    # an unpaid open invoice can be edited
    edit = {"csrf_token": csrf, "discount_percent": "0", "tax_percent": "0", "issue_date": "2026-03-01",
            "due_date": "2026-03-31", "notes": ""}
    r = client.post(f"/admin/invoices/{paid_one.id}/edit", data={**edit, **_lines(("Service call", "2", "100"))})
    assert r.status_code == 302, _text(r)[-2500:]
    assert state(paid_one.id) == ("open", 0, 20_000)
    with app.app_context():
        assert db.session.get(Invoice, paid_one.id).due_date == date(2026, 3, 31)

    # partial payment → partially paid; no edit, no void
    record(paid_one.id, 5_000)
    assert state(paid_one.id) == ("partially_paid", 5_000, 15_000)
    page = _text(client.get(f"/admin/invoices/{paid_one.id}"))
    assert "partially paid" in page and "Void invoice" not in page and "/edit" not in page
    r = client.post(f"/admin/invoices/{paid_one.id}/edit", data={**edit, **_lines(("Service call", "1", "50"))})
    assert r.status_code == 400
    assert "Only a draft or an unpaid open invoice can be edited" in _text(r)
    r = client.post(f"/admin/invoices/{paid_one.id}/void", data={"csrf_token": csrf, "reason": "Duplicate"},
                    follow_redirects=True)
    assert "This invoice has payments; refund them first, then void it." in _text(r)
    assert state(paid_one.id) == ("partially_paid", 5_000, 15_000)
    with app.app_context():
        assert db.session.get(Invoice, paid_one.id).total_cents == 20_000

    # the rest → paid
    record(paid_one.id, 15_000)
    assert state(paid_one.id) == ("paid", 20_000, 0)

    # void: a reason is required, then the balance is gone
    r = client.post(f"/admin/invoices/{spare.id}/void", data={"csrf_token": csrf, "reason": "   "},
                    follow_redirects=True)
    assert "Say why the invoice is voided." in _text(r)
    assert state(spare.id) == ("open", 0, 9_900)
    r = client.post(f"/admin/invoices/{spare.id}/void", data={"csrf_token": csrf, "reason": "Billed twice"},
                    follow_redirects=True)
    page = _text(r)
    assert "Invoice INV-7002 voided." in page and "Billed twice" in page
    assert state(spare.id) == ("void", 0, 0)
    with app.app_context():
        assert db.session.get(Invoice, spare.id).void_reason == "Billed twice"

    # the list: status filter and search by number
    page = _text(client.get("/admin/invoices"))
    assert all(n in page for n in ("INV-7001", "INV-7002", "INV-7003"))
    for status, shown in [("paid", "INV-7001"), ("void", "INV-7002"), ("draft", "INV-7003")]:
        page = _text(client.get(f"/admin/invoices?status={status}"))
        assert shown in page, status
        assert [n for n in ("INV-7001", "INV-7002", "INV-7003") if n in page] == [shown], status
    page = _text(client.get("/admin/invoices?q=inv-7003"))
    assert "INV-7003" in page and "INV-7001" not in page and "INV-7002" not in page
    page = _text(client.get("/admin/invoices?status=open"))
    assert "No invoices." in page

    r = client.get(f"/admin/invoices/{paid_one.id}.pdf")
    assert r.status_code == 200 and r.mimetype == "application/pdf" and r.data.startswith(b"%PDF")
    assert draft.id


# --- 4. Invoice this job ----------------------------------------------------------------------------------

def test_invoice_this_job_only_finished_with_lines_and_once(app, client, login_staff, frozen_clock):
    from portal.models import JobLineItem

    staff = _staff(app)
    _set_terms(app, due_days=10)
    with app.app_context():
        customer = make_customer(email="pat.lee@example.com")
        job = make_job(customer, "Furnace repair", visit_in_days=None)
        empty = make_job(customer, "Look-see", visit_in_days=None, status="finished")
        db.session.execute(JobLineItem.__table__.delete().where(JobLineItem.job_id == empty.id))
        db.session.commit()
    login_staff(staff)
    page, csrf = _csrf(client, f"/admin/jobs/{job.id}")
    assert "Invoice this job" not in page  # not finished yet

    r = client.post(f"/admin/jobs/{job.id}/invoice", data={"csrf_token": csrf}, follow_redirects=True)
    assert "Finish the job before invoicing it." in _text(r)
    r = client.post(f"/admin/jobs/{empty.id}/invoice", data={"csrf_token": csrf}, follow_redirects=True)
    assert "Add line items to the job first." in _text(r)
    assert _count(app, Invoice) == 0

    client.post(f"/admin/jobs/{job.id}/status", data={"csrf_token": csrf, "status": "finished"})
    assert "Invoice this job" in _text(client.get(f"/admin/jobs/{job.id}"))
    r = client.post(f"/admin/jobs/{job.id}/invoice", data={"csrf_token": csrf})
    assert r.status_code == 302
    with app.app_context():
        invoice = db.session.scalars(select(Invoice)).one()
        invoice_id, number = invoice.id, invoice.number
        assert urlsplit(r.headers["Location"]).path == f"/admin/invoices/{invoice_id}"
        assert [j.id for j in invoice.jobs] == [job.id]
        assert [(li.description, li.quantity, li.unit_price_cents) for li in invoice.line_items] == \
            [("Furnace repair", 1, 15_000)]
        assert (invoice.status, invoice.total_cents) == ("draft", 15_000)
        assert invoice.due_date == invoice.issue_date + timedelta(days=10)
    page = _text(client.get(f"/admin/invoices/{invoice_id}"))
    assert f'href="/admin/jobs/{job.id}"' in page and job.number in page

    r = client.post(f"/admin/jobs/{job.id}/invoice", data={"csrf_token": csrf}, follow_redirects=True)
    assert "This job is already on an invoice." in _text(r)
    assert _count(app, Invoice) == 1
    page = _text(client.get(f"/admin/jobs/{job.id}"))
    assert number in page and "Invoice this job" not in page
    # reopening an invoiced job is refused too
    r = client.post(f"/admin/jobs/{job.id}/status", data={"csrf_token": csrf, "status": "in_progress"},
                    follow_redirects=True)
    assert "This job is already invoiced; void the invoice first." in _text(r)


# --- 5. Bad input ------------------------------------------------------------------------------------------

GOOD_LINE = ("Service call", "1", "99.00")
INVOICE_TERMS = {"discount_percent": "0", "tax_percent": "0", "issue_date": "2026-03-02", "due_date": "",
                 "notes": ""}

BAD_INPUT = [
    ("invoice", {**INVOICE_TERMS, **_lines(("Filter", "-1", "10"))}, "the quantity must be between 1 and"),
    ("invoice", {**INVOICE_TERMS, **_lines(("Filter", "abc", "10"))}, "the quantity must be a whole number"),
    ("invoice", {**INVOICE_TERMS, **_lines(("Filter", "1", "-5"))}, "The amount cannot be negative."),
    ("invoice", {**INVOICE_TERMS, **_lines(("Filter", "1", "1.234"))}, "Use at most 2 decimal places."),
    ("invoice", {**INVOICE_TERMS, **_lines(("Filter", "1", "ten"))}, "Enter an amount as a number"),
    ("invoice", {**INVOICE_TERMS, "discount_percent": "150", **_lines(GOOD_LINE)},
     "The discount must be between 0 % and 100 %."),
    ("invoice", {**INVOICE_TERMS, "discount_percent": "-5", **_lines(GOOD_LINE)},
     "The discount must be between 0 % and 100 %."),
    ("invoice", {**INVOICE_TERMS, "tax_percent": "abc", **_lines(GOOD_LINE)}, "Enter a percentage"),
    ("invoice", {**INVOICE_TERMS, "tax_percent": "7.125", **_lines(GOOD_LINE)}, "Use at most two decimals"),
    ("invoice", {**INVOICE_TERMS, "discount_percent": "1e30", **_lines(GOOD_LINE)}, "Enter a percentage"),
    ("invoice", {**INVOICE_TERMS, "due_date": "2026-03-01", **_lines(GOOD_LINE)},
     "The due date cannot be before the issue date."),
    ("invoice", {**INVOICE_TERMS, **_lines(("", "1", ""))}, "Add at least one line."),
    ("invoice", {**INVOICE_TERMS, **_lines(("", "2", "10"))}, "Line 1: enter a description."),
    ("invoice", {**INVOICE_TERMS, **_lines(("Free check", "1", "0"))}, "The invoice total must be above zero."),
    ("job", {"title": "", "description": "", "address": "", "technician_id": "", **_lines(GOOD_LINE)},
     "Enter the job title."),
    ("job", {"title": "Tune-up", "description": "", "address": "", "technician_id": "",
             **_lines(("Labor", "1", "-5"))}, "The amount cannot be negative."),
    ("estimate", {"title": "Ducts", "message": "", "deposit": "0", **_lines(("Ducts", "abc", "10"))},
     "the quantity must be a whole number"),
    ("estimate", {"title": "", "message": "", "deposit": "0", **_lines(GOOD_LINE)}, "Enter a title."),
    ("estimate", {"title": "Ducts", "message": "", "deposit": "0"}, "Add at least one line."),
]


@pytest.mark.parametrize("kind,data,message", BAD_INPUT,
                         ids=[f"{k}-{m[:30]}-{i}" for i, (k, _, m) in enumerate(BAD_INPUT)])
def test_bad_input_is_refused_on_the_form(app, client, login_staff, frozen_clock, kind, data, message):
    staff = _staff(app)
    with app.app_context():
        customer = make_customer(email="bad.input@example.com")
    login_staff(staff)
    url = f"/admin/customers/{customer.id}/{kind}s/new"
    model = {"invoice": Invoice, "job": Job, "estimate": Estimate}[kind]
    _, csrf = _csrf(client, url)
    before = _count(app, model)
    r = client.post(url, data={"csrf_token": csrf, **data})
    assert r.status_code == 400, (r.status_code, _text(r)[-2000:])
    assert message in _text(r), _text(r)[-2500:]
    assert _count(app, model) == before == 0


def test_bad_input_on_edit_forms_changes_nothing(app, client, login_staff, frozen_clock):
    staff = _staff(app)
    with app.app_context():
        customer = make_customer(email="edit.bad@example.com")
        invoice = make_invoice(customer, 12_000, number="INV-7100")
        job = make_job(customer, visit_in_days=None)
    login_staff(staff)
    _, csrf = _csrf(client, f"/admin/invoices/{invoice.id}/edit")
    r = client.post(f"/admin/invoices/{invoice.id}/edit", data={"csrf_token": csrf, **INVOICE_TERMS,
                                                                "discount_percent": "150",
                                                                **_lines(("Other", "1", "1"))})
    assert r.status_code == 400 and "The discount must be between 0 % and 100 %." in _text(r)
    r = client.post(f"/admin/invoices/{invoice.id}/edit", data={"csrf_token": csrf, **INVOICE_TERMS,
                                                                **_lines(("", "", ""))})
    assert r.status_code == 400 and "Add at least one line." in _text(r)
    r = client.post(f"/admin/jobs/{job.id}/edit", data={"csrf_token": csrf, "title": " ", "description": "",
                                                        "address": "", "technician_id": "",
                                                        **_lines(("Other", "1", "1"))})
    assert r.status_code == 400 and "Enter the job title." in _text(r)
    with app.app_context():
        inv = db.session.get(Invoice, invoice.id)
        assert (inv.discount_bp, inv.total_cents) == (0, 12_000)
        assert [li.description for li in inv.line_items] == ["Service call"]
        j = db.session.get(Job, job.id)
        assert j.title == "AC tune-up" and [li.description for li in j.line_items] == ["AC tune-up"]


# --- 6. Query bound --------------------------------------------------------------------------------------

def test_invoice_list_queries_do_not_grow_with_rows(app, client, login_staff, frozen_clock):
    staff = _staff(app)
    with app.app_context():
        customers = [make_customer(email=f"bulk{i}@example.com") for i in range(30)]
        for i, c in enumerate(customers[:5]):
            make_invoice(c, 1_000 + i, number=f"INV-{8000 + i}")
        engine = db.engine
    login_staff(staff)

    def queries(url):
        client.get(url)  # warm up (settings row, session)
        seen = []

        def count(conn, cursor, statement, parameters, context, executemany):
            seen.append(statement)
        event.listen(engine, "before_cursor_execute", count)
        try:
            r = client.get(url)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert r.status_code == 200
        return r, seen

    r, five = queries("/admin/invoices")
    assert _text(r).count("/admin/invoices/") >= 5
    with app.app_context():
        for i, c in enumerate(customers[5:], start=5):
            make_invoice(c, 1_000 + i, number=f"INV-{8000 + i}")
    r, thirty = queries("/admin/invoices")
    page = _text(r)
    assert all(f"INV-{8000 + i}" in page for i in range(30))
    assert len(thirty) == len(five), (len(five), len(thirty), thirty)


def test_estimate_deposit_is_credited_on_the_jobs_invoice(app, client, login_staff, stripe_sandbox):
    """The deposit paid with the approval counts toward the invoice of the job the estimate became."""
    from portal.models import Customer, Estimate, Invoice, Job, StaffUser
    from portal.services.billing import invoices as invoice_service
    from portal.services.payments import charges
    from portal.services.work import estimates as estimate_service
    from portal.services.work import work_orders
    from tests.factories import make_card, make_customer, make_estimate, make_staff

    with app.app_context():
        staff = make_staff("office")
        c = make_customer()
        card = make_card(c.id)
        est = make_estimate(c, deposit_cents=20_000, lines=[("Heat pump", 150_000)])
        outcome = estimate_service.approve_with_deposit(db.session.get(Customer, c.id),
                                                        db.session.get(Estimate, est.id), "Maria", "127.0.0.1",
                                                        card, charges.new_token())
        assert outcome.status == "succeeded"
        actor = db.session.get(StaffUser, staff.id)
        job = estimate_service.convert_to_job(db.session.get(Estimate, est.id), actor)
        db.session.commit()
        work_orders.set_status(job, actor, "finished")
        invoice = invoice_service.from_job(db.session.get(Job, job.id), actor)
        db.session.commit()
        invoice = db.session.get(Invoice, invoice.id)
        assert (invoice.total_cents, invoice.paid_cents, invoice.balance_cents) == (150_000, 20_000, 130_000)
        # a wrong draft can be voided: the deposit goes back on account and is credited on the next invoice
        invoice_service.void(invoice, actor, "Wrong lines")
        db.session.commit()
        assert (db.session.get(Invoice, invoice.id).status, db.session.get(Invoice, invoice.id).paid_cents) == \
            ("void", 0)
        invoice = invoice_service.from_job(db.session.get(Job, job.id), actor)
        db.session.commit()
        assert db.session.get(Invoice, invoice.id).paid_cents == 20_000
        invoice_service.send(invoice, actor)
        assert db.session.get(Invoice, invoice.id).status == "partially_paid"
        # a second invoice for other work gets nothing more from the same deposit
        other = invoice_service.create(db.session.get(Customer, c.id), actor,
                                       lines=invoice_service.job_lines([db.session.get(Job, job.id)]),
                                       jobs=[])
        assert other.paid_cents == 0
