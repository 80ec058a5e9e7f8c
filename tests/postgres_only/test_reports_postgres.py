"""Issue 15 on PostgreSQL only: the transactions CSV written by COPY, and the day sums its triggers keep.
(SQLite has neither: its CSV is the Python writer's, its report reads the tables; tests/admin covers those.)"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

from portal.extensions import db
from tests.factories import make_customer, make_staff

TEXTS = ["", "plain", 'a "quoted" word', "comma, here", "line\nbreak", "cr\ronly", "crlf\r\nend", "\\.",
         "back\\slash", "\ttab first", "=1+1", "+x", "-y", "@z", " leading space", "trailing ", "é ü ✓ “q”",
         '"', '""', "\n", ",", "x\\ny"]


def hostile_ledger(first: datetime, step: timedelta):
    """Payments (two per text), refunds, adjustments and declined attempts carrying every hostile text, customers
    with names of every shape, known and unknown card brands; the k-th payment at first + k * step. Commits; the
    staff admin who reads them."""
    from portal.models import Adjustment, ChargeAttempt, Customer, Payment, Refund

    admin = make_staff("admin")
    people = [make_customer(first_name, last) for first_name, last in
              (("Ann", "Lee"), ("", "Solo"), ("Only", ""), ("=Ann", "Evil"), ('Q"uote', "a,b"))]
    people += [make_customer("Zed", "Y", kind="business", company_name=name)
               for name in ("Acme, Inc.", "", "-Minus Co")]
    nameless = Customer(first_name="", last_name="", status="active", preferred_language="en")
    db.session.add(nameless)
    db.session.flush()
    people.append(nameless)
    brands = ["visa", "mastercard", "amex", "discover", "american_express", "", None, "JCB"]
    payments = []
    for k, text in enumerate(TEXTS * 2):
        who = people[k % len(people)]
        payments.append(Payment(
            customer_id=who.id, kind="deposit" if k % 7 == 3 else "payment",
            method=("card", "cash", "check", "")[k % 4], amount_cents=(k * 137) % 10_000 + 1,
            fee_cents=k % 5, net_cents=0, card_brand=brands[k % len(brands)],
            card_last4=("4242", "", None, "0005")[k % 4], reference=text if k % 3 else None,
            received_at=first + step * k))
    db.session.add_all(payments)
    db.session.flush()
    for k, text in enumerate(TEXTS):
        paid = payments[k]
        db.session.add(Refund(payment_id=paid.id, amount_cents=k + 1, reason=text or None,
                              status=("succeeded", "failed")[k % 2], idempotency_key=f"rf_copy_{k}",
                              failure_reason=text if k % 2 else None, created_at=paid.received_at))
        db.session.add(Adjustment(customer_id=paid.customer_id, payment_id=paid.id, amount_cents=50 - k * 9,
                                  reason=text, created_at=paid.received_at + timedelta(minutes=1)))
        db.session.add(ChargeAttempt(
            idempotency_key=f"dec_copy_{k}", customer_id=people[k % len(people)].id, amount_cents=100 + k,
            status="failed", purpose="invoice", decline_code=("insufficient_funds", "", None, "made_up")[k % 4],
            failure_message=text or None, created_at=paid.received_at))
    db.session.commit()
    return admin


def python_writers_csv(client, monkeypatch, url: str) -> bytes:
    """The CSV as SQLite's path writes it (Python's csv writer), read from this database."""
    from portal.services.payments import ledger

    with monkeypatch.context() as m:
        m.setattr(ledger, "csv_in_database", lambda: False)
        return client.get(url).get_data()


def test_transactions_csv_from_copy_has_the_python_writers_bytes(app, client, login_staff, frozen_clock,
                                                                  monkeypatch):
    """On PostgreSQL the CSV comes from COPY ... TO STDOUT (CSV format): the very bytes the Python writer gives
    for the same rows (SQLite's path, run here on the same database), whatever the text: empty and missing cells,
    quotes, separators, CR/LF inside cells, backslashes, `\\.`, tabs, formula-like starts, names of every shape,
    known and unknown card brands, a range over a month with several days."""
    from portal import clock

    with app.app_context():
        today = frozen_clock.now().date()
        start = today - timedelta(days=20)
        admin = hostile_ledger(datetime(start.year, start.month, start.day, 23, 30, tzinfo=clock.business_tz()),
                               timedelta(hours=7))
    login_staff(admin)
    bodies = []
    for query in (f"from={start.isoformat()}&to={today.isoformat()}",
                  f"from={start.isoformat()}&to={today.isoformat()}&type=payment&type=declined",
                  f"from={(start + timedelta(days=1)).isoformat()}&to={today.isoformat()}&type=adjustment",
                  f"from={today.isoformat()}&to={today.isoformat()}&type=refund"):
        url = f"/admin/reports/transactions?{query}&format=csv"
        copied = client.get(url).get_data()
        written = python_writers_csv(client, monkeypatch, url)
        assert copied == written
        bodies.append(written)
    rows = list(csv.reader(io.StringIO(bodies[0].decode(), newline="")))
    assert len(rows) == 1 + 2 * len(TEXTS) + 3 * len(TEXTS)  # header, payments, refunds, adjustments, declines
    assert {r[13] for r in rows[1:]} >= {"'=1+1", 'a "quoted" word', "crlf\r\nend", "\\.", ""}


def test_day_sums_follow_every_write_and_the_report_reads_them(app, client, login_staff, frozen_clock, monkeypatch):
    """PostgreSQL keeps the transactions report's sums per UTC day in ledger_day_sums by triggers: after ORM
    inserts, bulk UPDATEs through execute_dml (amount, date, kind moved), an attempt that fails after it was
    pending, a past payment imported, deletes and folding, the rows sum to what the tables hold, and the report's
    totals and chart (whole days from the sums, the rest from the tables) equal the tables' own sums."""
    from sqlalchemy import delete, func, literal_column, select, text, update

    from portal import clock
    from portal.extensions import execute_dml
    from portal.models import Adjustment, ChargeAttempt, LedgerDaySum, Payment, Refund
    from portal.services.payments import ledger


    def by_day() -> dict:
        rows = db.session.execute(select(LedgerDaySum.day, LedgerDaySum.type, func.sum(LedgerDaySum.amount_cents),
                                         func.sum(LedgerDaySum.fee_cents), func.sum(LedgerDaySum.n),
                                         func.sum(LedgerDaySum.positive_cents))
                                  .group_by(LedgerDaySum.day, LedgerDaySum.type)).all()
        return {(d, t): tuple(int(v) for v in vs) for d, t, *vs in rows if any(vs)}

    def from_tables() -> dict:
        tx = ledger._union(ledger.TYPES, datetime(1900, 1, 1, tzinfo=clock.UTC),
                           datetime(9000, 1, 1, tzinfo=clock.UTC), slim=True)
        day = func.date(tx.c.when)
        rows = db.session.execute(select(day, tx.c.type, func.sum(tx.c.amount), func.sum(tx.c.fee), func.count(),
                                         func.sum(func.greatest(tx.c.amount, 0))).group_by(day, tx.c.type)).all()
        return {(d, t): (0 if t == "declined" else int(a), int(f), int(n), 0 if t == "declined" else int(p))
                for d, t, a, f, n, p in rows}

    with app.app_context():
        admin = make_staff("admin")
        who = make_customer("Day", "Sums")
        today = frozen_clock.now().date()
        tz = clock.business_tz()
        noon = datetime(today.year, today.month, today.day, 12, tzinfo=tz)
        payments = [Payment(customer_id=who.id, method="card", kind="deposit" if k % 4 == 0 else "payment",
                            amount_cents=1_000 + 7 * k, fee_cents=30 + k, net_cents=0,
                            received_at=noon - timedelta(hours=11 * k)) for k in range(40)]
        db.session.add_all(payments)
        db.session.flush()
        db.session.add_all([Refund(payment_id=p.id, amount_cents=100 + k, status="succeeded", reason="r",
                                   idempotency_key=f"rf_days_{k}", created_at=p.received_at + timedelta(hours=3))
                            for k, p in enumerate(payments[:10])])
        db.session.add(Adjustment(customer_id=who.id, amount_cents=-250, reason="fix", created_at=noon))
        attempt = ChargeAttempt(idempotency_key="days_pending", customer_id=who.id, amount_cents=5_000,
                                status="pending", purpose="invoice", created_at=noon - timedelta(days=3))
        db.session.add(attempt)
        db.session.commit()
        attempt.status = "failed"
        db.session.commit()
        execute_dml(update(Payment).where(Payment.id.in_([p.id for p in payments[5:15]]))
                    .values(amount_cents=Payment.amount_cents + 1,
                            received_at=Payment.received_at - literal_column("interval '2 days'")))
        execute_dml(update(Payment).where(Payment.id == payments[20].id).values(kind="deposit", fee_cents=0))
        execute_dml(update(Payment).where(Payment.id == payments[21].id).values(refunded_cents=5))  # not summed
        db.session.add(Payment(customer_id=who.id, method="check", amount_cents=77_700, fee_cents=0, net_cents=0,
                               received_at=noon - timedelta(days=400)))  # an imported past payment
        db.session.commit()
        execute_dml(delete(Adjustment))
        db.session.commit()
        assert by_day() == from_tables()
        before = db.session.scalar(select(func.count()).select_from(LedgerDaySum))
        assert ledger.compact_day_sums()["days"] > 0
        assert db.session.scalar(select(func.count()).select_from(LedgerDaySum)) < before
        assert by_day() == from_tables()
        db.session.add(Payment(customer_id=who.id, method="cash", amount_cents=-300, fee_cents=0, net_cents=0,
                               received_at=noon - timedelta(days=30)))  # a negative amount: money out
        db.session.commit()
        assert by_day() == from_tables()

        for start, end in ((today - timedelta(days=40), today), (today - timedelta(days=500), today),
                           (today - timedelta(days=3), today - timedelta(days=1))):
            for types in (ledger.TYPES, ("payment",), ("deposit", "refund"), ("declined",)):
                read = ledger._sums(types, start, end)
                with monkeypatch.context() as m:  # the tables' own sums (the SQLite path)
                    m.setattr(db.session.get_bind().dialect, "name", "sqlite")
                    live = ledger._sums(types, start, end)
                assert read == live, (start, end, types)
        # a second session adds a payment on the same day while the first one's is not committed: no waiting
        db.session.add(Payment(customer_id=who.id, method="cash", amount_cents=1, fee_cents=0, net_cents=0,
                               received_at=noon))
        db.session.flush()
        with db.engine.connect() as other:
            other.execute(text("SET lock_timeout = '2s'"))
            other.execute(Payment.__table__.insert().values(customer_id=who.id, method="cash", kind="payment",
                                                            status="succeeded", amount_cents=2, fee_cents=0,
                                                            net_cents=0, refunded_cents=0, currency="USD",
                                                            received_at=noon.astimezone(clock.UTC),
                                                            created_at=noon.astimezone(clock.UTC)))
            other.commit()
        db.session.commit()
        assert by_day() == from_tables()
    login_staff(admin)
    assert client.get(f"/admin/reports/transactions?from={today - timedelta(days=500)}&to={today}").status_code == 200
