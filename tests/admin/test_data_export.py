"""DATA-2: Settings › Export all data, a streamed ZIP of CSV files with a README describing each column (admin)."""
from __future__ import annotations

import csv
import io
import zipfile
from datetime import date

from portal.extensions import db
from portal.models import ContactLog, CustomerNote, Refund
from tests.factories import make_customer, make_estimate, make_job, make_paid_invoice, make_plan, make_staff


def _csv(archive: zipfile.ZipFile, name: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(archive.read(name).decode("utf-8"))))


def test_the_owner_downloads_every_table_as_csv_with_a_readme(app, client, login_staff, stripe_sandbox):
    from portal import clock

    with app.app_context():
        owner, office = make_staff("admin"), make_staff("office")
        customer = make_customer("Zoë", "Núñez", email="zoe@example.com")
        invoice, card, outcome = make_paid_invoice(customer, 12_345, actor=owner)
        payment_id = outcome.payment.id
        db.session.add_all([
            CustomerNote(customer_id=customer.id, author_id=owner.id, body="=Gate code, ask Jürgen"),
            ContactLog(customer_id=customer.id, staff_id=owner.id, channel="call", outcome="Booked",
                       contacted_at=clock.now()),
            Refund(payment_id=payment_id, amount_cents=345, reason="Goodwill", method="card", status="succeeded",
                   idempotency_key="refund_test_1", created_by_id=owner.id),
        ])
        db.session.commit()
        job = make_job(customer, "Duct cleaning")
        make_estimate(customer)
        make_plan(customer, payments=[(date(2026, 3, 1), "paid")])

    login_staff(office)
    assert client.get("/admin/settings/export.zip").status_code == 403

    other = app.test_client()
    login_staff(owner, c=other)
    assert "Export all data (ZIP)" in other.get("/admin/settings").get_data(True)
    r = other.get("/admin/settings/export.zip")
    assert r.status_code == 200 and r.mimetype == "application/zip" and r.is_streamed
    assert r.headers["Content-Disposition"].startswith('attachment; filename="data-export-')
    archive = zipfile.ZipFile(io.BytesIO(r.get_data()))
    assert archive.testzip() is None
    names = set(archive.namelist())
    assert {"README.txt", "customers.csv", "invoices.csv", "invoice_lines.csv", "payments.csv", "refunds.csv",
            "plans.csv", "plan_payments.csv", "estimates.csv", "jobs.csv", "visits.csv", "notes.csv",
            "contact_log.csv", "activity.csv"} <= names

    readme = archive.read("README.txt").decode("utf-8")
    for name in names - {"README.txt"}:
        assert f"\n{name}\n" in readme  # every file is described
    assert "  total_cents: amount in cents" in readme and "  status: one of: draft, open" in readme
    assert "  customer_id: the customer (customer_id in customers.csv)" in readme

    customers = _csv(archive, "customers.csv")
    assert [(c["first_name"], c["last_name"], c["email"]) for c in customers] == [("Zoë", "Núñez", "zoe@example.com")]
    assert customers[0]["notes"] == "'=Gate code, ask Jürgen"  # a spreadsheet will not run it
    invoices = _csv(archive, "invoices.csv")
    assert [(i["id"], i["customer_id"], i["total_cents"], i["status"]) for i in invoices] == [
        (str(invoice.id), str(customer.id), "12345", "paid")]
    assert [line["invoice_id"] for line in _csv(archive, "invoice_lines.csv")] == [str(invoice.id)]
    payments = _csv(archive, "payments.csv")
    assert [(p["id"], p["amount_cents"], p["card_last4"]) for p in payments] == [(str(payment_id), "12345", "4242")]
    assert "form_key" not in payments[0]
    refund = _csv(archive, "refunds.csv")
    assert [(x["payment_id"], x["amount_cents"]) for x in refund] == [(str(payment_id), "345")]
    assert "idempotency_key" not in refund[0]
    assert [v["job_id"] for v in _csv(archive, "visits.csv")] == [str(job.id)]
    assert len(_csv(archive, "estimates.csv")) == 1 and len(_csv(archive, "estimate_lines.csv")) == 2
    assert [p["status"] for p in _csv(archive, "plan_payments.csv")] == ["paid"]
    assert [c["outcome"] for c in _csv(archive, "contact_log.csv")] == ["Booked"]
    assert [c["last4"] for c in _csv(archive, "cards.csv")] == ["4242"]
    assert any("Card" in a["summary"] for a in _csv(archive, "activity.csv"))
    everything = b"".join(archive.read(n) for n in names).decode("utf-8")
    assert "password" not in everything and "auth_secret" not in everything and "refund_test_1" not in everything
