"""Read models for money pages and the transactions report (REP-1). Bounded queries, no per-row loads."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from portal.extensions import db
from portal.models import (
    Adjustment,
    Card,
    ChargeAttempt,
    ChargeAttemptInvoice,
    Customer,
    Invoice,
    Payment,
    PaymentAllocation,
    PlanPayment,
    Refund,
)
from portal.services.errors import found
from portal.services.payments import declines
from portal.services.platform import settings

PAYABLE = ("open", "partially_paid")


def open_invoices(customer: Customer, limit: int | None = None) -> list[Invoice]:
    return list(db.session.scalars(select(Invoice).where(Invoice.customer_id == customer.id,
                                                         Invoice.status.in_(PAYABLE))
                                   .order_by(Invoice.due_date, Invoice.id).limit(limit)))


@dataclass
class Entry:
    """One line of money history: a payment, a refund, an adjustment or a declined attempt."""

    when: datetime
    type: str  # payment / deposit / refund / adjustment / declined / unknown
    amount_cents: int
    status: str
    method: str | None = None
    card: str | None = None
    fee_cents: int = 0
    message: str | None = None
    payment_id: int | None = None
    customer: Customer | None = None
    reference: str | None = None

    @property
    def net_cents(self) -> int:
        return self.amount_cents - self.fee_cents

    @property
    def counts(self) -> bool:
        """Money that moved (declined and unsettled attempts are shown, not counted)."""
        return self.type in ("payment", "deposit", "refund", "adjustment")


def _card_text(brand, last4) -> str | None:
    return f"{(brand or 'card').title()} •••• {last4}" if last4 else None


def _entries(payments, refund_rows, adjustments, attempts, customers: dict[int, Customer] | None = None) -> list[Entry]:
    customers = customers or {}
    out = []
    for p in payments:
        out.append(Entry(p.received_at, p.kind, p.amount_cents, p.status, p.method,
                         _card_text(p.card_brand, p.card_last4), p.fee_cents, None, p.id, customers.get(p.customer_id),
                         p.reference))
    for r, p in refund_rows:
        out.append(Entry(r.created_at, "refund", -r.amount_cents, r.status, r.method,
                         _card_text(p.card_brand, p.card_last4), 0, r.failure_reason or r.reason, p.id,
                         customers.get(p.customer_id)))
    for a in adjustments:
        out.append(Entry(a.created_at, "adjustment", a.amount_cents, "recorded", None, None, 0, a.reason,
                         a.payment_id, customers.get(a.customer_id)))
    for at, card in attempts:
        kind = "declined" if at.status == "failed" else "unknown"
        message = str(declines.explain(at.decline_code)) if at.decline_code else None
        if at.failure_message and at.status == "failed":
            message = f"{message} ({at.failure_message})" if message else at.failure_message
        out.append(Entry(at.created_at, kind, at.amount_cents, at.status, "card",
                         _card_text(card.brand, card.last4) if card else None, 0, message, None,
                         customers.get(at.customer_id)))
    out.sort(key=lambda e: e.when)
    return out


def invoice_history(invoice: Invoice) -> list[Entry]:
    payments = db.session.scalars(select(Payment).join(PaymentAllocation)
                                  .where(PaymentAllocation.invoice_id == invoice.id)).all()
    ids = [p.id for p in payments]
    refund_rows = db.session.execute(select(Refund, Payment).join(Payment, Refund.payment_id == Payment.id)
                                     .where(Refund.payment_id.in_(ids))).all() if ids else []
    adjustments = db.session.scalars(select(Adjustment).where(Adjustment.invoice_id == invoice.id)).all()
    attempts = db.session.execute(select(ChargeAttempt, Card).outerjoin(Card, ChargeAttempt.card_id == Card.id)
                                  .where((ChargeAttempt.invoice_id == invoice.id) | ChargeAttempt.id.in_(
                                      select(ChargeAttemptInvoice.attempt_id)
                                      .where(ChargeAttemptInvoice.invoice_id == invoice.id)),
                                         ChargeAttempt.status.in_(("failed", "pending", "unknown")))).all()
    return _entries(payments, refund_rows, adjustments, attempts)


@dataclass
class PaymentDetail:
    allocations: list = field(default_factory=list)  # (Invoice, cents)
    refunds: list = field(default_factory=list)
    adjustments: list = field(default_factory=list)
    attempt: ChargeAttempt | None = None
    plan_payments: list = field(default_factory=list)  # (PlanPayment, cents), their plans loaded
    credit_cents: int = 0  # what no invoice or plan payment holds: left on the customer's account


def payment_detail(payment: Payment) -> PaymentDetail:
    """What one payment paid (invoices, plan payments), its refunds and adjustments: a receipt's facts."""
    detail = _payment_detail(payment)
    used = sum(c for _, c in detail.allocations) + sum(c for _, c in detail.plan_payments)
    detail.credit_cents = max(payment.amount_cents - payment.refunded_cents - used, 0) \
        if payment.kind == "payment" else 0
    return detail


