"""P-4: a visit's .ics imports into calendar apps; P-2: the invoice and receipt PDFs hold the numbers."""
from __future__ import annotations

import io
from datetime import timedelta

from icalendar import Calendar
from pypdf import PdfReader

from portal.extensions import db
from portal.models import Customer, Invoice, StaffUser
from portal.services.payments import charges
from tests.factories import make_customer, make_invoice, make_job, make_staff


def _pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_visit_ics_parses_and_holds_start_end_address_and_summary(app, client, login_customer):
    with app.app_context():
        tech = make_staff("technician", name="Sam Rivera")
        c = make_customer("Ana", "Diaz")
        job = make_job(c, "Furnace repair", visit_in_days=2, hours=3, technician=tech,
                       address="12 Elm St, Springfield, CA 90210")
        visit = job.visits[0]
    login_customer(c)
    r = client.get(f"/portal/appointments/{visit.id}.ics")
    assert r.status_code == 200 and r.mimetype == "text/calendar"
    assert "attachment" in r.headers["Content-Disposition"]
    cal = Calendar.from_ical(r.data)
    [event] = cal.walk("VEVENT")
    assert event.decoded("dtstart") == visit.starts_at
    assert event.decoded("dtend") == visit.starts_at + timedelta(hours=3)
    assert str(event["location"]) == "12 Elm St, Springfield, CA 90210"
    assert "Furnace repair" in str(event["summary"])
    assert "Sam Rivera" in str(event["description"])
    assert str(event["uid"]).startswith(f"visit-{visit.id}@")


def test_visit_without_job_address_uses_the_service_address(app, client, login_customer):
    with app.app_context():
        c = make_customer("Ana", "Diaz")
        visit = make_job(c, visit_in_days=1).visits[0]
        expected = db.session.get(Customer, c.id).address_of("service").one_line()
    login_customer(c)
    [event] = Calendar.from_ical(client.get(f"/portal/appointments/{visit.id}.ics").data).walk("VEVENT")
    assert str(event["location"]) == expected


def test_invoice_pdf_holds_number_lines_total_and_balance(app, client, login_customer):
    with app.app_context():
        c = make_customer("Ana", "Diaz")
        invoice = make_invoice(c, lines=[("Duct cleaning", 30_000), ("Filter", 4_550)], number="INV-77001")
        staff = make_staff("admin")
        charges.record_manual(db.session.get(Customer, c.id), method="check", amount_cents=10_000, reference="1234",
                              actor=db.session.get(StaffUser, staff.id), invoice=db.session.get(Invoice, invoice.id))
    login_customer(c)
    r = client.get(f"/portal/invoices/{invoice.id}.pdf")
    assert r.status_code == 200 and r.mimetype == "application/pdf" and r.data.startswith(b"%PDF")
    assert 'filename="invoice-INV-77001.pdf"' in r.headers["Content-Disposition"]
    text = _pdf_text(r.data)
    assert "INV-77001" in text
    assert "Duct cleaning" in text and "Filter" in text
    assert "$345.50" in text  # total
    assert "$245.50" in text  # balance after the $100 check
    assert "Balance due" in text


def test_receipt_pdf_and_russian_invoice_pdf(app, client, login_customer):
    with app.app_context():
        c = make_customer("Olga", "Petrova", language="ru")
        invoice = make_invoice(c, 12_345, number="INV-77002")
        staff = make_staff("admin")
        payment = charges.record_manual(db.session.get(Customer, c.id), method="cash", amount_cents=12_345,
                                        reference=None, actor=db.session.get(StaffUser, staff.id),
                                        invoice=db.session.get(Invoice, invoice.id)).id
    login_customer(c)
    receipt = _pdf_text(client.get(f"/portal/payments/{payment}.pdf").data)
    assert f"P-{payment}" in receipt and "INV-77002" in receipt
    text = _pdf_text(client.get(f"/portal/invoices/{invoice.id}.pdf").data)
    assert "INV-77002" in text and "Счёт" in text  # the customer's language, with Cyrillic letters intact


def test_invoice_page_links_the_pdf(app, client, login_customer):
    with app.app_context():
        c = make_customer()
        invoice = make_invoice(c)
    login_customer(c)
    assert f"/portal/invoices/{invoice.id}.pdf" in client.get(f"/portal/invoices/{invoice.id}").get_data(True)
