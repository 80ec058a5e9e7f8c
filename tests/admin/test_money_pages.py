"""PAY-1, PAY-2, R-1, W-2, W-4, REP-1 through the staff pages."""
import csv
import io

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import ChargeAttempt, Invoice, Payment, Refund
from tests.factories import make_card, make_customer, make_invoice, make_staff
from tests.helpers import csrf_token_from


def _form(client, url):
    page = client.get(url)
    assert page.status_code == 200, page.get_data(True)[:400]
    html = page.get_data(True)
    import re
    token = re.search(r'name="token" type="hidden" value="([^"]+)"', html)
    return html, csrf_token_from(html), token.group(1) if token else None


def test_staff_charges_a_card_on_file_then_refunds_part(app, client, login_staff, stripe_sandbox, smtp):
    with app.app_context():
        admin = make_staff("admin")
        c = make_customer("Ana", "Diaz", email="ana@example.com")
        invoice = make_invoice(c, 30_000)
        card = make_card(c.id)
    login_staff(admin)
    view = client.get(f"/admin/customers/{c.id}").get_data(True)
    assert "Visa •••• 4242" in view and "Default" in view and f"Invoice {invoice.number}" in view
    html, csrf, token = _form(client, f"/admin/customers/{c.id}/charge?invoice={invoice.id}")
    assert 'value="300.00"' in html  # the full balance by default
    for bad, message in [("0.49", "smallest card payment"), ("abc", "as a number"), ("-5", "cannot be negative"),
                         ("300.01", "more than the balance"), ("1000000", "too large")]:
        r = client.post(f"/admin/customers/{c.id}/charge", data={"csrf_token": csrf, "token": token,
                                                                 "card_id": card.id, "invoice_id": invoice.id,
                                                                 "amount": bad})
        assert r.status_code == 400 and message in r.get_data(True), (bad, r.get_data(True)[:300])
    r = client.post(f"/admin/customers/{c.id}/charge", data={"csrf_token": csrf, "token": token, "card_id": 999999,
                                                             "invoice_id": invoice.id, "amount": "10"})
    assert r.status_code == 400 and "cards on file" in r.get_data(True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ChargeAttempt)) == 0

    r = client.post(f"/admin/customers/{c.id}/charge", data={"csrf_token": csrf, "token": token, "card_id": card.id,
                                                             "invoice_id": invoice.id, "amount": "120.00"})
    assert r.status_code == 302
    again = client.post(f"/admin/customers/{c.id}/charge", data={"csrf_token": csrf, "token": token,
                                                                 "card_id": card.id, "invoice_id": invoice.id,
                                                                 "amount": "120.00"})
    assert again.status_code == 302  # the double-submitted form lands on the same payment
    assert again.headers["Location"] == r.headers["Location"]
    payment_page = client.get(r.headers["Location"]).get_data(True)
    assert "Charged $120.00 to Visa •••• 4242" in payment_page and "$3.84" in payment_page
    with app.app_context():
        payment = db.session.scalars(select(Payment)).one()
        assert db.session.get(Invoice, invoice.id).balance_cents == 18_000
    html, csrf, token = _form(client, f"/admin/payments/{payment.id}")
    r = client.post(f"/admin/payments/{payment.id}/refund", data={"csrf_token": csrf, "token": token,
                                                                  "amount": "150", "reason": "x"})
    assert r.status_code == 400 and "At most $120.00 can still be refunded" in r.get_data(True)
    r = client.post(f"/admin/payments/{payment.id}/refund", data={"csrf_token": csrf, "token": token,
                                                                  "amount": "20.00", "reason": "Goodwill"})
    assert r.status_code == 302
    page = client.get(f"/admin/payments/{payment.id}").get_data(True)
    assert "Refunded $20.00" in page and "Up to $100.00 can be refunded" in page
    with app.app_context():
        assert db.session.scalars(select(Refund)).one().amount_cents == 2_000
        invoice_row = db.session.get(Invoice, invoice.id)  # given back, not owed again
        assert (invoice_row.balance_cents, invoice_row.refunded_cents) == (18_000, 2_000)
    assert any("Refund" in m["Subject"] for m in smtp.to("ana@example.com"))


