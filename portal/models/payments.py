"""Sections 6–8: cards on file, charge attempts, payments, refunds, adjustments, webhook events."""
from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal import clock
from portal.extensions import db
from portal.models.types import UTCDateTime, status_type

CARD_KINDS = ("personal", "hsa_fsa")
PAYMENT_METHODS = ("card", "cash", "check", "other")
OPEN_ATTEMPT = "invoice_id IS NOT NULL AND status IN ('pending', 'unknown')"
OPEN_PLAN_ATTEMPT = "plan_payment_id IS NOT NULL AND status IN ('pending', 'unknown')"
OPEN_ESTIMATE_ATTEMPT = "estimate_id IS NOT NULL AND status IN ('pending', 'unknown')"
OPEN_PLAN_CHARGE = "plan_id IS NOT NULL AND status IN ('pending', 'unknown')"


class ChargeAttemptStatus(StrEnum):
    PENDING = "pending"  # written before Stripe is called; open
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"  # Stripe's answer was lost; open until the reconciler asks again


class PaymentStatus(StrEnum):
    SUCCEEDED = "succeeded"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


class RefundStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Card(db.Model):
    """W-1 … W-6. Only Stripe ids and display facts; never the number or CVC (G-4)."""

    __tablename__ = "cards"
    __table_args__ = (
        # W-1: exactly one default among a customer's cards on file.
        Index("uq_cards_one_default", "customer_id", unique=True,
              sqlite_where=text("is_default AND removed_at IS NULL"),
              postgresql_where=text("is_default AND removed_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    stripe_payment_method_id: Mapped[str] = mapped_column(String(64), unique=True)
    brand: Mapped[str | None] = mapped_column(String(20))
    last4: Mapped[str | None] = mapped_column(String(4))
    exp_month: Mapped[int | None] = mapped_column(Integer)
    exp_year: Mapped[int | None] = mapped_column(Integer)
    postal_code: Mapped[str | None] = mapped_column(String(20))
    funding: Mapped[str | None] = mapped_column(String(20))  # credit / debit / prepaid, from Stripe
    kind: Mapped[str] = mapped_column(String(10), default="personal")
    nickname: Mapped[str | None] = mapped_column(String(60))  # staff only (W-2)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    added_by: Mapped[str] = mapped_column(String(20), default="customer")  # customer / staff
    expiry_warning_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # D-7, once per card
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    customer = relationship("Customer")

    @property
    def is_active(self) -> bool:
        return self.removed_at is None

    def expiry_status(self, today) -> str | None:
        """W-5: 'expired', 'expiring' (this month) or None."""
        if not self.exp_year or not self.exp_month:
            return None
        if (self.exp_year, self.exp_month) < (today.year, today.month):
            return "expired"
        if (self.exp_year, self.exp_month) == (today.year, today.month):
            return "expiring"
        return None

    @property
    def label(self) -> str:
        return f"{(self.brand or 'card').title()} •••• {self.last4 or '????'}"


class ChargeAttemptInvoice(db.Model):
    """INV-4: the invoices one "Pay all" charge pays, and how much of it goes to each (their balances)."""

    __tablename__ = "charge_attempt_invoices"

    attempt_id: Mapped[int] = mapped_column(ForeignKey("charge_attempts.id", ondelete="CASCADE"), primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), primary_key=True, index=True)
    amount_cents: Mapped[int] = mapped_column(Integer)


class ChargeAttempt(db.Model):
    """PAY-3: written and committed before Stripe is called; its idempotency key derives from it."""

    __tablename__ = "charge_attempts"
    __table_args__ = (
        # PAY-3: nothing charges an invoice or a plan payment again while an attempt is unsettled.
        Index("uq_charge_attempts_one_open_invoice", "invoice_id", unique=True,
              sqlite_where=text(OPEN_ATTEMPT), postgresql_where=text(OPEN_ATTEMPT)),
        Index("uq_charge_attempts_one_open_plan_payment", "plan_payment_id", unique=True,
              sqlite_where=text(OPEN_PLAN_ATTEMPT), postgresql_where=text(OPEN_PLAN_ATTEMPT)),
        # P-5: one deposit payment at a time per estimate.
        Index("uq_charge_attempts_one_open_estimate", "estimate_id", unique=True,
              sqlite_where=text(OPEN_ESTIMATE_ATTEMPT), postgresql_where=text(OPEN_ESTIMATE_ATTEMPT)),
        # SP-3, SP-10, SP-11, SP-13, D-5: one unsettled charge per service plan at a time.
        Index("uq_charge_attempts_one_open_plan", "plan_id", unique=True,
              sqlite_where=text(OPEN_PLAN_CHARGE), postgresql_where=text(OPEN_PLAN_CHARGE)),
        # Issue 15 (migration 0012): declines by date (transactions report), a customer's attempts newest first.
        Index("ix_charge_attempts_failed_created", "created_at", sqlite_where=text("status = 'failed'"),
              postgresql_where=text("status = 'failed'")),
        Index("ix_charge_attempts_customer_created", "customer_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(80), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    card_id: Mapped[int | None] = mapped_column(ForeignKey("cards.id"))
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    status: Mapped[ChargeAttemptStatus] = mapped_column(status_type(ChargeAttemptStatus, 10),
                                                       default=ChargeAttemptStatus.PENDING, index=True)
    purpose: Mapped[str] = mapped_column(String(20))  # invoice / invoices / plan_payment / plan_acceptance / deposit
    off_session: Mapped[bool] = mapped_column(Boolean, default=False)
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"), index=True)
    plan_payment_id: Mapped[int | None] = mapped_column(ForeignKey("plan_payments.id"), index=True)
    estimate_id: Mapped[int | None] = mapped_column(ForeignKey("estimates.id"), index=True)
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("customer_plans.id"), index=True)
    plan_payment_ids: Mapped[str | None] = mapped_column(Text)  # "12,13": the plan payments one charge covers
    retry_of_id: Mapped[int | None] = mapped_column(ForeignKey("charge_attempts.id"))
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    stripe_charge_id: Mapped[str | None] = mapped_column(String(64))
    decline_code: Mapped[str | None] = mapped_column(String(60))
    failure_message: Mapped[str | None] = mapped_column(Text)
    initiated_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    initiated_by: Mapped[str] = mapped_column(String(10), default="staff")  # staff / customer / system
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # INV-4 "Pay all": one charge for several invoices, each with the balance it pays.
    invoice_shares: Mapped[list[ChargeAttemptInvoice]] = relationship(
        cascade="all, delete-orphan", order_by="ChargeAttemptInvoice.invoice_id")

    card = relationship("Card")


CREDIT_LEFT = text("kind = 'payment' AND amount_cents > refunded_cents + allocated_cents")


class Payment(db.Model):
    """PAY-1, PAY-5: money received, with fee and net."""

    __tablename__ = "payments"
    __table_args__ = (
        # Issue 15 (migration 0012): the transactions report's sums read the index alone on PostgreSQL; a
        # customer's payments newest first (client card, portal).
        Index("ix_payments_received_sums", "received_at", postgresql_include=["kind", "amount_cents", "fee_cents"]),
        # The transactions report's rows (the CSV reads a month or a year of them) from the index alone, in date
        # order (migration 0017).
        Index("ix_payments_received_rows", "received_at",
              postgresql_include=["kind", "amount_cents", "fee_cents", "status", "method", "card_brand", "card_last4",
                                  "customer_id", "reference", "id"]),
        Index("ix_payments_customer_received", "customer_id", "received_at"),
        # A customer's payments with what the client card sums (migration 0015): lifetime paid reads the index alone.
        Index("ix_payments_customer_sums", "customer_id",
              postgresql_include=["status", "amount_cents", "refunded_cents"]),
        # Credit on account (migration 0013): the few payments with money no invoice or plan payment holds, found
        # without reading the rest (billing.credit uses this exact predicate).
        # It carries the amounts, so the sums are index-only scans: PostgreSQL cannot estimate the column comparison
        # (it guesses a third of the table) and would otherwise plan a parallel heap scan for a few hundred rows.
        Index("ix_payments_with_credit", "customer_id", sqlite_where=CREDIT_LEFT, postgresql_where=CREDIT_LEFT,
              postgresql_include=["amount_cents", "refunded_cents", "allocated_cents"]),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))  # indexed by ix_payments_customer_sums
    kind: Mapped[str] = mapped_column(String(10), default="payment")  # payment / deposit
    method: Mapped[str] = mapped_column(String(10))
    status: Mapped[PaymentStatus] = mapped_column(status_type(PaymentStatus, 20), default=PaymentStatus.SUCCEEDED)
    amount_cents: Mapped[int] = mapped_column(Integer)
    fee_cents: Mapped[int] = mapped_column(Integer, default=0)
    net_cents: Mapped[int] = mapped_column(Integer)
    refunded_cents: Mapped[int] = mapped_column(Integer, default=0)
    # What its allocations hold (invoices and plan payments), kept by charges.add_allocation: amount - refunded -
    # allocated is the credit on account this payment still carries.
    allocated_cents: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    reference: Mapped[str | None] = mapped_column(String(120))  # check number etc.
    form_key: Mapped[str | None] = mapped_column(String(80), unique=True)  # a hand-recorded payment's form, once
    card_id: Mapped[int | None] = mapped_column(ForeignKey("cards.id"))
    card_brand: Mapped[str | None] = mapped_column(String(20))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    charge_attempt_id: Mapped[int | None] = mapped_column(ForeignKey("charge_attempts.id", use_alter=True), unique=True)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)  # indexed above
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    customer = relationship("Customer")
    allocations: Mapped[list[PaymentAllocation]] = relationship(back_populates="payment", cascade="all, delete-orphan")


class PaymentAllocation(db.Model):
    """How one payment is spread over invoices or plan payments (INV-4 pay-all, SP-10 one charge for all)."""

    __tablename__ = "payment_allocations"

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id", ondelete="CASCADE"), index=True)
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"), index=True)
    plan_payment_id: Mapped[int | None] = mapped_column(ForeignKey("plan_payments.id"), index=True)
    estimate_id: Mapped[int | None] = mapped_column(ForeignKey("estimates.id"), index=True)
    amount_cents: Mapped[int] = mapped_column(Integer)
    payment: Mapped[Payment] = relationship(back_populates="allocations")


def _payment_customer(context) -> int | None:
    """The customer of the refund's payment (a context-sensitive column default: one lookup per row)."""
    payment_id = context.get_current_parameters().get("payment_id")
    return context.connection.scalar(text("SELECT customer_id FROM payments WHERE id = :id"), {"id": payment_id})


class Refund(db.Model):
    """R-1 … R-6."""

    __tablename__ = "refunds"
    __table_args__ = (
        Index("ix_refunds_created_at", "created_at"),  # issue 15: the transactions report
        Index("ix_refunds_customer_created", "customer_id", "created_at"),  # a customer's refunds (client card)
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), index=True)
    # The payment's customer, copied (migration 0015) so a customer's refunds are found by index. Filled from the
    # payment when a row is inserted without it.
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), default=_payment_customer)
    amount_cents: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(300))
    method: Mapped[str] = mapped_column(String(10), default="card")
    status: Mapped[RefundStatus] = mapped_column(status_type(RefundStatus, 10), default=RefundStatus.PENDING)
    idempotency_key: Mapped[str] = mapped_column(String(80), unique=True)
    stripe_refund_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    failure_reason: Mapped[str | None] = mapped_column(String(300))
    # staff ticked "the customer still owes this": the refunded money is owed again on the invoice
    still_owed: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    payment = relationship("Payment")