def _payment_detail(payment: Payment) -> PaymentDetail:
    return PaymentDetail(
        plan_payments=list(db.session.execute(
            select(PlanPayment, PaymentAllocation.amount_cents)
            .join(PaymentAllocation, PaymentAllocation.plan_payment_id == PlanPayment.id)
            .where(PaymentAllocation.payment_id == payment.id)
            .options(joinedload(PlanPayment.plan)).order_by(PlanPayment.due_date)).all()),
        allocations=list(db.session.execute(select(Invoice, PaymentAllocation.amount_cents).join(PaymentAllocation)
                                            .where(PaymentAllocation.payment_id == payment.id)).all()),
        refunds=list(db.session.scalars(select(Refund).where(Refund.payment_id == payment.id)
                                        .order_by(Refund.created_at))),
        adjustments=list(db.session.scalars(select(Adjustment).where(Adjustment.payment_id == payment.id))),
        attempt=db.session.get(ChargeAttempt, payment.charge_attempt_id) if payment.charge_attempt_id else None)


def customer_history(customer: Customer, limit: int = 20) -> list[Entry]:
    payments = db.session.scalars(select(Payment).where(Payment.customer_id == customer.id)
                                  .order_by(Payment.received_at.desc()).limit(limit)).all()
    refund_rows = db.session.execute(select(Refund, Payment).join(Payment, Refund.payment_id == Payment.id)
                                     .where(Payment.customer_id == customer.id)
                                     .order_by(Refund.created_at.desc()).limit(limit)).all()
    adjustments = db.session.scalars(select(Adjustment).where(Adjustment.customer_id == customer.id)
                                     .order_by(Adjustment.created_at.desc()).limit(limit)).all()
    attempts = db.session.execute(select(ChargeAttempt, Card).outerjoin(Card, ChargeAttempt.card_id == Card.id)
                                  .where(ChargeAttempt.customer_id == customer.id,
                                         ChargeAttempt.status.in_(("failed", "pending", "unknown")))
                                  .order_by(ChargeAttempt.created_at.desc()).limit(limit)).all()
    return list(reversed(_entries(payments, refund_rows, adjustments, attempts)))[:limit]


# --- REP-1 --------------------------------------------------------------------------------------------

TYPES = ("payment", "deposit", "refund", "adjustment", "declined")


@dataclass
class Report:
    start: date
    end: date
    rows: list[Entry]
    types: tuple[str, ...]

    @property
    def totals(self) -> dict:
        counted = [r for r in self.rows if r.counts]
        return {"amount": sum(r.amount_cents for r in counted), "fee": sum(r.fee_cents for r in counted),
                "net": sum(r.net_cents for r in counted), "count": len(counted),
                "declined": sum(1 for r in self.rows if r.type == "declined")}


def transactions(start: date, end: date, types: tuple[str, ...] = TYPES) -> Report:
    """Everything between two business-local dates, inclusive."""
    tz = ZoneInfo(settings.timezone_name())
    lo = datetime.combine(start, time.min, tz)
    hi = datetime.combine(end + timedelta(days=1), time.min, tz)
    payments = db.session.scalars(select(Payment).where(Payment.received_at >= lo, Payment.received_at < hi)).all() \
        if {"payment", "deposit"} & set(types) else []
    payments = [p for p in payments if p.kind in types]
    refund_rows = db.session.execute(select(Refund, Payment).join(Payment, Refund.payment_id == Payment.id)
                                     .where(Refund.created_at >= lo, Refund.created_at < hi)).all() \
        if "refund" in types else []
    adjustments = db.session.scalars(select(Adjustment).where(Adjustment.created_at >= lo,
                                                              Adjustment.created_at < hi)).all() \
        if "adjustment" in types else []
    attempts = db.session.execute(select(ChargeAttempt, Card).outerjoin(Card, ChargeAttempt.card_id == Card.id)
                                  .where(ChargeAttempt.status == "failed", ChargeAttempt.created_at >= lo,
                                         ChargeAttempt.created_at < hi)).all() if "declined" in types else []
    ids = {p.customer_id for p in payments} | {p.customer_id for _, p in refund_rows} | \
        {a.customer_id for a in adjustments} | {a.customer_id for a, _ in attempts}
    customers = {c.id: c for c in db.session.scalars(select(Customer).where(Customer.id.in_(ids)))} if ids else {}
    return Report(start, end, _entries(payments, refund_rows, adjustments, attempts, customers), types)


def load_payment(payment_id: int) -> Payment:
    """A payment by id (staff side), or NotFound."""
    return found(db.session.get(Payment, payment_id), "Payment not found.")


def customer_payment(customer: Customer, payment_id: int) -> Payment:
    """One of the customer's payments (the portal's receipts), or NotFound."""
    return found(db.session.scalars(select(Payment).where(Payment.id == payment_id,
                                                          Payment.customer_id == customer.id)).first(),
                 "Payment not found.")