def test_office_staff_cannot_refund_and_technicians_see_no_money(app, client, login_staff, stripe_sandbox):
    with app.app_context():
        office, tech = make_staff("office"), make_staff("technician")
        c = make_customer()
        invoice = make_invoice(c, 5_000)
    login_staff(office)
    html, csrf, token = _form(client, f"/admin/customers/{c.id}/payments/new?invoice={invoice.id}")
    r = client.post(f"/admin/customers/{c.id}/payments/new", data={"csrf_token": csrf, "token": token,
                                                                   "method": "check", "amount": "50",
                                                                   "invoice_id": invoice.id, "reference": ""})
    assert r.status_code == 400 and "check number" in r.get_data(True)
    r = client.post(f"/admin/customers/{c.id}/payments/new", data={"csrf_token": csrf, "token": token,
                                                                   "method": "check", "amount": "50",
                                                                   "invoice_id": invoice.id, "reference": "1042"})
    assert r.status_code == 302
    with app.app_context():
        payment = db.session.scalars(select(Payment)).one()
        assert (payment.method, payment.reference, payment.fee_cents) == ("check", "1042", 0)
        assert db.session.get(Invoice, invoice.id).status == "paid"
    assert client.post(f"/admin/payments/{payment.id}/refund", data={"csrf_token": csrf}).status_code == 403
    assert "Refund" not in client.get(f"/admin/payments/{payment.id}").get_data(True).split("<h2>Refunds</h2>")[1]
    client.post("/admin/logout", data={"csrf_token": csrf})
    login_staff(tech)
    assert "Cards on file" not in client.get(f"/admin/customers/{c.id}").get_data(True)
    assert client.get(f"/admin/customers/{c.id}/charge").status_code == 403
    assert client.get("/admin/reports/transactions").status_code == 403


def test_request_card_on_file_emails_a_wallet_link(app, client, login_staff, smtp):
    with app.app_context():
        staff = make_staff("office")
        c = make_customer("Ben", "Ross", email="ben@example.com")
    login_staff(staff)
    csrf = csrf_token_from(client.get(f"/admin/customers/{c.id}").get_data(True))
    assert client.post(f"/admin/customers/{c.id}/card-request", data={"csrf_token": csrf}).status_code == 302
    [msg] = smtp.to("ben@example.com")
    link = next(w for w in smtp.text(msg).split() if "/portal/magic/" in w)
    other = client.application.test_client()
    r = other.get(link.replace("http://portal.test", ""))
    assert r.status_code == 302 and r.headers["Location"].endswith("/portal/wallet")