class Adjustment(db.Model):
    """R-4: a correcting entry, e.g. a refund Stripe reported failed (the money stayed with the business)."""

    __tablename__ = "adjustments"
    __table_args__ = (Index("ix_adjustments_created_at", "created_at"),)  # issue 15: the transactions report

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id"))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"))
    amount_cents: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(300))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class ProcessedWebhookEvent(db.Model):
    """PAY-8: one row per Stripe event id, written in the same transaction as the event's effect."""

    __tablename__ = "processed_webhook_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    stripe_event_id: Mapped[str] = mapped_column(String(80), unique=True)
    event_type: Mapped[str] = mapped_column(String(80))
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)


class Dispute(db.Model):
    """Issue 14: a chargeback Stripe reported (charge.dispute.created / closed), recorded once per Stripe dispute.
    While open the payment reads "Disputed"; a lost dispute is recorded as an Adjustment (the money left)."""

    __tablename__ = "disputes"

    id: Mapped[int] = mapped_column(primary_key=True)
    stripe_dispute_id: Mapped[str] = mapped_column(String(64), unique=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    reason: Mapped[str | None] = mapped_column(String(60))
    status: Mapped[str] = mapped_column(String(30))  # Stripe's: needs_response, under_review, won, lost …
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    customer = relationship("Customer")

    @property
    def is_open(self) -> bool:
        return self.closed_at is None
