"""Credit on account: money a customer paid that no invoice or plan payment holds — an overpayment, a payment
recorded without an invoice, a "Pay all" share no longer needed, a plan's first payment that arrived too late.

It is applied to the invoices the customer owes, oldest due first: when an invoice is sent, before a portal "Pay"
charges the card, by `flask jobs run` (the `credit` rule) and by staff from the client card. Each application is a
payment allocation (the payment now pays that invoice too) and an activity-feed entry. Estimate deposits are not
credit: they wait for the invoice of their job.

Transactions: `apply` flushes and the caller commits; the scheduler rule commits per customer.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, select

from portal.extensions import db
from portal.models import Customer, Invoice, Payment, StaffUser
from portal.money import format_money
from portal.services.payments import charges
from portal.services.platform import activity


@dataclass
class Credit:
    payment: Payment
    cents: int  # what is left of it for other invoices


def _free_amount():
    return Payment.amount_cents - Payment.refunded_cents - Payment.allocated_cents


def _carries_credit():
    """The predicate of the partial index ix_payments_with_credit, written the same way so the database uses it."""
    return (Payment.kind == "payment") & (Payment.amount_cents > Payment.refunded_cents + Payment.allocated_cents)


def credits(customer_id: int) -> list[Credit]:
    """The customer's payments with money left on account, oldest first (one query)."""
    rows = db.session.execute(select(Payment, _free_amount()).where(Payment.customer_id == customer_id,
                                                                    _carries_credit())
                              .order_by(Payment.received_at, Payment.id)).all()
    return [Credit(p, int(cents)) for p, cents in rows]


def available_cents(customer_id: int) -> int:
    return int(db.session.scalar(available_select(customer_id)) or 0)


def available_select(customer_id: int | ColumnElement[int]):
    """The SELECT of the customer's credit on account (a read model may use it as a scalar subquery)."""
    return select(func.coalesce(func.sum(_free_amount()), 0)).where(Payment.customer_id == customer_id,
                                                                     _carries_credit())


def business_total_cents() -> int:
    """Credit held for all customers (the staff dashboard)."""
    return int(db.session.scalar(business_total_select()) or 0)


def business_total_select():
    """The SELECT of the credit held for all customers (the dashboard reads it as a scalar subquery)."""
    return select(func.coalesce(func.sum(_free_amount()), 0)).where(_carries_credit())


def apply(customer: Customer, *, actor: StaffUser | None = None, invoices: list[Invoice] | None = None) -> int:
    """Apply the customer's credit to what they owe on invoices (`invoices`, else every payable one), oldest due
    first. Invoices being paid by a card right now are skipped. Returns the cents applied. Caller commits."""
    db.session.scalars(select(Customer.id).where(Customer.id == customer.id).with_for_update()).all()
    available = credits(customer.id)
    if not available:
        return 0
    if invoices is None:
        invoices = list(db.session.scalars(select(Invoice).where(
            Invoice.customer_id == customer.id, Invoice.status.in_(charges.PAYABLE_INVOICE),
            Invoice.total_cents > Invoice.paid_cents)
            .order_by(Invoice.due_date.is_(None), Invoice.due_date, Invoice.id)))
    applied = 0
    for invoice in invoices:
        invoice = charges.lock_invoice(invoice.id)
        if invoice.status not in charges.PAYABLE_INVOICE or charges.open_attempt_for(invoice) is not None:
            continue
        for credit in available:
            if credit.cents <= 0 or invoice.balance_cents <= 0:
                continue
            take = min(credit.cents, invoice.balance_cents)
            charges.allocate(credit.payment, invoice, take)
            credit.cents -= take
            applied += take
            activity.record(customer.id, "payment", f"Credit on account {format_money(take, invoice.currency)} "
                            f"(from payment P-{credit.payment.id}) applied to invoice {invoice.number}; balance "
                            f"{format_money(invoice.balance_cents, invoice.currency)}", staff=actor,
                            actor_kind="staff" if actor else "system", invoice_id=invoice.id)
    db.session.flush()
    return applied


def run() -> dict:
    """Scheduler rule: apply every customer's credit to their open invoices. Commits per customer."""
    owing = select(Invoice.customer_id).where(Invoice.status.in_(charges.PAYABLE_INVOICE),
                                              Invoice.total_cents > Invoice.paid_cents)
    ids = list(db.session.scalars(select(Payment.customer_id).where(_carries_credit(),
                                                                    Payment.customer_id.in_(owing)).distinct()))
    db.session.rollback()
    done = {"customers": 0, "applied_cents": 0}
    for customer_id in ids:
        customer = db.session.get(Customer, customer_id)
        if customer is None:
            continue
        cents = apply(customer)
        db.session.commit()
        if cents:
            done["customers"] += 1
            done["applied_cents"] += cents
    return done