def test_transactions_csv_rows_and_totals(app, client, login_staff, stripe_sandbox, frozen_clock):
    from portal.services.payments import charges, refunds

    with app.app_context():
        admin = make_staff("admin")
        a, b = make_customer("Ana", "Diaz"), make_customer("=cmd", "Evil")
        inv_a, inv_b = make_invoice(a, 10_000), make_invoice(b, 8_000)
        card_a, card_b = make_card(a.id), make_card(b.id, "4000000000000341")
        from portal.models import Card, Customer
        ok = charges.charge_card(db.session.get(Customer, a.id), db.session.get(Card, card_a.id), 10_000,
                                 token=None, invoice=db.session.get(Invoice, inv_a.id), off_session=True,
                                 initiated_by="staff")
        charges.charge_card(db.session.get(Customer, b.id), db.session.get(Card, card_b.id), 8_000, token=None,
                            invoice=db.session.get(Invoice, inv_b.id), off_session=True, initiated_by="staff")
        cash = charges.record_manual(db.session.get(Customer, b.id), method="cash", amount_cents=3_000,
                                     reference=None, actor=db.session.get(type(admin), admin.id),
                                     invoice=db.session.get(Invoice, inv_b.id))
        row = refunds.refund(db.session.get(Payment, ok.payment.id), 2_500, "partial", admin, None)
        refunds.fail(row, "closed card")  # Failed, then an Adjustment
        db.session.commit()
        refunds.refund(db.session.get(Payment, cash.id), 1_000, "change", admin, None)
    login_staff(admin)
    day = frozen_clock.now().date().isoformat()
    page = client.get(f"/admin/reports/transactions?from={day}&to={day}")
    assert page.status_code == 200
    r = client.get(f"/admin/reports/transactions?from={day}&to={day}&format=csv")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(r.get_data(True))))
    kinds = sorted(x["type"] for x in rows)
    assert kinds == ["adjustment", "declined", "payment", "payment", "refund", "refund"]
    money = [x for x in rows if x["type"] != "declined"]
    from decimal import Decimal
    total = sum(Decimal(x["amount"]) for x in money)
    fees = sum(Decimal(x["fee"]) for x in money)
    assert total == Decimal("100.00") + Decimal("30.00") - Decimal("25.00") + Decimal("25.00") - Decimal("10.00")
    assert fees == Decimal("3.25")  # 2.95 % of 100 + 0.30; cash has no fee; refunds return no fee
    html = page.get_data(True)
    assert f'data-total="amount">${total:,.2f}' in html and f'data-total="fee">${fees:,.2f}' in html
    declined = next(x for x in rows if x["type"] == "declined")
    assert declined["status"] == "failed" and "declined" in declined["failure_message"]
    assert any(x["customer"].startswith("'=cmd") for x in rows)  # no formula injection into spreadsheets
    bad = client.get("/admin/reports/transactions?from=nope")
    assert bad.status_code == 400 and "is not a date" in bad.get_data(True)


def test_fees_and_refund_window_are_configurable(app, client, login_staff, stripe_sandbox):
    from portal.services.payments import charges
    from portal.services.platform import settings

    with app.app_context():
        admin, office = make_staff("admin"), make_staff("office")
    login_staff(admin)
    page = client.get("/admin/settings").get_data(True)
    assert 'value="2.95"' in page and 'value="0.30"' in page and 'value="90"' in page
    csrf = csrf_token_from(page)
    r = client.post("/admin/settings", data={"csrf_token": csrf, "fee_percent": "abc", "fee_fixed": "0.30",
                                             "refund_window_days": "90"})
    assert r.status_code == 400
    r = client.post("/admin/settings", data={"csrf_token": csrf, "fee_percent": "3.50", "fee_fixed": "0.25",
                                             "refund_window_days": "30"})
    assert r.status_code == 302
    with app.app_context():
        assert charges.fee_for(10_000) == 375 and settings.get().refund_window_days == 30
    client.post("/admin/logout", data={"csrf_token": csrf})
    login_staff(office)
    assert client.get("/admin/settings").status_code == 403


def test_odd_numbers_and_dates_get_messages_not_500s(app, client, login_staff, stripe_sandbox):
    with app.app_context():
        admin = make_staff("admin")
        c = make_customer()
        invoice = make_invoice(c, 5_000)
        card = make_card(c.id)
    login_staff(admin)
    html, csrf, token = _form(client, f"/admin/customers/{c.id}/charge?invoice={invoice.id}")
    for bad in ("1e30", "NaN", "Infinity", "1e-30", "0.001"):
        r = client.post(f"/admin/customers/{c.id}/charge", data={"csrf_token": csrf, "token": token,
                                                                 "card_id": card.id, "invoice_id": invoice.id,
                                                                 "amount": bad})
        assert r.status_code == 400, (bad, r.status_code)
    r = client.post("/admin/settings", data={"csrf_token": csrf, "fee_percent": "NaN", "fee_fixed": "0.30",
                                             "refund_window_days": "90"})
    assert r.status_code == 400 and "Enter a number" in r.get_data(True)
    r = client.get("/admin/reports/transactions?from=9999-12-30&to=9999-12-31")
    assert r.status_code == 400 and "out of range" in r.get_data(True)
