"""Issue 19 (documents): an invoice PDF carries a "Pay online" link with its address as text and a PAID / balance
stamp; a receipt PDF names what was paid (invoices and plan payments), how, and what remains; estimates have a PDF
in the portal (in the customer's language) and in the admin."""
from __future__ import annotations

import io
from datetime import timedelta

from pypdf import PdfReader

from portal import clock
from portal.extensions import db
from portal.models import Customer, Estimate, EstimateLineItem, Invoice, PlanPayment, StaffUser
from portal.services.payments import charges
from tests.factories import make_card, make_customer, make_invoice, make_plan, make_staff


def _pdf(data: bytes) -> tuple[str, list[str]]:
    reader = PdfReader(io.BytesIO(data))
    text = "\n".join(page.extract_text() for page in reader.pages)
    links = [a.get_object()["/A"]["/URI"] for page in reader.pages for a in page.get("/Annots", []) or []
             if "/A" in a.get_object() and "/URI" in a.get_object()["/A"]]
    return text, links


def test_invoice_pdf_stamp_and_pay_online_link(app, client, login_customer, stripe_sandbox):
    with app.app_context():
        c = make_customer("Ines", "Paylink", email="ines.paylink@example.com")
        open_one = make_invoice(c, 10_000, number="INV-PDF-1")
        paid = make_invoice(c, 5_000, number="INV-PDF-2")
        charges.record_manual(db.session.get(Customer, c.id), method="cash", amount_cents=5_000, reference=None,
                              actor=db.session.get(StaffUser, make_staff("admin").id),
                              invoice=db.session.get(Invoice, paid.id))
    login_customer(c)
    text, links = _pdf(client.get(f"/portal/invoices/{open_one.id}.pdf").data)
    url = f"http://portal.test/portal/invoices/{open_one.id}/pay"
    assert "BALANCE DUE $100.00" in text and "Pay online: $100.00" in text and url in text, text
    assert url in links  # the address is a link too
    assert "/portal/magic/" not in text  # no login token in a document that can be forwarded
    text, links = _pdf(client.get(f"/portal/invoices/{paid.id}.pdf").data)
    assert "PAID" in text and "Pay online" not in text and links == []


def test_receipt_pdf_names_invoice_plan_payment_card_and_what_is_left(app, client, login_customer, stripe_sandbox):
    with app.app_context():
        c = make_customer("Rita", "Receipt", email="rita.receipt@example.com")
        invoice = make_invoice(c, 8_700, number="INV-PDF-3")
        later = make_invoice(c, 1_000, number="INV-PDF-4")
        plan = make_plan(c, price_cents=1_999, payments=[(clock.today() - timedelta(days=2), "failed")])
        card = make_card(c.id)
        customer = db.session.get(Customer, c.id)
        row = db.session.scalars(db.select(PlanPayment).where(PlanPayment.plan_id == plan.id)).one()
        outcome = charges.charge_card(customer, db.session.get(type(card), card.id), 10_699, token=None,
                                      invoices=[db.session.get(Invoice, invoice.id)], plan_cents=1_999,
                                      plan_payment_ids=[row.id], purpose="pay_all", off_session=False,
                                      initiated_by="customer")
        assert outcome.attempt.status == "succeeded"
        payment_id = outcome.payment.id
        assert later.id
    login_customer(c)
    text, _ = _pdf(client.get(f"/portal/payments/{payment_id}.pdf").data)
    for needed in ("Invoice INV-PDF-3: $87.00", "balance left $0.00", "Service plan: Comfort Club", "$19.99",
                   "Visa •••• 4242", "$106.99"):
        assert needed in text, (needed, text)


def test_estimate_pdf_in_the_portal_and_the_admin(app, client, login_customer, login_staff):
    with app.app_context():
        staff = make_staff("admin")
        c = make_customer("Eva", "Estimado", email="eva.estimado@example.com", language="es")
        estimate = Estimate(customer_id=c.id, number="E-PDF-1", title="Bomba de calor nueva", status="sent",
                            sent_at=clock.now(), deposit_cents=20_000, currency="USD",
                            valid_until=clock.today() + timedelta(days=30))
        estimate.line_items.append(EstimateLineItem(description="Bomba de calor", quantity=1,
                                                    unit_price_cents=450_000, position=0))
        db.session.add(estimate)
        db.session.commit()
        estimate_id = estimate.id
    portal = app.test_client()
    login_customer(c, c=portal)
    page = portal.get(f"/portal/estimates/{estimate_id}?lang=es").get_data(True)
    assert f"/portal/estimates/{estimate_id}.pdf" in page
    r = portal.get(f"/portal/estimates/{estimate_id}.pdf")
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    text, _ = _pdf(r.data)
    assert "Presupuesto E-PDF-1" in text and "Bomba de calor nueva" in text and "4500,00" in text.replace(".", ""), \
        text
    login_staff(staff)
    r = client.get(f"/admin/estimates/{estimate_id}.pdf")
    assert r.status_code == 200 and "E-PDF-1" in _pdf(r.data)[0]
    other = make_customer_in(app)
    login_customer(other, c=portal)
    assert portal.get(f"/portal/estimates/{estimate_id}.pdf").status_code == 404  # only the owner's


def make_customer_in(app):
    with app.app_context():
        return make_customer("Otto", "Other", email="otto.other@example.com")
