"""Issue 19, R-7: migration 0009 moves existing refunds to the new meaning — a refund recorded before it had lowered
its invoice's paid amount (the invoice was owed again); after it the invoice is paid again and counts the refund
(`refunded_cents`), so nothing refunded is owed. Failed refunds (already put back) and void invoices are left alone;
the downgrade restores the old numbers."""
from __future__ import annotations

from datetime import date, datetime

from flask_migrate import downgrade, upgrade
from sqlalchemy import Boolean, Date, DateTime, Integer, MetaData, Numeric, Table, text

from portal import create_app
from portal.extensions import db
from tests.test_migrations import empty_database_url  # noqa: F401 — the fixture

NOW = datetime(2026, 3, 1, 12, 0)  # stored UTC, naive as the UTCDateTime columns hold it


def _insert(conn, meta: MetaData, name: str, **values) -> int:
    """A row with the given values; every other NOT NULL column without a default gets a plain filler."""
    table = Table(name, meta, autoload_with=conn) if name not in meta.tables else meta.tables[name]
    for column in table.columns:
        if column.name in values or column.nullable or column.primary_key or column.server_default is not None:
            continue
        kind = column.type
        values[column.name] = (False if isinstance(kind, Boolean) else NOW if isinstance(kind, DateTime)
                               else date(2026, 3, 1) if isinstance(kind, Date)
                               else 0 if isinstance(kind, Integer | Numeric)
                               else f"x{len(values)}"[:getattr(kind, "length", None) or 20])
    return conn.execute(table.insert().values(**values)).inserted_primary_key[0]


def _invoice(conn, meta, customer_id, number, total, paid, status):
    return _insert(conn, meta, "invoices", customer_id=customer_id, number=number, status=status, currency="USD",
                   issue_date=date(2026, 3, 1), total_cents=total, subtotal_cents=total, paid_cents=paid)


def _paid_then_refunded(conn, meta, customer_id, invoice_id, amount, refunded, refund_status):
    payment = _insert(conn, meta, "payments", customer_id=customer_id, kind="payment", method="cash",
                      status="succeeded" if refund_status == "failed" or not refunded else
                      ("refunded" if refunded >= amount else "partially_refunded"),
                      amount_cents=amount, net_cents=amount,
                      refunded_cents=0 if refund_status == "failed" else refunded, currency="USD")
    _insert(conn, meta, "payment_allocations", payment_id=payment, invoice_id=invoice_id, amount_cents=amount)
    if refunded:
        _insert(conn, meta, "refunds", payment_id=payment, amount_cents=refunded, method="cash",
                status=refund_status, idempotency_key=f"refund_{payment}")
    return payment


def test_0009_credits_old_refunds_back_to_their_invoices(empty_database_url, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("PORTAL_INSTANCE_PATH", str(tmp_path))
    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database_url, "SECRET_KEY": "x"})
    with app.app_context():
        upgrade(revision="0008")
        meta = MetaData()
        with db.engine.begin() as conn:
            customer = _insert(conn, meta, "customers", first_name="Ana", last_name="Old", status="active")
            # as the old code left them: the refunded money lowered paid_cents, the invoice owed again
            partly = _invoice(conn, meta, customer, "INV-M1", 10_000, 7_000, "partially_paid")
            _paid_then_refunded(conn, meta, customer, partly, 10_000, 3_000, "succeeded")
            fully = _invoice(conn, meta, customer, "INV-M2", 5_000, 0, "open")
            _paid_then_refunded(conn, meta, customer, fully, 5_000, 5_000, "pending")
            failed = _invoice(conn, meta, customer, "INV-M3", 4_000, 4_000, "paid")  # the failed refund put it back
            _paid_then_refunded(conn, meta, customer, failed, 4_000, 1_000, "failed")
            void = _invoice(conn, meta, customer, "INV-M4", 2_000, 0, "void")  # refunded, then voided
            _paid_then_refunded(conn, meta, customer, void, 2_000, 2_000, "succeeded")
            untouched = _invoice(conn, meta, customer, "INV-M5", 6_000, 0, "open")

        upgrade(revision="0009")
        with db.engine.connect() as conn:
            rows = {r.number: (r.status, r.paid_cents, r.refunded_cents) for r in conn.execute(text(
                "SELECT number, status, paid_cents, refunded_cents FROM invoices"))}
            assert not conn.execute(text("SELECT count(*) FROM refunds WHERE still_owed")).scalar()
        assert rows == {"INV-M1": ("paid", 10_000, 3_000), "INV-M2": ("paid", 5_000, 5_000),
                        "INV-M3": ("paid", 4_000, 0), "INV-M4": ("void", 0, 0), "INV-M5": ("open", 0, 0)}

        downgrade(revision="0008")
        with db.engine.connect() as conn:
            back = {r.number: (r.status, r.paid_cents) for r in conn.execute(text(
                "SELECT number, status, paid_cents FROM invoices"))}
        assert back == {"INV-M1": ("partially_paid", 7_000), "INV-M2": ("open", 0), "INV-M3": ("paid", 4_000),
                        "INV-M4": ("void", 0), "INV-M5": ("open", 0)}
        assert untouched
        db.engine.dispose()
