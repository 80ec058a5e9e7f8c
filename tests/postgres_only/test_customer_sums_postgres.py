"""Issue 15 on PostgreSQL only: what each customer has paid, kept by triggers in customer_payment_sums (migration
0020) and read by the client card instead of the customer's every payment."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, func, literal_column, select, text, update

from portal.extensions import db, execute_dml
from tests.factories import make_customer, make_staff


def test_customer_sums_follow_every_write_and_the_card_reads_them(app, client, login_staff, frozen_clock):
    """After ORM inserts, bulk UPDATEs through execute_dml (status, refunded amount, amount, a payment moved to
    another customer), a row UPDATE that changes nothing summed, deletes, a second session's insert while the first
    one's is not committed (no waiting) and folding, each customer's rows sum to what the payments hold; the client
    card shows those sums (and reads them: a row of differences added by hand moves its figure)."""
    from portal.models import CustomerPaymentSum, Payment
    from portal.models.ledger_sums import PAID_STATUSES
    from portal.services.overview import client_card
    from portal.services.payments import ledger

    def kept() -> dict:
        rows = db.session.execute(select(CustomerPaymentSum.customer_id, func.sum(CustomerPaymentSum.paid_cents),
                                         func.sum(CustomerPaymentSum.n))
                                  .group_by(CustomerPaymentSum.customer_id)).all()
        return {c: (int(p), int(n)) for c, p, n in rows if p or n}

    def from_payments() -> dict:
        paid = func.coalesce(func.sum(Payment.amount_cents - Payment.refunded_cents)
                             .filter(Payment.status.in_(PAID_STATUSES)), 0)
        rows = db.session.execute(select(Payment.customer_id, paid, func.count()).group_by(Payment.customer_id))
        return {c: (int(p), int(n)) for c, p, n in rows}

    with app.app_context():
        admin = make_staff("admin")
        ann, bob = make_customer("Ann", "Sums"), make_customer("Bob", "Sums")
        now = frozen_clock.now()
        payments = [Payment(customer_id=(ann if k % 3 else bob).id, method="card", amount_cents=1_000 + k,
                            fee_cents=30, net_cents=0, refunded_cents=(0, 0, 40)[k % 3],
                            status=("succeeded", "succeeded", "partially_refunded")[k % 3],
                            received_at=now - timedelta(days=k)) for k in range(30)]
        db.session.add_all(payments)
        db.session.commit()
        assert kept() == from_payments() and kept()[ann.id][1] == 20
        execute_dml(update(Payment).where(Payment.id.in_([p.id for p in payments[:6]]))
                    .values(refunded_cents=Payment.refunded_cents + 100, status="partially_refunded"))
        execute_dml(update(Payment).where(Payment.id == payments[7].id).values(status="refunded",
                                                                               refunded_cents=payments[7].amount_cents))
        execute_dml(update(Payment).where(Payment.id == payments[8].id)
                    .values(amount_cents=literal_column("amount_cents") * 2))
        execute_dml(update(Payment).where(Payment.id == payments[9].id).values(customer_id=bob.id))  # moved
        execute_dml(update(Payment).where(Payment.id == payments[10].id).values(fee_cents=99))  # not summed
        db.session.commit()
        assert kept() == from_payments()
        execute_dml(delete(Payment).where(Payment.id.in_([payments[11].id, payments[12].id])))
        db.session.commit()
        assert kept() == from_payments()
        # a second session adds a payment for Ann while the first one's is not committed: nobody waits
        db.session.add(Payment(customer_id=ann.id, method="cash", amount_cents=5, fee_cents=0, net_cents=0,
                               received_at=now))
        db.session.flush()
        with db.engine.connect() as other:
            other.execute(text("SET lock_timeout = '2s'"))
            other.execute(Payment.__table__.insert().values(
                customer_id=ann.id, method="cash", kind="payment", status="succeeded", amount_cents=7, fee_cents=0,
                net_cents=0, refunded_cents=0, allocated_cents=0, currency="USD", received_at=now, created_at=now))
            other.commit()
        db.session.commit()
        assert kept() == from_payments()
        rows_before = db.session.scalar(select(func.count()).select_from(CustomerPaymentSum))
        assert ledger.compact_day_sums()["customers"] == 2
        assert db.session.scalar(select(func.count()).select_from(CustomerPaymentSum)) == 2 < rows_before
        assert kept() == from_payments()

        figures = client_card.financials(ann)
        assert (figures.lifetime_paid_cents, figures.history_count) == from_payments()[ann.id]
        db.session.add(CustomerPaymentSum(customer_id=ann.id, paid_cents=1_000_000, n=0))  # the card reads the sums
        db.session.commit()
        assert client_card.financials(ann).lifetime_paid_cents == from_payments()[ann.id][0] + 1_000_000
        db.session.execute(delete(CustomerPaymentSum).where(CustomerPaymentSum.paid_cents == 1_000_000))
        db.session.commit()
        paid = from_payments()[ann.id][0]
    login_staff(admin)
    page = client.get(f"/admin/customers/{ann.id}").get_data(as_text=True)
    assert f"${paid // 100:,}.{paid % 100:02d}" in page
